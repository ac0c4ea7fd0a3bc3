"""(arch, accuracy) datasets: records, JSON-lines files that survive interruption, and archs spread
over the FLOPs range to measure.

A dataset file is a header line naming the space, then one record per line keyed by
``Arch.key()``. :func:`build_arch_dataset` evaluates only the archs not yet in its file, appending
(and fsyncing) each record as soon as it is measured, so an interrupted build keeps its work.
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..costs import CostModel
from ..distributed import barrier, broadcast_bytes, is_main, rank, share, sum_floats, world_size
from ..errors import ConfigError, UserError
from ..io import OutputLock, atomic_write_text, loads_json, read_text_file, user_file_errors
from ..progress import progress_bar
from ..space import Arch, SearchSpace, get_space

DATASET_FORMAT = "attentivenas-arch-dataset"
VERSION = 1
SPREADS = ("flops", "uniform")


@dataclass(frozen=True)
class ArchRecord:
    """One evaluated arch: accuracy (top-1, percent) plus its analytic cost."""

    arch: Arch
    accuracy: float
    mflops: float
    params_m: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.arch.key(),
            "arch": self.arch.to_dict(),
            "accuracy": float(self.accuracy),
            "mflops": float(self.mflops),
            "params_m": float(self.params_m),
        }


def dataset_header(space: SearchSpace, num_classes: int) -> dict[str, Any]:
    """The first line of a dataset JSONL: format, version, space and number of classes."""
    return {"format": DATASET_FORMAT, "version": VERSION, "space": space.to_dict(), "num_classes": num_classes}


class ArchDataset:
    """Records of evaluated archs of one space, unique by ``arch.key()`` (the last one wins)."""

    def __init__(self, space: SearchSpace, records: Iterable[ArchRecord] = (), num_classes: int = 1000) -> None:
        self.space = space
        self.num_classes = int(num_classes)
        self._records: dict[str, ArchRecord] = {}
        for r in records:
            self.add(r)

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self):
        return iter(self._records.values())

    def __contains__(self, arch: Arch) -> bool:
        return arch.key() in self._records

    def get(self, arch: Arch) -> ArchRecord | None:
        return self._records.get(arch.key())

    def add(self, record: ArchRecord) -> None:
        self._records[record.arch.key()] = record

    @property
    def records(self) -> list[ArchRecord]:
        return list(self._records.values())

    def genes(self) -> np.ndarray:
        """Gene matrix, shape (n, num_genes)."""
        if not self._records:
            return np.zeros((0, self.space.num_genes), dtype=np.int64)
        return self.space.encode_many([r.arch for r in self._records.values()])

    def accuracies(self) -> np.ndarray:
        return np.array([r.accuracy for r in self._records.values()], dtype=np.float64)

    def mflops(self) -> np.ndarray:
        return np.array([r.mflops for r in self._records.values()], dtype=np.float64)

    def subset(self, archs: Iterable[Arch]) -> ArchDataset:
        """The records of ``archs`` (those present), in that order."""
        recs = [self._records[a.key()] for a in archs if a.key() in self._records]
        return ArchDataset(self.space, recs, self.num_classes)

    def save(self, path: str | Path) -> Path:
        """Write header + records as JSON lines, atomically."""
        lines = [json.dumps(dataset_header(self.space, self.num_classes))]
        lines += [json.dumps(r.to_dict()) for r in self._records.values()]
        return atomic_write_text(path, "\n".join(lines) + "\n")

    @classmethod
    def load(cls, path: str | Path, space: SearchSpace | None = None, num_classes: int | None = None) -> ArchDataset:
        """Read a JSONL dataset. The space comes from the file's header, else ``space``, else the
        ``attentivenas`` preset; a header of another space than ``space`` is an error. A truncated
        last line (an interrupted write) is skipped; any other bad line raises :class:`ConfigError`."""
        p = Path(path)
        return cls.loads(read_text_file(p, "dataset file", ConfigError), space, num_classes, p)

    @classmethod
    def loads(cls, text: str, space: SearchSpace | None = None, num_classes: int | None = None,
              path: str | Path = "<memory>") -> ArchDataset:
        """:meth:`load` of a file's text (``path`` names it in errors)."""
        p = Path(path)
        header, rows = _parse_jsonl(p, text)
        if header is not None:
            file_space = _space_from_header(p, header)
            if space is not None and not space.same_as(file_space):
                raise ConfigError(
                    f"dataset {p} was built on space '{file_space.name}', not '{space.name}' (the supernet configs differ)"
                )
            space = file_space
            if num_classes is None:
                num_classes = int(header.get("num_classes", 1000))
        space = space or get_space(None)
        ds = cls(space, num_classes=1000 if num_classes is None else num_classes)
        cost = CostModel(space, ds.num_classes)
        for lineno, row in rows:
            ds.add(_record_from_row(p, lineno, row, space, cost))
        return ds


