"""Building a latency table: every op signature needed and a few whole subnets, loaded in one
runtime, timed together, then the table's models fitted (:mod:`attentivenas.latency.fit`).

The ops measured: those of ``archs`` when given, else of ``config.archs`` seeded random archs plus
the min and max archs, else (``None``) every signature of the space (feasible for small spaces).
Every op and whole subnet is first exported and loaded in the runtime (through its record,
:mod:`attentivenas.runtimes.runners`), then all are timed together, in a seeded random order, in
``passes`` passes (:func:`~attentivenas.latency.measure.time_in_passes`): the median of ``repeats``
runs after ``warmup``, the lowest over the passes. The overhead (``overhead_ms + per_block_ms *
blocks``) is fitted to (measured - sum of ops) on ``calibration_archs`` seeded random whole subnets
(:func:`~attentivenas.latency.fit.fit_overhead`; 0: no overhead); with at least
:data:`~attentivenas.latency.fit.MIN_SCALED_ARCHS` of them the ``scaled`` model is fitted too.
``model``: ``sum``, ``scaled``, or ``auto`` (the lower leave-one-out error on the calibration archs).
Held-out archs are measured whole in the same passes (and their ops added) to report every model's
error on them (in ``table.meta``). ``clock``: see :func:`~attentivenas.latency.measure.measure_latency`.
``precision``: ``int8`` quantizes every op and whole subnet alike (the runtime's INT8 quantizer) and
the table's ``meta["precision"]`` records it (:func:`~.table.check_table_precision`). ``jobs``:
worker processes that export the programs of the runtimes whose files are bytes (:mod:`.exports`;
the same weights, inputs and timings as with one). ``drift_correction``: the space's min subnet,
loaded in the runtime too, is the drift reference of the passes (:mod:`.drift`: times at the
machine's typical speed, the median over passes) instead of keeping each runner's lowest median.
A partial file keeps every time as it is measured (:mod:`.partial`): a build of the same settings
started again reuses them and it is removed at the end. The table's ``meta["space_range"]`` is the
space's predicted latency range (a whole-space table).

:func:`build_table` takes its settings as one :class:`~attentivenas.config.LatencyTableConfig`;
:func:`build_latency_table` is the same with the settings as keywords.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..config import LatencyTableConfig
from ..costs import weight_bytes
from ..devices import device_name
from ..errors import UserError
from ..progress import progress_bar
from ..runtimes.records import Runtime
from ..runtimes.records import runtime as get_runtime
from ..runtimes.runners import PROGRAM_RUNTIMES, Runner, check_runtime, load_program, prepare, runtime_version
from ..space import Arch, SearchSpace
from .drift import DriftReference
from .exports import ExportJob, iter_programs
from .fit import MIN_SCALED_ARCHS, fit_models, holdout_errors, subnet_records
from .measure import (
    arch_inputs,
    check_batch,
    check_timing,
    drift_reference,
    random_subnet,
    seeded_supernet,
    time_in_passes,
)
from .ops import OpSig, arch_ops, null_runner, op_input, op_runner, space_signatures
from .partial import PassStore, item_keys
from .table import MODELS, LatencyTable, space_config


@dataclass
class _Items:
    """What a build times: the op signatures (sorted), the calibration and held-out archs, the whole
    subnets loaded (those two, then the drift reference), and the keys of the timed items."""

    ordered: list[OpSig]
    calib: list[Arch]
    holdout: list[Arch]
    subnets: list[Arch]
    null_n: int  # 1: a near-empty op is timed too (a graph runtime's per-call cost)
    keys: list[str]

    @property
    def timed(self) -> int:
        return len(self.calib) + len(self.holdout)


def build_table(space: SearchSpace, config: LatencyTableConfig, archs: Sequence[Arch] | None = None,
                holdout: Sequence[Arch] | None = None, supernet: nn.Module | None = None,
                progress: bool = True, partial: Path | None = None,
                log: Callable[[str], None] | None = None) -> LatencyTable:
    """Measure every op signature needed in ``config.runtime`` and fit the table's models (the
    module's docstring says what is measured and how). ``archs``: the archs whose ops are measured
    (``None``: ``config.archs``); ``holdout``: archs measured whole to report the models' errors
    (``None``: ``config.holdout_archs`` seeded random ones); ``supernet``: the subnets' weights
    (``None``: seeded); ``partial``: the file that keeps every time as it is measured (``log`` says
    how many a restarted build reuses)."""
    c = config
    dev, rt = _check_build(space, c, supernet)
    items = _items(space, c, archs, holdout, rt)
    if dev.type == "cpu":
        check_loaded_memory(space, items.subnets, c.precision, c.num_classes, available_memory_bytes())
    store = PassStore.open(partial, _settings(c, space, dev, c.threads), c.passes)
    if store.reused and log is not None:
        log(f"resuming from {partial}: {store.reused} of {len(items.keys) * c.passes} measurements reused "
            f"({sum(store.complete(k) for k in items.keys)} of {len(items.keys)} ops and subnets done in every pass)")
    runners, reference = _load(space, c, items, store, dev, rt, supernet, progress)
    n_ops, timed = len(items.ordered), items.timed
    repeats_of = [c.repeats] * n_ops + [c.repeats * 5] * items.null_n + [c.repeats] * timed
    label = f"timing {n_ops} ops + {timed} subnets ({rt.name}{', int8' if c.precision == 'int8' else ''})"
    times = time_in_passes(runners, c.warmup, repeats_of, c.passes, c.clock, c.seed, progress, label, reference,
                           items.keys, store)
    table = _table(space, c, items, times, dev, rt, reference, len(archs) if archs is not None else c.archs)
    store.remove()
    return table


#: resident memory of a build per byte of its whole subnets' fp32 weights (ONNX Runtime, the
#: attentivenas space, 2026-12-08: 131 subnets of 7.9 GB of weights and 1220 ops reached 22.5 GB;
#: 250 subnets of 15.3 GB were killed by the kernel past 22 GB)
LOADED_PER_WEIGHT_BYTE = 3.0


def available_memory_bytes() -> int | None:
    """The memory this machine has available now (``MemAvailable`` of ``/proc/meminfo``), or None."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_loaded_memory(space: SearchSpace, subnets: Sequence[Arch], precision: str, num_classes: int,
                        available: int | None) -> None:
    """A user error, before any export, when the whole subnets a build loads at once (they are timed
    together, in interleaved passes) would not fit in ``available`` bytes: the kernel would kill the
    build after minutes of exporting instead."""
    if available is None or not subnets:
        return
    weights = sum(weight_bytes(space, a, "float32", num_classes) for a in subnets)
    need = weights * LOADED_PER_WEIGHT_BYTE / (4 if precision == "int8" else 1)
    if need > 0.85 * available:
        raise UserError(f"build-table loads its {len(subnets)} whole subnets at once (calibration, held-out and the "
                        f"drift reference): about {need / 1e9:.1f} GB ({weights / 1e9:.1f} GB of fp32 weights), more "
                        f"than the {available / 1e9:.1f} GB this machine has available; measure fewer "
                        "(--calibration-archs, --holdout-archs) or write a kit (`latency kit`)")


