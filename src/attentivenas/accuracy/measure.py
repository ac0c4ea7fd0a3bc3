"""Measuring archs into a dataset: archs spread over the FLOPs range, measured once each (over
ranks when a process group runs), every record appended as soon as it is measured.

:func:`build_arch_dataset` evaluates only the archs not yet in its file (:func:`measure_missing`),
so an interrupted build keeps its work; under a process group each rank keeps its records in a
part file (:func:`part_file`) until they are gathered.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..costs import CostModel
from ..distributed import barrier, broadcast_bytes, is_main, rank, share, sum_floats, world_size
from ..errors import ConfigError
from ..io import OutputLock
from ..progress import progress_bar
from ..space import Arch, SearchSpace
from .dataset import ArchDataset, ArchRecord, JsonlAppender, dataset_header
from .provenance import checked_text, differences, header_and_count, move_aside, provenance_of

SPREADS = ("flops", "uniform")


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
    stale: str = "remeasure",
    warn: Callable[[str], None] | None = None,
) -> ArchDataset:
    """Evaluate ``n`` archs spread over the FLOPs range and return their records.

    Archs already in ``cache_path`` (a dataset JSONL) are not evaluated again; each new record is
    appended to it as soon as it is measured. ``evaluate_fn(arch)`` returns top-1 in percent.
    ``keep`` restricts the archs (see :func:`spread_genes`). With ``over_ranks`` under a process group
    each rank measures its share (:func:`measure_missing`) and only rank 0 writes ``cache_path``;
    without it every process measures every arch (stage 1's online predictor, whose
    ``evaluate_fn`` is itself spread over ranks). A file measured with something else than
    ``evaluate_fn`` measures with (another checkpoint, data or settings) is moved aside with one line
    to ``warn`` and measured again, or refused (``stale``: see :func:`~.provenance.checked_text`).
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
            cache, appender, measured_with = open_shared_cache(cp, space, num_classes, evaluate_fn, stale, warn)
        else:
            measured_with = provenance_of(evaluate_fn)
            text = checked_text(cp, measured_with, stale, warn)
            cache = (ArchDataset.loads(text, space, num_classes, cp) if text.strip()
                     else ArchDataset(space, num_classes=num_classes))
            appender = JsonlAppender(cp, dataset_header(space, num_classes, measured_with))
        out = _evaluate_into(cache, appender, archs, cost, evaluate_fn, progress, cp, over_ranks, log, measured_with)
        if shared:
            finish_part_file(cp)
        return out


def _evaluate_into(cache: ArchDataset, appender: JsonlAppender | None, archs: list[Arch], cost: CostModel,
                   evaluate_fn: Callable[[Arch], float], progress: bool, cache_path: Path | None, over_ranks: bool,
                   log: Callable[[str], None] | None, measured_with: dict | None = None) -> ArchDataset:
    """Measure the archs not yet in ``cache`` (appending each record), and return the records of ``archs``."""
    measure_missing(cache, archs, evaluate_fn, cost, appender=appender, cache_path=cache_path, progress=progress,
                    desc="evaluating archs", over_ranks=over_ranks, log=log, measured_with=measured_with)
    return cache.subset(archs)


# --------------------------------------------------------------------------- measuring over ranks
def open_shared_cache(path: Path, space: SearchSpace, num_classes: int, evaluate_fn: object = None,
                      stale: str = "remeasure", warn: Callable[[str], None] | None = None
                      ) -> tuple[ArchDataset, JsonlAppender | None, dict | None]:
    """The dataset at ``path`` on every rank (rank 0 reads it and sends its text: the other ranks need
    no shared file system), on rank 0 only the appender that adds new records to it, and what
    ``evaluate_fn`` measures with (its ``measured_with``, None for a plain function).

    Rank 0 alone decides whether the file is reused (:func:`~.provenance.checked_text`: a file measured
    with something else is moved aside, or refused); each rank drops a part file measured with
    something else (or any, with ``stale="fresh"``)."""
    envelope = None
    if is_main():
        current = provenance_of(evaluate_fn)
        envelope = json.dumps({"text": checked_text(path, current, stale, warn), "measured_with": current})
    got = json.loads(broadcast_bytes(envelope.encode("utf-8") if envelope is not None else None).decode("utf-8"))
    data, measured_with = got["text"], got["measured_with"]
    if world_size() > 1:
        _drop_stale_part(part_file(path), measured_with, stale == "fresh")
    cache = ArchDataset.loads(data, space, num_classes, path) if data.strip() else ArchDataset(space, num_classes=num_classes)
    appender = JsonlAppender(path, dataset_header(space, num_classes, measured_with)) if is_main() else None
    return cache, appender, measured_with


def _drop_stale_part(pp: Path, measured_with: dict | None, fresh: bool) -> None:
    if not pp.is_file():
        return
    if not fresh:
        if measured_with is None:
            return
        try:
            header, _ = header_and_count(pp.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            header = None
        if not differences(header.get("measured_with") if header else None, measured_with):
            return
    move_aside(pp)  # kept under a name of its provenance: no measurement is deleted


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
                    over_ranks: bool = True, measured_with: dict | None = None) -> MeasureStats:
    """Measure every arch of ``archs`` not in ``cache`` once, add the records to it (and, on rank 0,
    append them to ``appender`` in the order of ``archs``).

    Under a process group each rank measures its share (balanced by MFLOPs, :func:`share`) on its own
    device, keeps each record in its part file (:func:`part_file`, read back when a killed job runs
    again), then the accuracies are summed over ranks: every rank ends with the same records, as one
    process would (``over_ranks=False``: this process measures them all). ``log`` (rank 0) receives a
    time estimate after the first measurements; ``measured_with`` goes into a new part file's header.
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
        part_appender = JsonlAppender(pp, dataset_header(cache.space, cache.num_classes, measured_with))
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
