"""Latency tables: a subnet's latency predicted from per-op latencies measured once on a device,
in one runtime (PyTorch eager, ONNX Runtime, ExecuTorch, OpenVINO), batch and thread count.

Each distinct op signature (:mod:`attentivenas.latency.ops`) is measured once
(:func:`build_latency_table`); the prediction of an arch is the sum of its ops plus
``overhead_ms + per_block_ms * blocks``: the work the ops alone do not show (Python dispatch of the
block and sequence modules, the flatten), fitted by least squares on the residuals of a few whole
subnets measured the same way (a prediction is never below ``MIN_FRACTION`` of its summed op
times). That is the ``sum`` model. Runtimes that fuse across layers (an add into the conv before it,
a whole graph in one delegate call) run a subnet faster than the sum of its ops alone; the
``scaled`` model (:func:`fit_scaled`) also fits one factor per op group (:data:`OP_GROUPS`) on the
same whole subnets. :func:`table_error` reports the mean absolute percentage error (MAPE) of the
table against measured latency on held-out archs.
"""

from __future__ import annotations

import copy
import json
import math
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.optimize import lsq_linear
from torch import nn

from ..devices import device_name
from ..errors import UserError
from ..io import atomic_write_json, read_json_file
from ..progress import progress_bar
from ..space import Arch, SearchSpace
from .drift import DriftReference
from .exports import ExportJob, export_programs
from .measure import arch_inputs, arch_runners, check_timing, drift_reference, time_in_passes
from .ops import OpSig, arch_ops, first_ops, head_ops, null_runner, op_input, op_runner, space_signatures, stage_ops
from .runtimes import PROGRAM_RUNTIMES, RUNTIMES, Runner, check_runtime, load_program, runtime_version

TABLE_FORMAT = "attentivenas-latency-table"
TABLE_VERSION = 2  # 2: runtime, model and group scales (version 1 tables are PyTorch eager, sum model)
MODELS = ("sum", "scaled")
#: op groups of the ``scaled`` model: each group's summed op times get one fitted factor
OP_GROUPS: dict[str, tuple[str, ...]] = {
    "conv": ("first_conv", "expand", "project", "final_expand", "pool", "feature_mix", "classifier"),
    "depthwise": ("depthwise",),
    "residual": ("residual",),
}
GROUP_OF = {kind: g for g, kinds in OP_GROUPS.items() for kind in kinds}
#: most stored subnets (calibration + held-out) `latency refit` accepts: its leave-one-out fits grow with the
#: square of the count (tiny space: 100 subnets 2 s, 200 9 s, 1,000 over 4 min), so a larger table is refused
MAX_REFIT_SUBNETS = 300
#: fewest calibration archs the scaled model is fitted on (2 overhead terms + 3 group factors)
MIN_SCALED_ARCHS = 8
#: A prediction never drops below this fraction of its summed op times: the fitted overhead is
#: often negative (each op timed alone carries call overhead) and, fitted on a few noisy subnets,
#: must not push a small subnet's prediction to zero or below.
MIN_FRACTION = 0.1
#: the range of the ``scaled`` model's per-group factors
FACTOR_BOUNDS = (0.05, 5.0)


def _space_config(space: SearchSpace) -> dict[str, Any]:
    return json.loads(json.dumps(space.to_supernet_config()))