def _check_build(space: SearchSpace, c: LatencyTableConfig, supernet: nn.Module | None) -> tuple[torch.device, Runtime]:
    """The device and runtime record of a build; user errors for settings it cannot use."""
    dev = check_runtime(c.runtime, c.device, c.precision)
    if c.batch < 1:
        raise UserError(f"batch must be >= 1, got {c.batch}")
    if c.passes < 1:
        raise UserError(f"passes must be >= 1, got {c.passes}")
    if c.model not in (*MODELS, "auto"):
        raise UserError(f"unknown latency model {c.model!r}; use sum, scaled or auto")
    if c.model == "scaled" and c.calibration_archs < MIN_SCALED_ARCHS:
        raise UserError(f"the scaled model needs --calibration-archs >= {MIN_SCALED_ARCHS}, got {c.calibration_archs}")
    check_timing(c.warmup, c.repeats, 1, c.clock, c.runtime, dev, c.threads)
    check_batch(space, space.max_arch(), c.batch, c.num_classes)
    check_jobs(c.jobs, c.runtime, supernet)
    return dev, get_runtime(c.runtime)


def _items(space: SearchSpace, c: LatencyTableConfig, archs: Sequence[Arch] | None, holdout: Sequence[Arch] | None,
           rt: Runtime) -> _Items:
    """The ops and whole subnets of a build (seeded draws: held-out archs, op archs, calibration archs)."""
    if holdout is None:  # archs apart from the ones the overhead is fitted on
        hrng = np.random.default_rng(c.seed + 7919)
        holdout = [space.sample(hrng) for _ in range(c.holdout_archs)]
    sigs = _signatures(space, c.archs if archs is None else archs, c.num_classes, c.max_signatures,
                       np.random.default_rng(c.seed))
    crng = np.random.default_rng(c.seed + 10_007)
    calib = [space.sample(crng) for _ in range(c.calibration_archs)]
    for a in [*calib, *holdout]:
        sigs.update(arch_ops(space, a, c.num_classes))
    ordered = sorted(sigs)
    subnets = [*calib, *holdout, *([space.min_arch()] if c.drift_correction else [])]
    null_n = 0 if rt.eager else 1
    timed = len(calib) + len(holdout)
    keys = item_keys([s.key() for s in ordered], [a.to_dict() for a in subnets[:timed]], bool(null_n))
    return _Items(ordered, calib, list(holdout), subnets, null_n, keys)


