"""Measured accuracy for the search: each arch evaluated once (BN-recalibrated supernet on the
validation split), cached in memory and, optionally, in a dataset JSONL on disk (which is also
predictor data). Under a process group every rank measures its share of each batch and all end
with the same accuracies (rank 0 alone writes the file). With ``shared`` (a checkpoint's path, one
process) the measurements are also shared between searches of that checkpoint, split and settings
(``CKPT_DIR/measured/<provenance hash>.jsonl``): a subnet measured by one search is not measured again
by the next."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from ..accuracy import (
    ArchDataset,
    ArchRecord,
    JsonlAppender,
    MeasureStats,
    dataset_header,
    finish_part_file,
    measure_missing,
    open_shared_cache,
    provenance_of,
)
from ..accuracy.provenance import differences, header_and_count, provenance_hash
from ..costs import CostModel
from ..distributed import world_size
from ..errors import ConfigError
from ..space import Arch, SearchSpace

#: the folder beside a checkpoint where its measurements are shared between searches (one file per provenance)
SHARED_DIR = "measured"


def shared_store_path(checkpoint: str | Path, measured_with: dict | None) -> Path | None:
    """Where the measurements of ``checkpoint`` made with ``measured_with`` are shared between searches:
    ``CKPT_DIR/measured/<provenance hash>.jsonl`` (None when what measures is not recorded)."""
    if measured_with is None:
        return None
    return Path(checkpoint).parent / SHARED_DIR / f"{provenance_hash(measured_with)}.jsonl"


class SharedStore:
    """The measurements of one checkpoint, split and settings, shared by every search of it (one
    process; a file that cannot be read or written is passed over with one line to ``warn``)."""

    def __init__(self, path: Path, space: SearchSpace, num_classes: int, measured_with: dict,
                 warn: Callable[[str], None] | None = None) -> None:
        self.path, self.warn = path, warn
        self.data = ArchDataset(space, num_classes=num_classes)
        self._appender: JsonlAppender | None = None
        try:
            if path.is_file():
                text = path.read_text(encoding="utf-8")
                header, _ = header_and_count(text)
                if header is None or differences(header.get("measured_with"), measured_with):
                    raise ConfigError(f"{path} was measured with other settings")
                self.data = ArchDataset.loads(text, space, num_classes, path)
            self._appender = JsonlAppender(path, dataset_header(space, num_classes, measured_with))
        except (OSError, UnicodeDecodeError, ConfigError) as exc:
            self._appender = None
            if warn is not None:
                warn(f"measurements are not shared between searches of this checkpoint ({path}: {exc})")

    def add(self, records: Iterable[ArchRecord]) -> None:
        """Keep new records (those not in the store yet)."""
        for rec in records:
            if rec.arch in self.data:
                continue
            self.data.add(rec)
            if self._appender is not None:
                try:
                    self._appender.append(rec.to_dict())
                except (OSError, ConfigError):
                    self._appender = None


class MeasuredAccuracy:
    """Accuracy by evaluating archs with ``evaluate_fn(arch) -> top-1 (%)``, each arch once; with
    ``cache_path`` the results also go to (and come from) a dataset JSONL.

    ``calls`` counts the archs measured by this process's job (not found in the cache); ``used`` holds
    the keys of every arch whose measured accuracy was asked for (from the cache or measured), so
    ``len(used)`` is the same for a run and for a killed-then-resumed one. ``log`` receives one line
    before each named batch of measurements (:meth:`measure` with ``what``) and a time estimate after its
first ones (and after the first measurements of the search's own batches). A ``cache_path`` measured
with something else than ``evaluate_fn`` measures with (another checkpoint, data or settings: see
:mod:`attentivenas.accuracy.provenance`) is moved aside with one line to ``warn``, and measured again."""

    def __init__(self, space: SearchSpace, evaluate_fn: Callable[[Arch], float], cache_path: str | Path | None = None,
                 num_classes: int = 1000, progress: bool = False, log: Callable[[str], None] | None = None,
                 warn: Callable[[str], None] | None = None, shared: str | Path | None = None) -> None:
        self.space, self.evaluate_fn = space, evaluate_fn
        self._cost = CostModel(space, num_classes)
        self._appender = None
        self.measured_with: dict | None = None
        self.cache_path = Path(cache_path) if cache_path is not None else None
        if self.cache_path is not None:
            self.cache, self._appender, self.measured_with = open_shared_cache(
                self.cache_path, space, num_classes, evaluate_fn, "remeasure", warn or log)
        else:
            self.cache = ArchDataset(space, num_classes=num_classes)
        self.calls = 0
        self.used: set[str] = set()
        self.progress, self.log = progress, log
        self.last = MeasureStats()
        self.estimated = False  # a time estimate was logged
        self.seconds_per_arch = 0.0  # of the first measurements (rank 0)
        self.reused = 0  # archs taken from the measurements shared between searches
        self.shared: SharedStore | None = None
        if shared is not None and world_size() == 1:
            current = self.measured_with or provenance_of(evaluate_fn)
            path = shared_store_path(shared, current)
            if path is not None and current is not None:
                self.shared = SharedStore(path, space, num_classes, current, warn or log)

    def __call__(self, genes: np.ndarray) -> np.ndarray:
        archs = [self.space.decode(g) for g in np.atleast_2d(genes)]
        self.measure(archs)
        return np.array([self.cache.get(a).accuracy for a in archs], dtype=np.float64)  # type: ignore[union-attr]

    def measure(self, archs: Iterable[Arch], what: str | None = None) -> MeasureStats:
        """Measure the archs not in the cache yet (over every rank), each once."""
        archs = list(archs)
        self.used.update(a.key() for a in archs)
        self._take_shared(archs)
        missing = len({a.key() for a in archs if a not in self.cache})
        if missing and what is not None and self.log is not None:
            self.log(f"measuring {missing} subnets {what} (BN recalibrated)")
        self.last = measure_missing(self.cache, archs, self.evaluate_fn, self._cost, appender=self._appender,
                                    cache_path=self.cache_path, progress=self.progress and what is not None,
                                    log=self.log if what is not None or not self.estimated else None,
                                    over_ranks=True, measured_with=self.measured_with)
        if self.last.measured:
            self.estimated = True
            self.calls += self.last.measured
            self.seconds_per_arch = self.seconds_per_arch or self.last.seconds_per_arch
            if self.shared is not None:
                self.shared.add(r for r in (self.cache.get(a) for a in archs) if r is not None)
        return self.last

    def _take_shared(self, archs: list[Arch]) -> None:
        """Archs measured by an earlier search of the same checkpoint and settings: into the cache (and
        its file) without measuring them again."""
        if self.shared is None:
            return
        for a in archs:
            rec = self.shared.data.get(a)
            if rec is not None and a not in self.cache:
                self.cache.add(rec)
                self.reused += 1
                if self._appender is not None:
                    self._appender.append(rec.to_dict())

    def mark_used(self, genes: np.ndarray) -> None:
        """Count archs as used without looking them up (a resumed search's archive)."""
        self.used.update(self.space.decode(g).key() for g in np.atleast_2d(genes))

    def finish(self) -> None:
        """Drop this rank's part file once every record is in the cache file."""
        finish_part_file(self.cache_path)