@dataclass
class LatencyTable:
    """Per-op latencies (ms) of one space on one device, plus a fixed per-network overhead."""

    space: dict[str, Any]
    entries: dict[str, float]
    overhead_ms: float = 0.0
    per_block_ms: float = 0.0
    num_classes: int = 1000
    batch: int = 1
    threads: int = 1
    device: str = "cpu"
    device_name: str = ""
    torch_version: str = torch.__version__
    meta: dict[str, Any] = field(default_factory=dict)
    runtime: str = "torch"
    runtime_version: str = ""
    call_ms: float = 0.0
    model: str = "sum"
    group_scale: dict[str, float] = field(default_factory=dict)
    _luts: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    # ----------------------------------------------------------------- checks
    def check_space(self, space: SearchSpace) -> None:
        """Raise :class:`UserError` when ``space`` is not the table's space."""
        if _space_config(space) != self.space.get("supernet_config"):
            raise UserError(
                f"latency table was built for space '{self.space.get('name', '?')}', not for space "
                f"'{space.name}'; build a table for this space with `attentivenas latency build-table`"
            )

    def check_setting(self, runtime: str | None = None, batch: int | None = None, device: str | None = None,
                      threads: int | None = None, num_classes: int | None = None) -> None:
        """Raise :class:`UserError` when the table was measured in another runtime, batch, device,
        thread count or number of classes than asked (``None``: not asked)."""
        asked = {"runtime": runtime, "batch": batch, "device": device, "threads": threads, "num_classes": num_classes}
        have = {"runtime": self.runtime, "batch": self.batch, "device": self.device, "threads": self.threads,
                "num_classes": self.num_classes}
        bad = [f"{k} {have[k]!r} (asked: {v!r})" for k, v in asked.items() if v is not None and v != have[k]]
        if bad:
            raise UserError(f"latency table was measured with {', '.join(bad)}; build a table for this setting "
                            "with `attentivenas latency build-table` (--runtime, --batch, --threads)")

    def setting(self) -> dict[str, Any]:
        """Runtime, device, threads, batch and model of the table."""
        return {"runtime": self.runtime, "runtime_version": self.runtime_version, "device": self.device,
                "device_name": self.device_name, "threads": self.threads, "batch": self.batch, "model": self.model}

    def use_model(self, model: str) -> None:
        """Predict with the fitted model ``model`` (``sum`` or ``scaled``) stored in ``meta['fits']``."""
        fits = self.meta.get("fits", {})
        if model not in fits:
            raise UserError(f"latency table has no fitted {model!r} model (fitted: {sorted(fits) or 'none'})")
        fit = fits[model]
        self.model = model
        self.overhead_ms = float(fit["overhead_ms"])
        self.per_block_ms = float(fit["per_block_ms"])
        self.group_scale = {str(k): float(v) for k, v in fit.get("group_scale", {}).items()}
        self.clear_cache()

    def op_cost(self, ms: float) -> float:
        """What an op measured alone at ``ms`` adds inside a whole subnet: its time less the runtime's
        per-call cost ``call_ms`` (paid once per subnet, not once per op; 0 for PyTorch eager, whose
        module calls are paid in the subnet too), never below ``MIN_FRACTION`` of ``ms``."""
        return max(ms - self.call_ms, MIN_FRACTION * ms)

    def weight(self, kind: str) -> float:
        """The factor on the op times of ``kind`` (1 in the ``sum`` model)."""
        return self.group_scale.get(GROUP_OF.get(kind, ""), 1.0)

    def clear_cache(self) -> None:
        """Forget the lookup tables of whole stages (after entries or the overhead change)."""
        self._luts.clear()

    def op_ms(self, sig: OpSig) -> float:
        try:
            return self.entries[sig.key()]
        except KeyError:
            raise UserError(
                f"latency table has no entry for op {sig.key()}; rebuild it for these archs "
                "(`attentivenas latency build-table`)"
            ) from None

    def covers(self, space: SearchSpace, arch: Arch) -> bool:
        """Whether every op of ``arch`` has an entry (always true for a whole-space table)."""
        return all(op.key() in self.entries for op in arch_ops(space, arch, self.num_classes))

    # ----------------------------------------------------------------- prediction
    def predict(self, space: SearchSpace, arch: Arch) -> float:
        """Predicted latency (ms) of ``arch``: sum of its ops plus the overhead."""
        self.check_space(space)
        space.validate(arch)
        ops = sum(self.op_cost(self.op_ms(op)) * self.weight(op.kind) for op in arch_ops(space, arch, self.num_classes))
        return max(ops + self.overhead_ms + self.per_block_ms * sum(arch.depth), MIN_FRACTION * ops)

    def group_sums(self, space: SearchSpace, arch: Arch) -> dict[str, float]:
        """Summed (unweighted) op times of ``arch`` per op group."""
        sums = dict.fromkeys(OP_GROUPS, 0.0)
        for op in arch_ops(space, arch, self.num_classes):
            sums[GROUP_OF[op.kind]] += self.op_cost(self.op_ms(op))
        return sums

    def _sum(self, ops: Iterable[OpSig]) -> float:
        total = 0.0
        for op in ops:
            v = self.entries.get(op.key())
            if v is None:
                return float("nan")
            total += self.op_cost(v) * self.weight(op.kind)
        return total

    def _lookup_tables(self, space: SearchSpace) -> dict[str, Any]:
        if "first" in self._luts:
            return self._luts
        ch = space.choices
        res, widths = ch["resolution"][0], ch["width"]
        first = np.array([[self._sum(first_ops(space, r, c0)) for c0 in widths[0]] for r in res])
        stages = []
        for s, st in enumerate(space.stages):
            lut = np.full((len(res), len(widths[s]), len(widths[s + 1]), len(st.depths), len(st.kernels),
                           len(st.expands)), np.nan)
            for idx in np.ndindex(lut.shape):
                ri, pi, wi, di, ki, ti = idx
                lut[idx] = self._sum(stage_ops(space, s, res[ri], widths[s][pi], widths[s + 1][wi],
                                                st.depths[di], st.kernels[ki], st.expands[ti]))
            stages.append(lut)
        head = np.array([[[self._sum(head_ops(space, r, c7, cl, self.num_classes)) for cl in widths[-1]]
                          for c7 in widths[-2]] for r in res])
        self._luts.update(first=first, stages=stages, head=head)
        return self._luts

    def predict_genes(self, space: SearchSpace, genes: np.ndarray) -> np.ndarray:
        """Predicted latency (ms) of every row of a gene matrix (vectorised lookups)."""
        self.check_space(space)
        g = np.atleast_2d(np.asarray(genes, dtype=np.int64))
        lut = self._lookup_tables(space)
        lay, n_s = space.layout, space.num_stages
        r = g[:, lay.resolution]
        total = lut["first"][r, g[:, lay.width(0)]].copy()
        for s in range(n_s):
            total += lut["stages"][s][r, g[:, lay.width(s)], g[:, lay.width(s + 1)], g[:, lay.depth(s)],
                                      g[:, lay.kernel(s)], g[:, lay.expand(s)]]
        total += lut["head"][r, g[:, lay.width(n_s)], g[:, lay.width(n_s + 1)]]
        bad = np.flatnonzero(np.isnan(total))
        if bad.size:
            for op in arch_ops(space, space.decode(g[bad[0]]), self.num_classes):
                self.op_ms(op)  # raises naming the missing op
        blocks = np.sum(space.columns(g).depth, axis=0)
        return np.maximum(total + self.overhead_ms + self.per_block_ms * blocks, MIN_FRACTION * total)

    def gene_fn(self, space: SearchSpace) -> Callable[[np.ndarray], np.ndarray]:
        """``genes -> predicted ms`` for the search (space checked once, here)."""
        self.check_space(space)
        return lambda genes: self.predict_genes(space, genes)

    # ----------------------------------------------------------------- (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": TABLE_FORMAT,
            "version": TABLE_VERSION,
            "space": self.space,
            "num_classes": self.num_classes,
            "device": self.device,
            "device_name": self.device_name,
            "torch": self.torch_version,
            "runtime": self.runtime,
            "runtime_version": self.runtime_version,
            "call_ms": self.call_ms,
            "threads": self.threads,
            "batch": self.batch,
            "overhead_ms": self.overhead_ms,
            "per_block_ms": self.per_block_ms,
            "model": self.model,
            "group_scale": self.group_scale,
            "meta": self.meta,
            "entries": dict(sorted(self.entries.items())),
        }

    def save(self, path: str | Path) -> Path:
        """Write the table as JSON (atomically)."""
        return atomic_write_json(path, self.to_dict())

    @classmethod
    def from_dict(cls, data: Any, source: str = "latency table") -> LatencyTable:
        if not isinstance(data, dict) or data.get("format") != TABLE_FORMAT:
            raise UserError(f"{source} is not an attentivenas latency table (no 'format': '{TABLE_FORMAT}')")
        try:
            entries = {str(k): float(v) for k, v in data["entries"].items()}
            for k, v in entries.items():
                OpSig.from_key(k)
                if not (math.isfinite(v) and v > 0):
                    raise ValueError(f"entry {k!r} = {v!r} is not a positive finite latency (ms)")
            if not (math.isfinite(float(data.get("call_ms", 0.0))) and float(data.get("call_ms", 0.0)) >= 0):
                raise ValueError(f"call_ms = {data.get('call_ms')!r} is not a latency >= 0 (ms)")
            for key in ("overhead_ms", "per_block_ms"):
                if not math.isfinite(float(data.get(key, 0.0))):
                    raise ValueError(f"{key} = {data.get(key)!r} is not finite")
            space = data["space"]
            if not isinstance(space, dict) or "supernet_config" not in space:
                raise ValueError("space")
            scale = {str(k): float(v) for k, v in dict(data.get("group_scale", {})).items()}
            if any(k not in OP_GROUPS or not (math.isfinite(v) and v > 0) for k, v in scale.items()):
                raise ValueError(f"group_scale {scale!r} needs positive factors of {list(OP_GROUPS)}")
            if data.get("runtime", "torch") not in RUNTIMES:
                raise ValueError(f"runtime {data.get('runtime')!r} is not one of {list(RUNTIMES)}")
            if data.get("model", "sum") not in MODELS:
                raise ValueError(f"model {data.get('model')!r} is not one of {list(MODELS)}")
            return cls(
                space=space,
                entries=entries,
                overhead_ms=float(data.get("overhead_ms", 0.0)),
                per_block_ms=float(data.get("per_block_ms", 0.0)),
                num_classes=int(data["num_classes"]),
                batch=int(data["batch"]),
                threads=int(data["threads"]),
                device=str(data["device"]),
                device_name=str(data.get("device_name", "")),
                torch_version=str(data.get("torch", "")),
                meta=copy.deepcopy(dict(data.get("meta", {}))),  # its own copy: nested lists are not shared
                runtime=str(data.get("runtime", "torch")),  # version 1 tables: PyTorch eager
                runtime_version=str(data.get("runtime_version", "")),
                call_ms=float(data.get("call_ms", 0.0)),
                model=str(data.get("model", "sum")),
                group_scale=scale,
            )
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            raise UserError(f"{source} is malformed ({exc.__class__.__name__}: {exc})") from None

    @classmethod
    def load(cls, path: str | Path) -> LatencyTable:
        """Read a table written by :meth:`save`."""
        data = read_json_file(path, "latency table", UserError)
        return cls.from_dict(data, source=f"latency table {path}")


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
) -> LatencyTable:
    """Measure every op signature needed in ``runtime`` and fit the per-network overhead.

    ``archs``: ``None`` measures every signature of the space (feasible for small spaces); an int
    ``n`` the signatures of ``n`` seeded random archs plus the min and max archs; a list, those of
    the given archs. Every op and whole subnet is first exported and loaded in ``runtime``
    (:mod:`attentivenas.latency.runtimes`), then all are timed together, in a seeded random order, in
    ``passes`` passes (:func:`~attentivenas.latency.measure.time_in_passes`): the median of ``repeats``
    runs after ``warmup``, the lowest over the passes. The overhead (``overhead_ms + per_block_ms * blocks``) is fitted to (measured - sum
    of ops) on ``calibration_archs`` seeded random whole subnets (see :func:`fit_overhead`; 0: no
    overhead); with at least :data:`MIN_SCALED_ARCHS` of them the ``scaled`` model is fitted too
    (:func:`fit_scaled`). ``model``: ``sum``, ``scaled``, or ``auto`` (the one with the lower
    leave-one-out error on the calibration archs). ``holdout``: archs measured whole in the same
    passes (and their ops added) to report every model's error on them (:func:`holdout_errors`, in
    ``table.meta``). ``clock``: see :func:`measure_latency`. ``jobs``: worker processes that export
    the programs of ONNX Runtime and ExecuTorch (:mod:`.exports`; the same weights, inputs and
    timings as with one). ``drift_correction``: the space's min subnet, loaded in ``runtime`` too,
    is the drift reference of the passes (:mod:`.drift`: times at the machine's typical speed,
    the median over passes) instead of keeping each runner's lowest median.
    """
    dev = check_runtime(runtime, device)
    if batch < 1:
        raise UserError(f"batch must be >= 1, got {batch}")
    if passes < 1:
        raise UserError(f"passes must be >= 1, got {passes}")
    if model not in (*MODELS, "auto"):
        raise UserError(f"unknown latency model {model!r}; use sum, scaled or auto")
    if model == "scaled" and calibration_archs < MIN_SCALED_ARCHS:
        raise UserError(f"the scaled model needs --calibration-archs >= {MIN_SCALED_ARCHS}, got {calibration_archs}")
    check_timing(warmup, repeats, 1, clock, runtime, dev, threads)
    check_jobs(jobs, runtime, supernet)
    sigs = _signatures(space, archs, num_classes, max_signatures, np.random.default_rng(seed))
    crng = np.random.default_rng(seed + 10_007)
    calib = [space.sample(crng) for _ in range(calibration_archs)]
    for a in [*calib, *holdout]:
        sigs.update(arch_ops(space, a, num_classes))
    ordered = sorted(sigs)
    subnets = [*calib, *holdout, *([space.min_arch()] if drift_correction else [])]
    if jobs > 1:
        op_run, whole = _runners_exported_apart(ordered, subnets, space, batch, threads, num_classes, seed, runtime,
                                                jobs, progress)
    else:
        op_run = _op_runners(ordered, space, dev, batch, threads, seed, runtime, progress)
        whole = arch_runners(space, subnets, dev, batch, threads, num_classes, supernet, seed, progress, runtime)
    # graph runtimes: a near-empty op, whose time is the per-call cost (timed longer: it is short)
    null = [] if runtime == "torch" else [null_runner(dev, batch, threads, runtime)]
    reference = drift_reference(whole.pop(), clock) if drift_correction else None
    repeats_of = [repeats] * len(op_run) + [repeats * 5] * len(null) + [repeats] * len(whole)
    times = time_in_passes([*op_run, *null, *whole], warmup, repeats_of, passes, clock, seed, progress,
                           f"latency ({runtime})", reference)
    entries = {sig.key(): ms for sig, ms in zip(ordered, times[:len(op_run)], strict=True)}
    call_ms = times[len(op_run)] if null else 0.0
    whole_ms = times[len(op_run) + len(null):]
    table = LatencyTable(
        space={"name": space.name, "supernet_config": _space_config(space)},
        entries=entries,
        num_classes=num_classes,
        batch=batch,
        threads=threads if threads is not None else torch.get_num_threads(),
        device=str(dev),
        device_name=device_name(dev),
        runtime=runtime,
        runtime_version=runtime_version(runtime),
        call_ms=call_ms,
        meta={"warmup": warmup, "repeats": repeats, "passes": passes, "seed": seed, "num_ops": len(entries),
              "clock": clock, "op_output": "whole" if runtime == "torch" else "one element",
              "calibration_subnets": _subnet_records(calib, whole_ms[:len(calib)]),
              "drift_reference": _reference_record(reference)},
    )
    if calib:
        fit_models(table, space, calib, whole_ms[:len(calib)], model)
    if holdout:
        holdout_errors(table, space, list(holdout), whole_ms[len(calib):])
    return table


