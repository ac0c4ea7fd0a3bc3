"""Measured accuracy for the search: each arch evaluated once (BN-recalibrated supernet on the
validation split), cached in memory and, optionally, in a dataset JSONL on disk (which is also
predictor data). Under a process group every rank measures its share of each batch and all end
with the same accuracies (rank 0 alone writes the file)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from ..accuracy import ArchDataset, MeasureStats, finish_part_file, measure_missing, open_shared_cache
from ..costs import CostModel
from ..space import Arch, SearchSpace


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
                 warn: Callable[[str], None] | None = None) -> None:
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

    def __call__(self, genes: np.ndarray) -> np.ndarray:
        archs = [self.space.decode(g) for g in np.atleast_2d(genes)]
        self.measure(archs)
        return np.array([self.cache.get(a).accuracy for a in archs], dtype=np.float64)  # type: ignore[union-attr]

    def measure(self, archs: Iterable[Arch], what: str | None = None) -> MeasureStats:
        """Measure the archs not in the cache yet (over every rank), each once."""
        archs = list(archs)
        self.used.update(a.key() for a in archs)
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
        return self.last

    def mark_used(self, genes: np.ndarray) -> None:
        """Count archs as used without looking them up (a resumed search's archive)."""
        self.used.update(self.space.decode(g).key() for g in np.atleast_2d(genes))

    def finish(self) -> None:
        """Drop this rank's part file once every record is in the cache file."""
        finish_part_file(self.cache_path)