def _load(space: SearchSpace, c: LatencyTableConfig, items: _Items, store: PassStore, dev: torch.device, rt: Runtime,
          supernet: nn.Module | None, progress: bool) -> tuple[list[Runner | None], DriftReference | None]:
    """The runners of the items not measured yet (``None`` for the others), in timing order, and the
    drift reference (the min subnet, always loaded) when the build corrects drift."""
    ordered, timed, null_n = items.ordered, items.timed, items.null_n
    op_idx = [i for i, sig in enumerate(ordered) if not store.complete(items.keys[i])]
    sub_idx = [j for j in range(timed) if not store.complete(items.keys[len(ordered) + null_n + j])]
    sub_idx += [timed] if c.drift_correction else []  # the drift reference is always loaded
    if c.jobs > 1:
        op_run, whole = _runners_exported_apart(ordered, op_idx, items.subnets, sub_idx, space, c.batch, c.threads,
                                                c.num_classes, c.seed, rt.name, c.jobs, progress, c.precision)
    else:
        op_run = _op_runners(ordered, op_idx, space, dev, c.batch, c.threads, c.seed, rt.name, progress, c.precision)
        whole = _subnet_runners(space, items.subnets, sub_idx, dev, c.batch, c.threads, c.num_classes, supernet,
                                c.seed, progress, rt.name, c.precision)
    # graph runtimes: a near-empty op, whose time is the per-call cost (timed longer: it is short)
    null_done = not null_n or store.complete("null")
    null = [None if null_done else null_runner(dev, c.batch, c.threads, rt.name, c.precision)] * null_n
    reference = drift_reference(whole.pop(timed), c.clock) if c.drift_correction else None
    return [*op_run, *null, *(whole.get(j) for j in range(timed))], reference


def _table(space: SearchSpace, c: LatencyTableConfig, items: _Items, times: Sequence[float], dev: torch.device,
           rt: Runtime, reference: DriftReference | None, archs: int | None) -> LatencyTable:
    """The table of a build's times, its models fitted on the calibration subnets and checked on the held-out ones."""
    ordered, calib, null_n = items.ordered, items.calib, items.null_n
    entries = {sig.key(): ms for sig, ms in zip(ordered, times[:len(ordered)], strict=True)}
    whole_ms = list(times[len(ordered) + null_n:])
    table = LatencyTable(
        space={"name": space.name, "supernet_config": space_config(space)}, entries=entries,
        num_classes=c.num_classes, batch=c.batch,
        threads=c.threads if c.threads is not None else torch.get_num_threads(), device=str(dev),
        device_name=device_name(dev), runtime=rt.name, runtime_version=runtime_version(rt.name),
        call_ms=times[len(ordered)] if null_n else 0.0,
        meta={"precision": c.precision, "archs": archs, "warmup": c.warmup, "repeats": c.repeats, "passes": c.passes,
              "seed": c.seed, "num_ops": len(entries), "clock": c.clock,
              "op_output": "whole" if rt.eager else "one element",
              "calibration_subnets": subnet_records(calib, whole_ms[:len(calib)]),
              "drift_reference": _reference_record(reference)},
    )
    if calib:
        fit_models(table, space, calib, whole_ms[:len(calib)], c.model)
    if items.holdout:
        holdout_errors(table, space, list(items.holdout), whole_ms[len(calib):])
    if not table.missing_ops(space):  # a whole-space table: the latency range a search's budgets are taken from
        table.meta["space_range"] = table.space_range(space)
    return table