def _reference_record(reference: DriftReference | None) -> dict[str, Any] | None:
    """What a table keeps of its drift reference (the min subnet): its typical time and range."""
    if reference is None:
        return None
    pts = reference.points
    return {"arch": "min", "typical_ms": reference.typical_ms(), "points": len(pts), "runs_per_point": reference.runs,
            "min_ms": float(min(pts)), "max_ms": float(max(pts))}


def _signatures(space: SearchSpace, archs: Sequence[Arch] | int | None, num_classes: int, max_signatures: int,
                rng: np.random.Generator) -> set[OpSig]:
    """The op signatures a table of ``archs`` (see :func:`build_latency_table`) measures."""
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
                seed: int, runtime: str, progress: bool) -> list[Runner]:
    """Every op loaded in the runtime."""
    return [op_runner(sig, dev, batch, threads, seed + i, space.act, runtime)
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
                            progress: bool) -> tuple[list[Runner], list[Runner]]:
    """The op and whole-subnet runners of a table, their programs exported by ``jobs`` workers."""
    # the whole subnets first: the longest exports, so that no worker is left with one at the end
    work = [ExportJob.arch(a) for a in subnets] + [ExportJob.op(sig, seed + i) for i, sig in enumerate(ordered)]
    programs = export_programs(work, space, runtime, batch, num_classes, seed, jobs, progress)
    inputs = arch_inputs(subnets, batch, seed) + [op_input(sig, batch, seed + i) for i, sig in enumerate(ordered)]
    runners = [load_program(p, x, runtime, threads) for p, x in zip(programs, inputs, strict=True)]
    return runners[len(subnets):], runners[:len(subnets)]


