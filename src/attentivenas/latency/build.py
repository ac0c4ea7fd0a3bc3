"""Building a latency table: every op signature needed and a few whole subnets, loaded in one
runtime, timed together, then the table's models fitted (:mod:`attentivenas.latency.fit`).

:func:`build_table` takes its settings as one :class:`~attentivenas.config.LatencyTableConfig`;
:func:`build_latency_table` is the same with the settings as keywords.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ..config import LatencyTableConfig
from ..devices import device_name
from ..errors import UserError
from ..progress import progress_bar
from ..space import Arch, SearchSpace
from .drift import DriftReference
from .exports import ExportJob, export_programs
from .fit import MIN_SCALED_ARCHS, fit_models, holdout_errors, subnet_records
from .measure import arch_inputs, arch_runners, check_timing, drift_reference, time_in_passes
from .ops import OpSig, arch_ops, null_runner, op_input, op_runner, space_signatures
from .runtimes import PROGRAM_RUNTIMES, Runner, check_runtime, load_program, runtime_version
from .table import MODELS, LatencyTable, space_config


def build_table(space: SearchSpace, config: LatencyTableConfig, archs: Sequence[Arch] | None = None,
                holdout: Sequence[Arch] | None = None, supernet: nn.Module | None = None,
                progress: bool = True) -> LatencyTable:
    """Measure every op signature needed in ``config.runtime`` and fit the table's models.

    The ops measured: those of ``archs`` when given, else of ``config.archs`` seeded random archs
    plus the min and max archs, else (``None``) every signature of the space (feasible for small
    spaces). Every op and whole subnet is first exported and loaded in the runtime
    (:mod:`attentivenas.latency.runtimes`), then all are timed together, in a seeded random order, in
    ``passes`` passes (:func:`~attentivenas.latency.measure.time_in_passes`): the median of ``repeats``
    runs after ``warmup``, the lowest over the passes. The overhead (``overhead_ms + per_block_ms *
    blocks``) is fitted to (measured - sum of ops) on ``calibration_archs`` seeded random whole
    subnets (:func:`~attentivenas.latency.fit.fit_overhead`; 0: no overhead); with at least
    :data:`~attentivenas.latency.fit.MIN_SCALED_ARCHS` of them the ``scaled`` model is fitted too.
    ``model``: ``sum``, ``scaled``, or ``auto`` (the lower leave-one-out error on the calibration
    archs). ``holdout`` (``None``: ``config.holdout_archs`` seeded random archs): archs measured whole
    in the same passes (and their ops added) to report every model's error on them (in
    ``table.meta``). ``clock``: see :func:`~attentivenas.latency.measure.measure_latency`.
    ``precision``: ``int8`` quantizes every op and whole subnet alike (:mod:`.runtimes`; ExecuTorch,
    ONNX Runtime, OpenVINO) and the table's ``meta["precision"]`` records it
    (:func:`~.table.check_table_precision`). ``jobs``:
    worker processes that export the programs of ONNX Runtime and ExecuTorch (:mod:`.exports`; the
    same weights, inputs and timings as with one). ``drift_correction``: the space's min subnet,
    loaded in the runtime too, is the drift reference of the passes (:mod:`.drift`: times at the
    machine's typical speed, the median over passes) instead of keeping each runner's lowest median.
    """
    c = config
    runtime, batch, threads, num_classes, seed = c.runtime, c.batch, c.threads, c.num_classes, c.seed
    precision = c.precision
    dev = check_runtime(runtime, c.device, precision)
    if batch < 1:
        raise UserError(f"batch must be >= 1, got {batch}")
    if c.passes < 1:
        raise UserError(f"passes must be >= 1, got {c.passes}")
    if c.model not in (*MODELS, "auto"):
        raise UserError(f"unknown latency model {c.model!r}; use sum, scaled or auto")
    if c.model == "scaled" and c.calibration_archs < MIN_SCALED_ARCHS:
        raise UserError(f"the scaled model needs --calibration-archs >= {MIN_SCALED_ARCHS}, got {c.calibration_archs}")
    check_timing(c.warmup, c.repeats, 1, c.clock, runtime, dev, threads)
    check_jobs(c.jobs, runtime, supernet)
    if holdout is None:  # archs apart from the ones the overhead is fitted on
        hrng = np.random.default_rng(seed + 7919)
        holdout = [space.sample(hrng) for _ in range(c.holdout_archs)]
    sigs = _signatures(space, c.archs if archs is None else archs, num_classes, c.max_signatures,
                       np.random.default_rng(seed))
    crng = np.random.default_rng(seed + 10_007)
    calib = [space.sample(crng) for _ in range(c.calibration_archs)]
    for a in [*calib, *holdout]:
        sigs.update(arch_ops(space, a, num_classes))
    ordered = sorted(sigs)
    subnets = [*calib, *holdout, *([space.min_arch()] if c.drift_correction else [])]
    if c.jobs > 1:
        op_run, whole = _runners_exported_apart(ordered, subnets, space, batch, threads, num_classes, seed, runtime,
                                                c.jobs, progress, precision)
    else:
        op_run = _op_runners(ordered, space, dev, batch, threads, seed, runtime, progress, precision)
        whole = arch_runners(space, subnets, dev, batch, threads, num_classes, supernet, seed, progress, runtime,
                             precision)
    # graph runtimes: a near-empty op, whose time is the per-call cost (timed longer: it is short)
    null = [] if runtime == "torch" else [null_runner(dev, batch, threads, runtime, precision)]
    reference = drift_reference(whole.pop(), c.clock) if c.drift_correction else None
    repeats_of = [c.repeats] * len(op_run) + [c.repeats * 5] * len(null) + [c.repeats] * len(whole)
    times = time_in_passes([*op_run, *null, *whole], c.warmup, repeats_of, c.passes, c.clock, seed, progress,
                           f"latency ({runtime})", reference)
    entries = {sig.key(): ms for sig, ms in zip(ordered, times[:len(op_run)], strict=True)}
    call_ms = times[len(op_run)] if null else 0.0
    whole_ms = times[len(op_run) + len(null):]
    table = LatencyTable(
        space={"name": space.name, "supernet_config": space_config(space)},
        entries=entries,
        num_classes=num_classes,
        batch=batch,
        threads=threads if threads is not None else torch.get_num_threads(),
        device=str(dev),
        device_name=device_name(dev),
        runtime=runtime,
        runtime_version=runtime_version(runtime),
        call_ms=call_ms,
        meta={"precision": precision, "warmup": c.warmup, "repeats": c.repeats, "passes": c.passes, "seed": seed, "num_ops": len(entries),
              "clock": c.clock, "op_output": "whole" if runtime == "torch" else "one element",
              "calibration_subnets": subnet_records(calib, whole_ms[:len(calib)]),
              "drift_reference": _reference_record(reference)},
    )
    if calib:
        fit_models(table, space, calib, whole_ms[:len(calib)], c.model)
    if holdout:
        holdout_errors(table, space, list(holdout), whole_ms[len(calib):])
    return table


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


def _op_runners(ordered: Sequence[OpSig], space: SearchSpace, dev: torch.device, batch: int, threads: int | None,
                seed: int, runtime: str, progress: bool, precision: str = "fp32") -> list[Runner]:
    """Every op loaded in the runtime."""
    return [op_runner(sig, dev, batch, threads, seed + i, space.act, runtime, precision)
            for i, sig in enumerate(progress_bar(ordered, f"load ops ({runtime})", progress and runtime != "torch"))]


def check_jobs(jobs: int, runtime: str, supernet: nn.Module | None = None) -> None:
    """User errors for export ``jobs`` that cannot be used."""
    if jobs < 1:
        raise UserError(f"jobs must be >= 1, got {jobs}")
    if jobs > 1 and runtime not in PROGRAM_RUNTIMES:
        raise UserError(f"--jobs > 1 exports programs in worker processes, which only {' and '.join(PROGRAM_RUNTIMES)} "
                        f"load; runtime {runtime!r} needs --jobs 1")
    if jobs > 1 and supernet is not None:
        raise ValueError("jobs > 1 rebuilds the subnets from the seed; pass supernet=None")


def _runners_exported_apart(ordered: Sequence[OpSig], subnets: Sequence[Arch], space: SearchSpace, batch: int,
                            threads: int | None, num_classes: int, seed: int, runtime: str, jobs: int,
                            progress: bool, precision: str = "fp32") -> tuple[list[Runner], list[Runner]]:
    """The op and whole-subnet runners of a table, their programs exported by ``jobs`` workers."""
    # the whole subnets first: the longest exports, so that no worker is left with one at the end
    work = [ExportJob.arch(a) for a in subnets] + [ExportJob.op(sig, seed + i) for i, sig in enumerate(ordered)]
    programs = export_programs(work, space, runtime, batch, num_classes, seed, jobs, progress, precision)
    inputs = arch_inputs(subnets, batch, seed) + [op_input(sig, batch, seed + i) for i, sig in enumerate(ordered)]
    runners = [load_program(p, x, runtime, threads) for p, x in zip(programs, inputs, strict=True)]
    return runners[len(subnets):], runners[:len(subnets)]

