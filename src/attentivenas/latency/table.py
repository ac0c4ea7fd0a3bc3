"""Latency tables: a subnet's latency predicted from per-op latencies measured once on a device.

Each distinct op signature (:mod:`attentivenas.latency.ops`) is measured once
(:func:`build_latency_table`); the prediction of an arch is the sum of its ops plus
``overhead_ms + per_block_ms * blocks``: the work the ops alone do not show (Python dispatch of the
block and sequence modules, the flatten), fitted by least squares on the residuals of a few whole
subnets measured on the same device (a prediction is never below ``MIN_FRACTION`` of its summed op
times). :func:`table_error` reports the mean absolute percentage error (MAPE) of the table against
measured latency on held-out archs.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..devices import device_name, resolve_device
from ..errors import UserError
from ..io import atomic_write_json, read_json_file
from ..progress import progress_bar
from ..space import Arch, SearchSpace
from .measure import measure_archs
from .ops import OpSig, arch_ops, first_ops, head_ops, measure_op, space_signatures, stage_ops

TABLE_FORMAT = "attentivenas-latency-table"
TABLE_VERSION = 1
#: A prediction never drops below this fraction of its summed op times: the fitted overhead is
#: often negative (each op timed alone carries call overhead) and, fitted on a few noisy subnets,
#: must not push a small subnet's prediction to zero or below.
MIN_FRACTION = 0.1


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
    _luts: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    # ----------------------------------------------------------------- checks
    def check_space(self, space: SearchSpace) -> None:
        """Raise :class:`UserError` when ``space`` is not the table's space."""
        if _space_config(space) != self.space.get("supernet_config"):
            raise UserError(
                f"latency table was built for space '{self.space.get('name', '?')}', not for space "
                f"'{space.name}'; build a table for this space with `attentivenas latency build-table`"
            )

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
        ops = sum(self.op_ms(op) for op in arch_ops(space, arch, self.num_classes))
        return max(ops + self.overhead_ms + self.per_block_ms * sum(arch.depth), MIN_FRACTION * ops)

    def _sum(self, ops: Iterable[OpSig]) -> float:
        total = 0.0
        for op in ops:
            v = self.entries.get(op.key())
            if v is None:
                return float("nan")
            total += v
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
            "threads": self.threads,
            "batch": self.batch,
            "overhead_ms": self.overhead_ms,
            "per_block_ms": self.per_block_ms,
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
            for key in ("overhead_ms", "per_block_ms"):
                if not math.isfinite(float(data.get(key, 0.0))):
                    raise ValueError(f"{key} = {data.get(key)!r} is not finite")
            space = data["space"]
            if not isinstance(space, dict) or "supernet_config" not in space:
                raise ValueError("space")
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
                meta=dict(data.get("meta", {})),
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
) -> LatencyTable:
    """Measure every op signature needed and fit the per-network overhead.

    ``archs``: ``None`` measures every signature of the space (feasible for small spaces); an int
    ``n`` the signatures of ``n`` seeded random archs plus the min and max archs; a list, those of
    the given archs. Each op's latency is the median of ``repeats`` runs after ``warmup``, the
    lowest over ``passes`` passes over all ops. The overhead (``overhead_ms + per_block_ms *
    blocks``) is fitted to (measured - sum of ops) on ``calibration_archs`` seeded random whole
    subnets (see :func:`fit_overhead`; 0: no overhead). ``clock``: see :func:`measure_latency`.
    """
    dev = resolve_device(device)
    if batch < 1:
        raise UserError(f"batch must be >= 1, got {batch}")
    if passes < 1:
        raise UserError(f"passes must be >= 1, got {passes}")
    rng = np.random.default_rng(seed)
    if archs is None:
        sigs = space_signatures(space, num_classes)
        if len(sigs) > max_signatures:
            raise UserError(
                f"space '{space.name}' has {len(sigs)} op signatures (> {max_signatures}); "
                "build the table from sampled archs instead (--archs N)"
            )
    else:
        if isinstance(archs, int):
            if archs < 1:
                raise UserError(f"number of archs must be >= 1, got {archs}")
            chosen = [space.min_arch(), space.max_arch()] + [space.sample(rng) for _ in range(archs)]
        else:
            chosen = [space.validate(a) for a in archs]
        sigs = set()
        for a in chosen:
            sigs.update(arch_ops(space, a, num_classes))
    crng = np.random.default_rng(seed + 10_007)
    calib = [space.sample(crng) for _ in range(calibration_archs)]
    for a in calib:
        sigs.update(arch_ops(space, a, num_classes))

    ordered = sorted(sigs)
    entries: dict[str, float] = {}
    for _ in range(passes):
        for i, sig in enumerate(progress_bar(ordered, "latency ops", progress)):
            ms = measure_op(sig, dev, batch, warmup, repeats, threads, seed + i, space.act, clock=clock)
            entries[sig.key()] = min(ms, entries.get(sig.key(), float("inf")))

    table = LatencyTable(
        space={"name": space.name, "supernet_config": _space_config(space)},
        entries=entries,
        num_classes=num_classes,
        batch=batch,
        threads=threads if threads is not None else torch.get_num_threads(),
        device=str(dev),
        device_name=device_name(dev),
        meta={"warmup": warmup, "repeats": repeats, "passes": passes, "seed": seed, "num_ops": len(entries),
              "clock": clock},
    )
    if calib:
        measured = measure_archs(space, calib, dev, batch, threads, warmup, repeats, passes, num_classes, supernet,
                                 seed, progress, clock)
        fit_overhead(table, space, calib, measured)
    return table


def fit_overhead(table: LatencyTable, space: SearchSpace, archs: Sequence[Arch], measured: Sequence[float]) -> None:
    """Set ``table.overhead_ms`` and ``table.per_block_ms`` from whole-subnet measurements.

    Least squares of (measured - sum of ops) on ``[1, blocks]``; with fewer than 3 archs, or
    archs that all have the same number of blocks, only a constant (the median residual).
    """
    table.overhead_ms = table.per_block_ms = 0.0
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


def table_error(table: LatencyTable, space: SearchSpace, archs: Sequence[Arch], measured: Sequence[float]) -> float:
    """Mean absolute percentage error (%) of the table's predictions against ``measured`` (ms)."""
    if len(archs) != len(measured) or not archs:
        raise UserError("table_error needs one measured latency per arch (and at least one arch)")
    pred = np.array([table.predict(space, a) for a in archs])
    meas = np.asarray(measured, dtype=np.float64)
    if np.any(meas <= 0):
        raise UserError("measured latencies must be positive")
    return float(np.mean(np.abs(pred - meas) / meas) * 100.0)