def fit_overhead(table: LatencyTable, space: SearchSpace, archs: Sequence[Arch], measured: Sequence[float]) -> None:
    """Set ``table.overhead_ms`` and ``table.per_block_ms`` from whole-subnet measurements (the ``sum``
    model, stored in ``table.meta['fits']['sum']``).

    Least squares of (measured - sum of ops) on ``[1, blocks]``; with fewer than 3 archs, or
    archs that all have the same number of blocks, only a constant (the median residual).
    """
    table.overhead_ms = table.per_block_ms = 0.0
    table.group_scale = {}
    table.model = "sum"
    table.clear_cache()
    if not archs:
        return
    res = np.array([m - table.predict(space, a) for a, m in zip(archs, measured, strict=True)])
    blocks = np.array([sum(a.depth) for a in archs], dtype=np.float64)
    if len(archs) >= 3 and np.ptp(blocks) > 0:
        coef = np.linalg.lstsq(np.stack([np.ones_like(blocks), blocks], 1), res, rcond=None)[0]
        table.overhead_ms, table.per_block_ms = float(coef[0]), float(coef[1])
    else:
        table.overhead_ms = float(statistics.median(res))
    table.meta["calibration_archs"] = len(archs)
    table.meta.setdefault("fits", {})["sum"] = {"overhead_ms": table.overhead_ms, "per_block_ms": table.per_block_ms}