def _settings(c: LatencyTableConfig, space: SearchSpace, dev: torch.device, threads: int | None) -> dict[str, Any]:
    """What a build's times depend on (the key of its partial file): not ``jobs`` (exports in workers
    are the same programs) nor ``model`` (fitted after the timing)."""
    return {"config": c.model_dump(exclude={"jobs", "model"}), "space": space_config(space), "device": str(dev),
            "device_name": device_name(dev), "threads": threads if threads is not None else torch.get_num_threads(),
            "runtime_version": runtime_version(c.runtime), "torch": torch.__version__}


def build_latency_table(
    space: SearchSpace,
    device: str | torch.device | None = "cpu",
    batch: int = 1,
    archs: Sequence[Arch] | int | None = None,
    num_classes: int = 1000,
    threads: int | None = 1,
    warmup: int = 5,
    repeats: int = 20,
    passes: int = 1,
    calibration_archs: int = 4,
    seed: int = 0,
    progress: bool = True,
    max_signatures: int = 20000,
    supernet: nn.Module | None = None,
    clock: str = "wall",
    runtime: str = "torch",
    model: str = "auto",
    holdout: Sequence[Arch] = (),
    jobs: int = 1,
    drift_correction: bool = True,
    precision: str = "fp32",
) -> LatencyTable:
    """:func:`build_table` with the settings as keywords (the defaults of :class:`LatencyTableConfig`;
    ``archs``: a count, a list of archs or ``None``; ``holdout``: the held-out archs, none by default)."""
    if isinstance(device, torch.device):
        check_runtime(runtime, device, precision)  # its errors name the device as given
        device = str(device)
    config = LatencyTableConfig(
        runtime=runtime, device=device, batch=batch, threads=threads, num_classes=num_classes,
        archs=archs if isinstance(archs, int) else None, max_signatures=max_signatures, warmup=warmup,
        repeats=repeats, passes=passes, clock=clock, calibration_archs=calibration_archs, model=model,
        holdout_archs=len(holdout), seed=seed, jobs=jobs, drift_correction=drift_correction, precision=precision)
    return build_table(space, config, None if isinstance(archs, int) else archs, list(holdout), supernet, progress)


def _reference_record(reference: DriftReference | None) -> dict[str, Any] | None:
    """What a table keeps of its drift reference (the min subnet): its typical time and range."""
    if reference is None:
        return None
    pts = reference.points
    return {"arch": "min", "typical_ms": reference.typical_ms(), "points": len(pts), "runs_per_point": reference.runs,
            "min_ms": float(min(pts)), "max_ms": float(max(pts))}


def _signatures(space: SearchSpace, archs: Sequence[Arch] | int | None, num_classes: int, max_signatures: int,
                rng: np.random.Generator) -> set[OpSig]:
    """The op signatures a table of ``archs`` (see :func:`build_table`) measures."""
    if archs is None:
        sigs = space_signatures(space, num_classes)
        if len(sigs) > max_signatures:
            raise UserError(
                f"space '{space.name}' has {len(sigs)} op signatures (> {max_signatures}); "
                "build the table from sampled archs instead (--archs N)"
            )
        return set(sigs)
    if isinstance(archs, int):
        if archs < 1:
            raise UserError(f"number of archs must be >= 1, got {archs}")
        chosen = [space.min_arch(), space.max_arch()] + [space.sample(rng) for _ in range(archs)]
    else:
        chosen = [space.validate(a) for a in archs]
    sigs: set[OpSig] = set()
    for a in chosen:
        sigs.update(arch_ops(space, a, num_classes))
    return sigs