def _parse_jsonl(path: Path, text: str) -> tuple[dict | None, list[tuple[int, dict]]]:
    lines = text.split("\n")
    complete = text.endswith("\n")
    header: dict | None = None
    rows: list[tuple[int, dict]] = []
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = loads_json(line)
        except ValueError:  # bad JSON, or nested too deeply
            if i == len(lines) and not complete:
                warnings.warn(f"{path}: skipping a truncated last line (interrupted write)", stacklevel=3)
                continue
            raise ConfigError(f"dataset {path} line {i} is not valid JSON") from None
        if not isinstance(obj, dict):
            raise ConfigError(f"dataset {path} line {i} must be a JSON object")
        if obj.get("format") == DATASET_FORMAT:
            header = obj
        else:
            rows.append((i, obj))
    return header, rows


def _space_from_header(path: Path, header: dict) -> SearchSpace:
    try:
        return SearchSpace.from_dict(header["space"])
    except (KeyError, TypeError, UserError) as exc:
        raise ConfigError(f"dataset {path} has a bad header: {exc}") from None


def _record_from_row(path: Path, lineno: int, row: dict, space: SearchSpace, cost: CostModel) -> ArchRecord:
    where = f"dataset {path} line {lineno}"
    if "arch" not in row or "accuracy" not in row:
        raise ConfigError(f"{where} needs keys 'arch' and 'accuracy'")
    try:
        arch = space.arch_from_dict(row["arch"])
    except UserError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    acc = row["accuracy"]
    if isinstance(acc, bool) or not isinstance(acc, (int, float)) or not math.isfinite(acc):
        raise ConfigError(f"{where}: 'accuracy' must be a finite number, got {acc!r}")
    mflops, params = row.get("mflops"), row.get("params_m")
    if not isinstance(mflops, (int, float)) or not isinstance(params, (int, float)):
        f, p = cost.flops_and_params(space.encode(arch)[None, :])
        mflops, params = float(f[0]), float(p[0]) / 1e6
    return ArchRecord(arch, float(acc), float(mflops), float(params))


class JsonlAppender:
    """Appends one JSON line per call with a single write, then flush + fsync."""

    def __init__(self, path: Path, header: dict[str, Any]) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() and path.stat().st_size > 0:
            _drop_partial_tail(path)
        else:
            atomic_write_text(path, json.dumps(header) + "\n")

    def append(self, obj: dict[str, Any]) -> None:
        data = (json.dumps(obj) + "\n").encode("utf-8")
        with user_file_errors(self.path):  # a torn line is cut on the next open
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)


def _drop_partial_tail(path: Path) -> None:
    """Cut a file after its last newline (a record half-written by an interrupted run)."""
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        with open(path, "r+b") as f:
            f.truncate(cut)