def _scaled_coefficients(x: np.ndarray, y: np.ndarray, ridge: float) -> np.ndarray:
    """Least squares ``y ~ a + b * blocks + sum_g c_g * S_g`` (columns of ``x``: 1, blocks, S_g...),
    relative errors weighted alike, the factors shrunk towards 1 with ``ridge`` (a fraction of each
    group's own weight in the data) and bounded to ``FACTOR_BOUNDS`` *in* the fit (bounded least
    squares): clipping an unbounded solution afterwards left the other terms fitted to factors that
    were no longer used (an ExecuTorch table's held-out error 23% instead of 10%)."""
    w = 1.0 / y  # relative error: a large subnet does not dominate the fit
    a, t = x * w[:, None], y * w
    n_g = x.shape[1] - 2
    scale = np.sqrt(ridge) * np.maximum(np.linalg.norm(a[:, 2:], axis=0), 1e-12)  # relative to each group's data
    prior = np.zeros((n_g, x.shape[1]))
    prior[:, 2:] = np.diag(scale)
    lower = [-np.inf, -np.inf] + [FACTOR_BOUNDS[0]] * n_g
    upper = [np.inf, np.inf] + [FACTOR_BOUNDS[1]] * n_g
    return lsq_linear(np.vstack([a, prior]), np.concatenate([t, scale]), bounds=(lower, upper)).x