def _op_runners(ordered: Sequence[OpSig], idx: Sequence[int], space: SearchSpace, dev: torch.device, batch: int,
                threads: int | None, seed: int, runtime: str, progress: bool,
                precision: str = "fp32") -> list[Runner | None]:
    """The ops at positions ``idx`` of ``ordered`` loaded in the runtime (weights and input of seed
    ``seed + position``); ``None`` at the other positions (measured already)."""
    out: list[Runner | None] = [None] * len(ordered)
    for i in progress_bar(list(idx), f"load {len(idx)} ops ({runtime})", progress and not _eager(runtime)):
        out[i] = op_runner(ordered[i], dev, batch, threads, seed + i, space.act, runtime, precision)
    return out


def _subnet_runners(space: SearchSpace, subnets: Sequence[Arch], idx: Sequence[int], dev: torch.device, batch: int,
                    threads: int | None, num_classes: int, supernet: nn.Module | None, seed: int, progress: bool,
                    runtime: str, precision: str) -> dict[int, Runner]:
    """The whole subnets at positions ``idx`` loaded in the runtime, each on the input it has in the
    whole list (:func:`~.measure.arch_inputs`)."""
    if not idx:
        return {}
    net = supernet if supernet is not None else seeded_supernet(space, num_classes, seed)
    inputs = arch_inputs(subnets, batch, seed)
    return {j: prepare(random_subnet(space, subnets[j], num_classes, seed, net), inputs[j], runtime, dev, threads,
                       precision)
            for j in progress_bar(list(idx), f"load {len(idx)} subnets ({runtime})", progress and not _eager(runtime))}


def _eager(name: str) -> bool:
    return get_runtime(name).eager


def check_jobs(jobs: int, runtime: str, supernet: nn.Module | None = None) -> None:
    """User errors for export ``jobs`` that cannot be used."""
    if jobs < 1:
        raise UserError(f"jobs must be >= 1, got {jobs}")
    if jobs > 1 and not get_runtime(runtime).program:
        raise UserError(f"--jobs > 1 exports programs in worker processes, which only {' and '.join(PROGRAM_RUNTIMES)} "
                        f"load; runtime {runtime!r} needs --jobs 1")
    if jobs > 1 and supernet is not None:
        raise ValueError("jobs > 1 rebuilds the subnets from the seed; pass supernet=None")


def _runners_exported_apart(ordered: Sequence[OpSig], op_idx: Sequence[int], subnets: Sequence[Arch],
                            sub_idx: Sequence[int], space: SearchSpace, batch: int, threads: int | None,
                            num_classes: int, seed: int, runtime: str, jobs: int, progress: bool,
                            precision: str = "fp32") -> tuple[list[Runner | None], dict[int, Runner]]:
    """The op and whole-subnet runners at ``op_idx`` and ``sub_idx``, their programs exported by ``jobs`` workers."""
    # the whole subnets first: the longest exports, so that no worker is left with one at the end
    work = [ExportJob.arch(subnets[j]) for j in sub_idx] + [ExportJob.op(ordered[i], seed + i) for i in op_idx]
    sub_inputs = arch_inputs(subnets, batch, seed)
    inputs = [sub_inputs[j] for j in sub_idx] + [op_input(ordered[i], batch, seed + i) for i in op_idx]
    programs = iter_programs(work, space, runtime, batch, num_classes, seed, jobs, progress, precision)
    runners = [load_program(p, x, runtime, threads) for p, x in zip(programs, inputs, strict=True)]  # one at a time
    ops: list[Runner | None] = [None] * len(ordered)
    for i, r in zip(op_idx, runners[len(sub_idx):], strict=True):
        ops[i] = r
    return ops, dict(zip(sub_idx, runners[:len(sub_idx)], strict=True))