def spread_genes(
    space: SearchSpace, n: int, rng: np.random.Generator, cost: CostModel, bins: int = 10, pool_factor: int = 20,
    keep: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """``n`` distinct gene vectors spread evenly over the FLOPs range: the min and max archs, then
    round-robin over ``bins`` equal-width FLOPs bins of a candidate pool (half uniform, half drawn
    at a random "size level" so that both ends of the range are populated).

    ``keep(genes) -> bool mask`` restricts the pool (e.g. to the archs under a search's budgets): the
    range is then that of the kept archs, led by the smallest and the largest of them."""
    sizes = space.gene_sizes
    m = max(n * pool_factor, 1000)
    uniform = space.sample_genes(rng, m // 2)
    level = rng.random((m - m // 2, 1))
    scaled = rng.binomial(np.broadcast_to(sizes - 1, (len(level), len(sizes))), level)
    pool = np.concatenate([np.zeros((1, len(sizes)), np.int64), sizes[None, :] - 1, uniform, scaled])
    flops = cost.flops(pool)
    if keep is not None:
        ok = np.asarray(keep(pool), dtype=bool)
        if not ok.any():
            return np.zeros((0, len(sizes)), np.int64)
        pool, flops = pool[ok], flops[ok]
        ends = [int(np.argmin(flops)), int(np.argmax(flops))]
        rest = np.setdiff1d(np.arange(len(pool)), ends)  # in pool order
        pool, flops = pool[np.concatenate([ends, rest])], flops[np.concatenate([ends, rest])]
    edges = np.linspace(flops[0], flops[1], bins + 1)
    bin_of = np.clip(np.searchsorted(edges, flops, side="right") - 1, 0, bins - 1)
    queues = [deque(np.flatnonzero(bin_of[2:] == b) + 2) for b in range(bins)]
    chosen, seen = [], set()
    for idx in [0, 1]:
        _take(pool, idx, chosen, seen, n)
    while len(chosen) < n and any(queues):
        for q in queues:
            while q and len(chosen) < n and not _take(pool, q.popleft(), chosen, seen, n):
                pass
    return np.stack(chosen) if chosen else np.zeros((0, len(sizes)), np.int64)


def _take(pool: np.ndarray, idx: int, chosen: list, seen: set, n: int) -> bool:
    key = pool[idx].tobytes()
    if key in seen or len(chosen) >= n:
        return False
    seen.add(key)
    chosen.append(pool[idx])
    return True


def _unique_uniform(space: SearchSpace, n: int, rng: np.random.Generator,
                    keep: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    genes = space.sample_genes(rng, n * 3 + 10 if keep is None else max(n * 20, 1000))
    if keep is not None:
        genes = genes[np.asarray(keep(genes), dtype=bool)]
    _, first = np.unique(genes, axis=0, return_index=True)
    return genes[np.sort(first)][:n]


def build_arch_dataset(
    space: SearchSpace,
    evaluate_fn: Callable[[Arch], float],
    n: int,
    seed: int = 0,
    cache_path: str | Path | None = None,
    spread: str = "flops",
    num_classes: int = 1000,
    bins: int = 10,
    progress: bool = True,
    over_ranks: bool = False,
    keep: Callable[[np.ndarray], np.ndarray] | None = None,
    log: Callable[[str], None] | None = None,
) -> ArchDataset:
    """Evaluate ``n`` archs spread over the FLOPs range and return their records.

    Archs already in ``cache_path`` (a dataset JSONL) are not evaluated again; each new record is
    appended to it as soon as it is measured. ``evaluate_fn(arch)`` returns top-1 in percent.
    ``keep`` restricts the archs (see :func:`spread_genes`). With ``over_ranks`` under a process group
    each rank measures its share (:func:`measure_missing`) and only rank 0 writes ``cache_path``;
    without it every process measures every arch (stage 1's online predictor, whose
    ``evaluate_fn`` is itself spread over ranks).
    """
    if n < 1:
        raise ConfigError(f"number of archs must be >= 1, got {n}")
    if spread not in SPREADS:
        raise ConfigError(f"unknown spread {spread!r}; allowed: {list(SPREADS)}")
    rng = np.random.default_rng(seed)
    cost = CostModel(space, num_classes)
    genes = (spread_genes(space, n, rng, cost, bins, keep=keep) if spread == "flops"
             else _unique_uniform(space, n, rng, keep))
    archs = [space.decode(g) for g in genes]
    if log is not None and len(archs):
        f = cost.flops(genes)
        ranks = f" on {world_size()} ranks" if over_ranks and world_size() > 1 else ""
        log(f"{len(archs)} subnets spread over {f.min():.4g}-{f.max():.4g} MFLOPs{ranks} (BN recalibrated; those "
            "already measured are not measured again)")
    if cache_path is None:
        return _evaluate_into(ArchDataset(space, num_classes=num_classes), None, archs, cost, evaluate_fn,
                              progress, None, over_ranks, log)
    cp = Path(cache_path)
    shared = over_ranks and world_size() > 1
    with OutputLock(cp.parent, "dataset file", name=f".{cp.name}.lock") if is_main() or not shared else nullcontext():
        if shared:
            cache, appender = open_shared_cache(cp, space, num_classes)
        else:
            if cp.exists() and not cp.is_file():
                raise ConfigError(f"dataset file {cp} exists and is not a file; choose another path")
            cache = (ArchDataset.load(cp, space, num_classes) if cp.exists()
                     else ArchDataset(space, num_classes=num_classes))
            appender = JsonlAppender(cp, dataset_header(space, num_classes))
        out = _evaluate_into(cache, appender, archs, cost, evaluate_fn, progress, cp, over_ranks, log)
        if shared:
            finish_part_file(cp)
        return out


def _evaluate_into(cache: ArchDataset, appender: JsonlAppender | None, archs: list[Arch], cost: CostModel,
                   evaluate_fn: Callable[[Arch], float], progress: bool, cache_path: Path | None, over_ranks: bool,
                   log: Callable[[str], None] | None) -> ArchDataset:
    """Measure the archs not yet in ``cache`` (appending each record), and return the records of ``archs``."""
    measure_missing(cache, archs, evaluate_fn, cost, appender=appender, cache_path=cache_path, progress=progress,
                    desc="evaluating archs", over_ranks=over_ranks, log=log)
    return cache.subset(archs)


# --------------------------------------------------------------------------- measuring over ranks
def open_shared_cache(path: Path, space: SearchSpace, num_classes: int) -> tuple[ArchDataset, JsonlAppender | None]:
    """The dataset at ``path`` on every rank (rank 0 reads it and sends its text: the other ranks need
    no shared file system) and, on rank 0 only, the appender that adds new records to it."""
    text = None
    if is_main():
        if path.exists() and not path.is_file():
            raise ConfigError(f"dataset file {path} exists and is not a file; choose another path")
        text = read_text_file(path, "dataset file", ConfigError) if path.exists() else ""
    data = broadcast_bytes(text.encode("utf-8") if text is not None else None).decode("utf-8")
    cache = ArchDataset.loads(data, space, num_classes, path) if data.strip() else ArchDataset(space, num_classes=num_classes)
    appender = JsonlAppender(path, dataset_header(space, num_classes)) if is_main() else None
    return cache, appender


def part_file(path: Path, who: int | None = None) -> Path:
    """Where rank ``who`` keeps the records it measured before they are gathered into ``path``
    (``.NAME.rankR``, beside it): a killed job loses none of them."""
    return path.with_name(f".{path.name}.rank{rank() if who is None else who}")


def finish_part_file(path: Path | None) -> None:
    """After every rank's records are in ``path`` (rank 0 appended them): each rank drops its part file."""
    if path is None or world_size() <= 1:
        return
    barrier()
    part_file(path).unlink(missing_ok=True)


@dataclass(frozen=True)
class MeasureStats:
    """What one :func:`measure_missing` call did: archs measured (over all ranks), and the seconds
    per arch of rank 0's first measurements (0 when nothing was measured)."""

    measured: int = 0
    seconds_per_arch: float = 0.0


def measure_missing(cache: ArchDataset, archs: Iterable[Arch], evaluate_fn: Callable[[Arch], float], cost: CostModel,
                    *, appender: JsonlAppender | None = None, cache_path: Path | None = None, progress: bool = True,
                    desc: str = "measuring subnets", log: Callable[[str], None] | None = None,
                    over_ranks: bool = True) -> MeasureStats:
    """Measure every arch of ``archs`` not in ``cache`` once, add the records to it (and, on rank 0,
    append them to ``appender`` in the order of ``archs``).

    Under a process group each rank measures its share (balanced by MFLOPs, :func:`share`) on its own
    device, keeps each record in its part file (:func:`part_file`, read back when a killed job runs
    again), then the accuracies are summed over ranks: every rank ends with the same records, as one
    process would (``over_ranks=False``: this process measures them all). ``log`` (rank 0) receives a
    time estimate after the first measurements.
    """
    todo: list[Arch] = []
    seen = set()
    for a in archs:
        if a.key() not in seen and a not in cache:
            seen.add(a.key())
            todo.append(a)
    if not todo:
        return MeasureStats()
    genes = cache.space.encode_many(todo)
    flops, params = cost.flops_and_params(genes)
    world, me = (world_size(), rank()) if over_ranks else (1, 0)
    mine = share(flops + float(np.mean(flops)), world, me) if world > 1 else list(range(len(todo)))
    part: ArchDataset | None = None
    part_appender = None
    if world > 1 and cache_path is not None:
        pp = part_file(cache_path)
        part = ArchDataset.load(pp, cache.space, cache.num_classes) if pp.is_file() else None
        part_appender = JsonlAppender(pp, dataset_header(cache.space, cache.num_classes))
    values = np.zeros(len(todo), dtype=np.float64)
    t0, first = time.perf_counter(), 0.0
    probe = min(2, len(mine))
    for k, j in enumerate(progress_bar([int(i) for i in mine], desc, progress and me == 0)):
        arch = todo[j]
        rec = part.get(arch) if part is not None else None
        if rec is None:
            rec = ArchRecord(arch, float(evaluate_fn(arch)), float(flops[j]), float(params[j]) / 1e6)
            if world == 1:
                cache.add(rec)
                if appender is not None:
                    appender.append(rec.to_dict())
            elif part_appender is not None:
                part_appender.append(rec.to_dict())
        values[j] = rec.accuracy
        if k + 1 == probe:
            first = (time.perf_counter() - t0) / probe
            if log is not None and me == 0 and len(todo) > probe:
                log(f"about {first:.2f} s per subnet: about {format_seconds(first * len(mine))} for {len(todo)} subnets"
                    f"{f' on {world} ranks' if world > 1 else ''}")
    if world > 1:
        values = sum_floats(values)
        for j, arch in enumerate(todo):
            rec = ArchRecord(arch, float(values[j]), float(flops[j]), float(params[j]) / 1e6)
            cache.add(rec)
            if appender is not None:
                appender.append(rec.to_dict())
    return MeasureStats(len(todo), first)


def format_seconds(s: float) -> str:
    """``42 s``, ``3.5 min`` or ``2.1 h``."""
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"