def _scaled_design(table: LatencyTable, space: SearchSpace, archs: Sequence[Arch]) -> np.ndarray:
    rows = []
    for a in archs:
        sums = table.group_sums(space, a)
        rows.append([1.0, float(sum(a.depth))] + [sums[g] for g in OP_GROUPS])
    return np.array(rows)


def fit_scaled(table: LatencyTable, space: SearchSpace, archs: Sequence[Arch], measured: Sequence[float],
               ridge: float = 1e-3) -> float:
    """Fit the ``scaled`` model (one factor per op group, plus ``overhead_ms + per_block_ms * blocks``)
    on whole-subnet measurements, store it in ``table.meta['fits']['scaled']`` and return its
    leave-one-out MAPE (%) on ``archs``. The table's active model is not changed."""
    if len(archs) < MIN_SCALED_ARCHS:
        raise UserError(f"the scaled model needs >= {MIN_SCALED_ARCHS} calibration archs, got {len(archs)}")
    x, y = _scaled_design(table, space, archs), np.asarray(measured, dtype=np.float64)
    coef = _scaled_coefficients(x, y, ridge)
    table.meta.setdefault("fits", {})["scaled"] = {
        "overhead_ms": float(coef[0]), "per_block_ms": float(coef[1]),
        "group_scale": {g: float(c) for g, c in zip(OP_GROUPS, coef[2:], strict=True)}}
    loo = []
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        c = _scaled_coefficients(x[keep], y[keep], ridge)
        pred = max(float(x[i] @ c), MIN_FRACTION * float(x[i, 2:] @ c[2:]))
        loo.append(abs(pred - y[i]) / y[i])
    return float(np.mean(loo) * 100.0)


