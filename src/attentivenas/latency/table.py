"""Latency tables: a subnet's latency predicted from per-op latencies measured once on a device,
in one runtime (PyTorch eager, ONNX Runtime, ExecuTorch, OpenVINO), batch and thread count.

Each distinct op signature (:mod:`attentivenas.latency.ops`) is measured once
(:func:`~attentivenas.latency.build.build_table`); the prediction of an arch is the sum of its ops plus
``overhead_ms + per_block_ms * blocks``: the work the ops alone do not show (Python dispatch of the
block and sequence modules, the flatten), fitted by least squares on the residuals of a few whole
subnets measured the same way (a prediction is never below ``MIN_FRACTION`` of its summed op
times). That is the ``sum`` model. Runtimes that fuse across layers (an add into the conv before it,
a whole graph in one delegate call) run a subnet faster than the sum of its ops alone; the
``scaled`` model also fits one factor per op group (:data:`OP_GROUPS`) on the same whole subnets
(:mod:`attentivenas.latency.fit`). This module holds the table's format and its prediction.

A table's ``meta["precision"]`` says whether its ops and subnets were timed in fp32 or INT8
(``latency build-table --precision``; tables without it are fp32); :func:`check_table_precision`
refuses a table of another precision than asked, in one line.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config.latency import parse_latency_budget
from ..errors import UserError
from ..io import atomic_write_json, read_json_file
from ..runtimes.quantize import PRECISIONS
from ..runtimes.runners import RUNTIMES
from ..space import Arch, SearchSpace
from .ops import OpSig, arch_ops, first_ops, head_ops, space_signatures, stage_ops

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
#: A prediction never drops below this fraction of its summed op times: the fitted overhead is
#: often negative (each op timed alone carries call overhead) and, fitted on a few noisy subnets,
#: must not push a small subnet's prediction to zero or below.
MIN_FRACTION = 0.1
#: seeded random subnets a table's latency range over the space is taken on (and ``pNN`` budgets)
SPACE_SAMPLES = 10_000
#: the percentiles a table reports of its space
RANGE_PERCENTILES = (10, 25, 50, 75, 90)


def space_config(space: SearchSpace) -> dict[str, Any]:
    """The space's supernet config as plain JSON (what a table stores and checks)."""
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
        mine, theirs = space_config(space), self.space.get("supernet_config")
        if mine != theirs:
            name = self.space.get("name", "?")
            built = f"space '{name}', not for space '{space.name}'"
            if name == space.name:  # same name, other blocks: say where they differ
                other = theirs if isinstance(theirs, dict) else {}
                keys = [k for k in sorted(set(mine) | set(other), key=str) if mine.get(k) != other.get(k)]
                built = (f"another space named '{name}' (its supernet_config differs in "
                         f"{', '.join(map(str, keys[:5])) or 'its form'})")
            raise UserError(f"latency table was built for {built}; build a table for this space with "
                            "`attentivenas latency build-table`")

    @property
    def precision(self) -> str:
        """``fp32`` or ``int8``: what the table's ops and subnets were timed in (``fp32`` for old tables)."""
        return str(self.meta.get("precision", "fp32"))

    def check_setting(self, runtime: str | None = None, batch: int | None = None, device: str | None = None,
                      threads: int | None = None, num_classes: int | None = None,
                      precision: str | None = None) -> None:
        """Raise :class:`UserError` when the table was measured in another runtime, batch, device,
        thread count, number of classes or precision than asked (``None``: not asked)."""
        asked = {"runtime": runtime, "batch": batch, "device": device, "threads": threads, "num_classes": num_classes,
                 "precision": precision}
        have = {"runtime": self.runtime, "batch": self.batch, "device": self.device, "threads": self.threads,
                "num_classes": self.num_classes, "precision": self.precision}
        bad = [f"{k} {have[k]!r} (asked: {v!r})" for k, v in asked.items() if v is not None and v != have[k]]
        if bad:
            raise UserError(f"latency table was measured with {', '.join(bad)}; build a table for this setting "
                            "with `attentivenas latency build-table` (--runtime, --batch, --threads, --precision)")

    def setting(self) -> dict[str, Any]:
        """Runtime, precision, device, threads, batch and model of the table."""
        return {"runtime": self.runtime, "runtime_version": self.runtime_version, "precision": self.precision,
                "device": self.device, "device_name": self.device_name, "threads": self.threads, "batch": self.batch,
                "model": self.model}

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

    def missing_ops(self, space: SearchSpace, num_classes: int | None = None) -> list[str]:
        """The op keys of ``space`` (with ``num_classes`` outputs; default: the table's) without an entry,
        sorted: empty for a whole-space table, not for one built from sampled archs (``--archs N``)."""
        n = self.num_classes if num_classes is None else num_classes
        return sorted(sig.key() for sig in space_signatures(space, n) if sig.key() not in self.entries)

    def check_covers(self, space: SearchSpace, num_classes: int, checkpoint: str | Path | None = None,
                     path: str | Path | None = None) -> None:
        """Raise :class:`UserError` (one line, with the ``build-table`` command that fixes it) unless the
        table can predict every subnet of ``space`` with ``num_classes`` outputs: its space, its class
        count and an entry for every op signature of the space. A search calls this before any work
        (``checkpoint``: the search's, named in the command; ``path``: the table's file)."""
        self.check_space(space)
        source = "latency table" if path is None else f"latency table {path}"
        fix = self.build_command(space, num_classes, checkpoint, str(path or "TABLE.json"))
        if self.num_classes != num_classes:
            raise UserError(f"{source} was built for {self.num_classes} classes, the supernet has {num_classes}; "
                            f"build one for it: `{fix}`")
        missing = self.missing_ops(space)
        if missing:
            total = len(space_signatures(space, num_classes))
            archs = self.meta.get("archs")
            how = f"built from {archs} sampled archs (--archs {archs})" if archs else "built from sampled archs"
            raise UserError(f"{source} lacks {len(missing)} of the {total} ops of space '{space.name}' (e.g. "
                            f"{missing[0]}; {how}), so it cannot drive a search; build a whole-space table: `{fix}`")

    def build_command(self, space: SearchSpace, num_classes: int, checkpoint: str | Path | None = None,
                      out: str = "TABLE.json") -> str:
        """The ``build-table`` command of a whole-space table in this table's setting."""
        what = f"--checkpoint {checkpoint}" if checkpoint is not None else f"--space {space.name} --num-classes {num_classes}"
        prec = f" --precision {self.precision}" if self.precision != "fp32" else ""
        dev = f" --device {self.device}" if self.device != "cpu" else ""
        return (f"attentivenas latency build-table {what} --runtime {self.runtime}{prec}{dev} --batch {self.batch} "
                f"--threads {self.threads} --out {out}")

    def space_range(self, space: SearchSpace, samples: int = SPACE_SAMPLES, seed: int = 0) -> dict[str, Any]:
        """The space's predicted latency (ms): min, percentiles and max over ``samples`` seeded random
        subnets plus the min and max subnets (the ``pNN`` budgets of a search are percentiles of these)."""
        ms = self._space_sample(space, samples, seed)
        pct = {f"p{q}_ms": float(np.percentile(ms, q)) for q in RANGE_PERCENTILES}
        return {"min_ms": float(ms.min()), **pct, "max_ms": float(ms.max()),
                "min_subnet_ms": float(ms[-2]), "max_subnet_ms": float(ms[-1]), "samples": int(samples), "seed": int(seed)}

    def _space_sample(self, space: SearchSpace, samples: int, seed: int) -> np.ndarray:
        genes = space.sample_genes(np.random.default_rng(seed), samples)
        ends = np.stack([space.encode(space.min_arch()), space.encode(space.max_arch())])
        return self.predict_genes(space, np.concatenate([genes, ends]))

    def budget_ms(self, space: SearchSpace, budget: str, samples: int = SPACE_SAMPLES, seed: int = 0) -> float:
        """A latency budget in ms: ``pNN`` resolved on the space's predicted latency
        (:meth:`space_range`'s sample), a time in ms as it is (:func:`~attentivenas.config.latency.parse_latency_budget`)."""
        kind, value = parse_latency_budget(budget)
        if kind == "ms":
            return value
        return float(np.percentile(self._space_sample(space, samples, seed), value))

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
            if dict(data.get("meta", {})).get("precision", "fp32") not in PRECISIONS:
                raise ValueError(f"meta.precision {data['meta'].get('precision')!r} is not one of {list(PRECISIONS)}")
            if data.get("model", "sum") not in MODELS:
                raise ValueError(f"model {data.get('model')!r} is not one of {list(MODELS)}")
            table = cls(
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
        table.check_times(source)
        return table

    def check_times(self, source: str = "latency table") -> None:
        """Raise :class:`UserError` (one line) when a model of the table (the one in use or a fitted one)
        predicts a time <= 0 for the space's max subnet. A fitted overhead may be negative (each op
        timed alone carries call overhead) and, fitted on a few noisy subnets, push small subnets (even
        one it was fitted on) to the floor (``MIN_FRACTION``), but it never cancels the largest subnet,
        whose ops are the largest of the space: such a table was edited or broken."""
        try:
            space = SearchSpace.from_supernet_config(self.space["supernet_config"], name=str(self.space.get("name")))
        except Exception:  # noqa: BLE001 - an unreadable space is reported where the table is used (check_space)
            return
        models = [("in use", self.overhead_ms, self.per_block_ms, self.group_scale)]
        for name, fit in dict(self.meta.get("fits", {})).items():
            if isinstance(fit, dict):
                models.append((f"fitted {name!r}", float(fit.get("overhead_ms", 0.0)), float(fit.get("per_block_ms", 0.0)),
                               {str(k): float(v) for k, v in dict(fit.get("group_scale", {})).items()}))
        parts = self.max_subnet_parts(space)
        if parts is None:
            return
        sums, blocks = parts
        for model, overhead, per_block, scale in models:
            ms = sum(v * scale.get(g, 1.0) for g, v in sums.items()) + overhead + per_block * blocks
            if not ms > 0:
                raise UserError(
                    f"{source}: the model {model} (overhead_ms {overhead:g}, per_block_ms {per_block:g}) predicts "
                    f"{ms:.4g} ms for the space's max subnet; a time must be positive (rebuild the table, or refit "
                    "it with `attentivenas latency refit`)")

    def max_subnet_parts(self, space: SearchSpace) -> tuple[dict[str, float], int] | None:
        """The space's max subnet as the models see it: its summed op times per op group (unweighted)
        and its number of blocks; None when the table lacks one of its ops."""
        arch = space.max_arch()
        ops = arch_ops(space, arch, self.num_classes)
        if any(op.key() not in self.entries for op in ops):
            return None
        sums = dict.fromkeys(OP_GROUPS, 0.0)
        for op in ops:
            sums[GROUP_OF[op.kind]] += self.op_cost(self.entries[op.key()])
        return sums, int(sum(arch.depth))

    @classmethod
    def load(cls, path: str | Path) -> LatencyTable:
        """Read a table written by :meth:`save`."""
        data = read_json_file(path, "latency table", UserError)
        return cls.from_dict(data, source=f"latency table {path}")


def check_table_precision(table: LatencyTable, precision: str) -> None:
    """Raise :class:`UserError` (one line) when ``table`` was timed in another precision than
    ``precision`` (``fp32`` or ``int8``; a table without ``meta["precision"]`` is fp32)."""
    if precision not in PRECISIONS:
        raise UserError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    if table.precision != precision:
        raise UserError(f"latency table was measured in {table.precision}, not {precision}; build a {precision} table "
                        f"with `attentivenas latency build-table --runtime {table.runtime} --precision {precision}`")