def _sum_loo(table: LatencyTable, space: SearchSpace, archs: Sequence[Arch], measured: Sequence[float]) -> float:
    """Leave-one-out MAPE (%) of the ``sum`` model on the calibration archs."""
    errs = []
    for i in range(len(archs)):
        keep = [j for j in range(len(archs)) if j != i]
        fit_overhead(table, space, [archs[j] for j in keep], [measured[j] for j in keep])
        errs.append(abs(table.predict(space, archs[i]) - measured[i]) / measured[i])
    return float(np.mean(errs) * 100.0)


def fit_models(table: LatencyTable, space: SearchSpace, archs: Sequence[Arch], measured: Sequence[float],
               model: str = "auto") -> None:
    """Fit the ``sum`` model (and the ``scaled`` one with enough archs) and make ``model`` active
    (``auto``: the lower leave-one-out error on ``archs``, in ``table.meta['calibration_loo_mape']``)."""
    loo = {"sum": _sum_loo(table, space, archs, measured)} if len(archs) >= 4 else {}
    fit_overhead(table, space, archs, measured)
    if len(archs) >= MIN_SCALED_ARCHS:
        loo["scaled"] = fit_scaled(table, space, archs, measured)
    table.meta["calibration_loo_mape"] = loo
    if model == "auto":
        model = min(loo, key=lambda k: loo[k]) if loo else "sum"
    table.use_model(model)


def holdout_errors(table: LatencyTable, space: SearchSpace, archs: Sequence[Arch],
                   measured: Sequence[float]) -> dict[str, float]:
    """MAPE (%) of every fitted model of ``table`` on held-out ``archs`` measured at ``measured`` ms,
    recorded in ``table.meta`` (``holdout_mape_by_model``, and the active model's as
    ``holdout_mape_percent``); the active model is kept."""
    active, mapes = table.model, {}
    fits = table.meta.get("fits", {})
    for name in fits or {"sum": None}:
        if name in fits:
            table.use_model(name)
        mapes[name] = table_error(table, space, archs, measured)
    if active in fits:
        table.use_model(active)
    table.meta.update(holdout_archs=len(archs), holdout_mape_percent=mapes.get(table.model),
                      holdout_mape_by_model=mapes, holdout_subnets=_subnet_records(archs, measured))
    return mapes


def _subnet_records(archs: Sequence[Arch], measured: Sequence[float]) -> list[dict[str, Any]]:
    """``[{"arch": ..., "ms": ...}]``: whole subnets measured with the table, kept in its meta."""
    return [{"arch": a.to_dict(), "ms": float(ms)} for a, ms in zip(archs, measured, strict=True)]


def stored_subnets(table: LatencyTable, space: SearchSpace, key: str) -> tuple[list[Arch], list[float]]:
    """The archs and measured ms of ``meta[key]`` (``calibration_subnets`` or ``holdout_subnets``),
    validated against ``space``; a user error when the table has none or they are malformed."""
    records = table.meta.get(key)
    if not isinstance(records, list) or not records:
        raise UserError(f"latency table has no measured subnets in meta.{key} (tables built before 2026-12-01 "
                        "do not keep them); rebuild it with `attentivenas latency build-table`")
    archs, measured = [], []
    for i, rec in enumerate(records):
        try:
            arch = space.validate(Arch.from_dict(rec["arch"]))
            ms = float(rec["ms"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise UserError(f"latency table meta.{key}[{i}] is malformed ({exc.__class__.__name__}: {exc})") from None
        if not (math.isfinite(ms) and ms > 0):
            raise UserError(f"latency table meta.{key}[{i}].ms = {ms!r} is not a positive latency (ms)")
        archs.append(arch)
        measured.append(ms)
    return archs, measured


def refit_table(table: LatencyTable, space: SearchSpace, model: str = "auto",
                source: str = "latency table") -> dict[str, float]:
    """Fit the table's models again on its stored calibration subnets (no measuring: e.g. after a
    better fitting method) and report every model's error on its stored held-out subnets (if any).
    A table of more than :data:`MAX_REFIT_SUBNETS` stored subnets is a user error naming ``source``."""
    if model not in (*MODELS, "auto"):
        raise UserError(f"unknown latency model {model!r}; use sum, scaled or auto")
    table.check_space(space)
    stored = sum(len(v) for k in ("calibration_subnets", "holdout_subnets")
                 if isinstance(v := table.meta.get(k), list))
    if stored > MAX_REFIT_SUBNETS:  # bounded work: refuse before validating or fitting anything
        raise UserError(f"{source} holds {stored} measured subnets (calibration + held-out); refit handles at most "
                        f"{MAX_REFIT_SUBNETS}")
    calib, measured = stored_subnets(table, space, "calibration_subnets")
    if model == "scaled" and len(calib) < MIN_SCALED_ARCHS:
        raise UserError(f"the scaled model needs >= {MIN_SCALED_ARCHS} calibration subnets, the table has {len(calib)}")
    table.meta.pop("fits", None)
    fit_models(table, space, calib, measured, model)
    if not table.meta.get("holdout_subnets"):
        return {}
    held, held_ms = stored_subnets(table, space, "holdout_subnets")
    return holdout_errors(table, space, held, held_ms)


def table_error(table: LatencyTable, space: SearchSpace, archs: Sequence[Arch], measured: Sequence[float]) -> float:
    """Mean absolute percentage error (%) of the table's predictions against ``measured`` (ms)."""
    if len(archs) != len(measured) or not archs:
        raise UserError("table_error needs one measured latency per arch (and at least one arch)")
    pred = np.array([table.predict(space, a) for a in archs])
    meas = np.asarray(measured, dtype=np.float64)
    if np.any(meas <= 0):
        raise UserError("measured latencies must be positive")
    return float(np.mean(np.abs(pred - meas) / meas) * 100.0)
