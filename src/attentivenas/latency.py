"""Latency on a device: direct measurement and a per-layer latency table.

:func:`measure_latency` times one model (warm-up runs, then the median of ``repeats`` timed
runs under ``torch.inference_mode``; the batch, thread count and device are part of the result).

A :class:`LatencyTable` predicts a subnet's latency without running it. A subnet is cut into
*ops*, each the real module sequence that runs in the static subnet (see :func:`arch_ops`):

- ``first_conv``, ``expand``, ``final_expand``: conv + BN + SiLU;
- ``depthwise``: depthwise conv + BN + SiLU, followed by the SE module when the stage has one
  (pool, 1x1 reduce + ReLU, 1x1 expand + hard-sigmoid, multiply);
- ``project``: 1x1 conv + BN;
- ``residual``: the shortcut and the add (identity; avg-pool when strided; 1x1 conv when the
  channels change);
- ``pool`` (global average pool), ``feature_mix`` (1x1 conv + SiLU at 1x1) and ``classifier``.

Each distinct op signature is measured once on the device (:func:`build_latency_table`); the
prediction of an arch is the sum of its ops plus ``overhead_ms + per_block_ms * blocks``: the
work the ops alone do not show (Python dispatch of the block and sequence modules, the flatten),
fitted by least squares on the residuals of a few whole subnets measured on the same device
(a prediction is never below ``MIN_FRACTION`` of its summed op times).
:func:`table_error` reports the mean absolute percentage error (MAPE) of the table against
measured latency on held-out archs.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .cost import HEAD_EXPAND, conv_out_size, layer_specs, mid_channels, se_channels
from .errors import UserError
from .io import atomic_write_json, read_json_file
from .space import Arch, SearchSpace

TABLE_FORMAT = "attentivenas-latency-table"
TABLE_VERSION = 1
#: A prediction never drops below this fraction of its summed op times: the fitted overhead is
#: often negative (each op timed alone carries call overhead) and, fitted on a few noisy subnets,
#: must not push a small subnet's prediction to zero or below.
MIN_FRACTION = 0.1


# --------------------------------------------------------------------------- measurement
@dataclass(frozen=True)
class LatencyResult:
    """Latency of one model: median and 90th percentile in milliseconds, and the setting."""

    median_ms: float
    p90_ms: float
    batch: int
    threads: int
    device: str
    repeats: int = 0
    clock: str = "wall"

    def to_dict(self) -> dict[str, Any]:
        return {
            "clock": self.clock,
            "median_ms": self.median_ms,
            "p90_ms": self.p90_ms,
            "batch": self.batch,
            "threads": self.threads,
            "device": self.device,
            "repeats": self.repeats,
        }


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None``/``"auto"`` -> CUDA when present, else CPU; an unavailable CUDA device is a user error."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise UserError(f"unknown device {device!r}; use cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {device!r} requested but CUDA is not available here; use --device cpu")
    if dev.type not in ("cpu", "cuda"):
        raise UserError(f"unsupported device {device!r}; use cpu, cuda or cuda:N")
    return dev


def device_name(device: str | torch.device) -> str:
    """A human-readable name of the device (GPU model or CPU model)."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def measure_latency(
    model: nn.Module,
    input_shape: Sequence[int],
    device: str | torch.device | None = "cpu",
    warmup: int = 10,
    repeats: int = 50,
    threads: int | None = None,
    seed: int = 0,
    rounds: int = 1,
    clock: str = "wall",
) -> LatencyResult:
    """Time ``model`` (moved to ``device``) on a random input of ``input_shape`` (batch first).

    Runs ``warmup`` untimed forwards, then ``repeats`` timed ones (CUDA synchronised before and
    after each) under ``torch.inference_mode`` in eval mode; the result is their median (and 90th
    percentile). With ``rounds > 1`` this is done ``rounds`` times and the round with the lowest
    median is kept (robust to other processes sharing the CPU). ``threads`` sets the CPU intra-op
    threads for the measurement (restored afterwards); the result states the value used.

    ``clock="wall"`` times wall-clock latency (the default, what a user waits). ``clock="cpu"``
    times the CPU time of the calling thread instead: on a CPU shared with other processes it
    does not count the time the process waits for a core, so it estimates the latency of an idle
    machine. It needs ``threads=1`` on the CPU (other intra-op threads would not be counted).
    """
    if clock not in ("wall", "cpu"):
        raise UserError(f"unknown clock {clock!r}; use wall or cpu")
    if repeats < 1 or rounds < 1:
        raise UserError(f"repeats and rounds must be >= 1, got {repeats} and {rounds}")
    if warmup < 0:
        raise UserError(f"warmup must be >= 0, got {warmup}")
    dev = resolve_device(device)
    if clock == "cpu" and (dev.type != "cpu" or threads != 1):
        raise UserError("clock 'cpu' measures one thread on the CPU: use it with device cpu and threads 1")
    timer = time.thread_time if clock == "cpu" else time.perf_counter
    old_threads = torch.get_num_threads()
    if threads is not None:
        if threads < 1:
            raise UserError(f"threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    was_training = model.training
    try:
        model.eval()
        model.to(dev)
        gen = torch.Generator().manual_seed(seed)
        x = torch.randn(*input_shape, generator=gen).to(dev)
        best: np.ndarray | None = None
        with torch.inference_mode():
            for _ in range(warmup):
                model(x)
            _sync(dev)
            for _ in range(rounds):
                times = np.empty(repeats)
                for i in range(repeats):
                    _sync(dev)
                    t0 = timer()
                    model(x)
                    _sync(dev)
                    times[i] = (timer() - t0) * 1e3
                if best is None or np.median(times) < np.median(best):
                    best = times
        used = torch.get_num_threads()
    finally:
        model.train(was_training)
        if threads is not None:
            torch.set_num_threads(old_threads)
    arr = np.asarray(best)
    return LatencyResult(
        median_ms=float(np.median(arr)),
        p90_ms=float(np.percentile(arr, 90)),
        batch=int(input_shape[0]),
        threads=int(used),
        device=str(dev),
        repeats=repeats * rounds,
        clock=clock,
    )


# --------------------------------------------------------------------------- op signatures
OP_KINDS = (
    "first_conv", "expand", "depthwise", "project", "residual", "final_expand", "pool", "feature_mix", "classifier",
)


@dataclass(frozen=True, order=True)
class OpSig:
    """Signature of one measured op: kind, channels, kernel, stride, input size and SE width
    (``se`` is the SE middle width of a ``depthwise`` op, 0 without SE)."""

    kind: str
    c_in: int
    c_out: int
    kernel: int = 1
    stride: int = 1
    size_in: int = 1
    se: int = 0

    def key(self) -> str:
        return f"{self.kind}:{self.c_in}:{self.c_out}:{self.kernel}:{self.stride}:{self.size_in}:{self.se}"

    @classmethod
    def from_key(cls, key: str) -> OpSig:
        parts = key.split(":")
        if len(parts) != 7 or parts[0] not in OP_KINDS:
            raise ValueError(f"bad op key {key!r}")
        return cls(parts[0], *(int(p) for p in parts[1:]))


def arch_ops(space: SearchSpace, arch: Arch, num_classes: int = 1000) -> list[OpSig]:
    """The ops of ``arch`` in execution order, derived from :func:`attentivenas.cost.layer_specs`."""
    ops: list[OpSig] = []
    c_prev = 0
    block: dict[str, Any] = {}

    def flush() -> None:
        nonlocal c_prev
        if not block:
            return
        dw, pr = block["depthwise"], block["project"]
        if "expand" in block:
            e = block["expand"]
            ops.append(OpSig("expand", e.c_in, e.c_out, 1, 1, e.size_in))
        se = block["se_reduce"].c_out if "se_reduce" in block else 0
        ops.append(OpSig("depthwise", dw.c_in, dw.c_out, dw.kernel, dw.stride, dw.size_in, se))
        ops.append(OpSig("project", pr.c_in, pr.c_out, 1, 1, pr.size_in))
        ops.append(OpSig("residual", c_prev, pr.c_out, 1, dw.stride, dw.size_in))
        c_prev = pr.c_out
        block.clear()

    for layer in layer_specs(space, arch, num_classes):
        if layer.kind == "first_conv":
            ops.append(OpSig("first_conv", layer.c_in, layer.c_out, layer.kernel, layer.stride, layer.size_in))
            c_prev = layer.c_out
        elif layer.kind in ("expand", "depthwise", "se_reduce", "se_expand", "project", "shortcut"):
            if layer.kind in ("expand", "depthwise") and ("depthwise" in block):
                flush()
            block[layer.kind] = layer
        else:
            flush()
            if layer.kind == "final_expand":
                ops.append(OpSig("final_expand", layer.c_in, layer.c_out, 1, 1, layer.size_in))
                ops.append(OpSig("pool", layer.c_out, layer.c_out, 1, 1, layer.size_out))
            elif layer.kind == "feature_mix":
                ops.append(OpSig("feature_mix", layer.c_in, layer.c_out))
            elif layer.kind == "classifier":
                ops.append(OpSig("classifier", layer.c_in, layer.c_out))
    return ops


def _stage_input_sizes(space: SearchSpace, resolution: int) -> list[int]:
    """Spatial size at the input of every stage (depths are >= 1, so it depends only on resolution)."""
    size = conv_out_size(resolution, space.first_stride)
    out = []
    for stage in space.stages:
        out.append(size)
        size = conv_out_size(size, stage.stride)
    out.append(size)
    return out


def _block_ops(stage_has_expand: bool, se: bool, c_in: int, c_out: int, k: int, t: float, stride: int,
               size: int) -> list[OpSig]:
    """Ops of one MBConv block (the same as :func:`arch_ops` emits)."""
    mid = mid_channels(c_in, t)
    ops = []
    if stage_has_expand:
        ops.append(OpSig("expand", c_in, mid, 1, 1, size))
    ops.append(OpSig("depthwise", mid, mid, k, stride, size, se_channels(mid) if se else 0))
    size_out = conv_out_size(size, stride)
    ops.append(OpSig("project", mid, c_out, 1, 1, size_out))
    ops.append(OpSig("residual", c_in, c_out, 1, stride, size))
    return ops


def _stage_ops(space: SearchSpace, s: int, resolution: int, c_prev: int, c: int, d: int, k: int,
               t: float) -> list[OpSig]:
    stage = space.stages[s]
    size = _stage_input_sizes(space, resolution)[s]
    ops: list[OpSig] = []
    for j in range(d):
        stride = stage.stride if j == 0 else 1
        ops += _block_ops(stage.has_expand_conv, stage.se, c_prev if j == 0 else c, c, k, t, stride, size)
        size = conv_out_size(size, stride)
    return ops


def _head_ops(space: SearchSpace, resolution: int, c7: int, c_last: int, num_classes: int) -> list[OpSig]:
    size = _stage_input_sizes(space, resolution)[-1]
    c_exp = HEAD_EXPAND * c7
    return [
        OpSig("final_expand", c7, c_exp, 1, 1, size),
        OpSig("pool", c_exp, c_exp, 1, 1, size),
        OpSig("feature_mix", c_exp, c_last),
        OpSig("classifier", c_last, num_classes),
    ]


def _first_ops(space: SearchSpace, resolution: int, c0: int) -> list[OpSig]:
    return [OpSig("first_conv", 3, c0, 3, space.first_stride, resolution)]


def space_signatures(space: SearchSpace, num_classes: int = 1000) -> set[OpSig]:
    """Every op signature any arch of ``space`` can use."""
    sigs: set[OpSig] = set()
    ch = space.choices
    widths = ch["width"]
    for r in space.resolutions:
        for c0 in widths[0]:
            sigs.update(_first_ops(space, r, c0))
        for s, stage in enumerate(space.stages):
            for c_prev in widths[s]:
                for c in widths[s + 1]:
                    for k in stage.kernels:
                        for t in stage.expands:
                            sigs.update(_stage_ops(space, s, r, c_prev, c, stage.max_depth, k, t))
        for c7 in widths[-2]:
            for cl in widths[-1]:
                sigs.update(_head_ops(space, r, c7, cl, num_classes))
    return sigs


# --------------------------------------------------------------------------- op modules
class _ResidualOp(nn.Module):
    """The residual op: the block's shortcut on its input plus the add to a fixed main-path tensor."""

    def __init__(self, sig: OpSig) -> None:
        super().__init__()
        from .supernet import Shortcut

        self.shortcut = Shortcut(sig.c_in, sig.c_out, sig.stride)
        size_out = conv_out_size(sig.size_in, sig.stride)
        self.register_buffer("main", torch.zeros(1, sig.c_out, size_out, size_out), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main.expand(x.shape[0], -1, -1, -1) + self.shortcut(x)


class _Pool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(x, 1)


class _Classifier(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.fc = nn.Linear(c_in, c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(x, 1))


def op_module(sig: OpSig, act: str = "swish") -> tuple[nn.Module, tuple[int, int, int]]:
    """The module that runs ``sig`` (the static subnet's own module classes) and its input shape
    without the batch."""
    from .supernet import ConvBnAct, DepthConv

    k = sig.kind
    shape = (sig.c_in, sig.size_in, sig.size_in)
    if k in ("first_conv", "expand", "final_expand"):
        return ConvBnAct(sig.c_in, sig.c_out, sig.kernel, sig.stride, act=act), shape
    if k == "depthwise":
        return DepthConv(sig.c_in, sig.kernel, sig.stride, sig.se, act), shape
    if k == "project":
        return ConvBnAct(sig.c_in, sig.c_out, 1, 1, act=None), shape
    if k == "residual":
        return _ResidualOp(sig), shape
    if k == "pool":
        return _Pool(), shape
    if k == "feature_mix":
        return ConvBnAct(sig.c_in, sig.c_out, 1, 1, use_bn=False, act=act), (sig.c_in, 1, 1)
    if k == "classifier":
        return _Classifier(sig.c_in, sig.c_out), (sig.c_in, 1, 1)
    raise ValueError(f"unknown op kind {k!r}")


def measure_op(sig: OpSig, device: str | torch.device = "cpu", batch: int = 1, warmup: int = 5,
               repeats: int = 20, threads: int | None = None, seed: int = 0, act: str = "swish",
               rounds: int = 1, clock: str = "wall") -> float:
    """Median latency (ms) of one op on ``device``."""
    torch.manual_seed(seed)
    module, shape = op_module(sig, act)
    return measure_latency(module, (batch, *shape), device, warmup, repeats, threads, seed, rounds, clock).median_ms


# --------------------------------------------------------------------------- the table
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
        first = np.array([[self._sum(_first_ops(space, r, c0)) for c0 in widths[0]] for r in res])
        stages = []
        for s, st in enumerate(space.stages):
            lut = np.full((len(res), len(widths[s]), len(widths[s + 1]), len(st.depths), len(st.kernels),
                           len(st.expands)), np.nan)
            for idx in np.ndindex(lut.shape):
                ri, pi, wi, di, ki, ti = idx
                lut[idx] = self._sum(_stage_ops(space, s, res[ri], widths[s][pi], widths[s + 1][wi],
                                                st.depths[di], st.kernels[ki], st.expands[ti]))
            stages.append(lut)
        head = np.array([[[self._sum(_head_ops(space, r, c7, cl, self.num_classes)) for cl in widths[-1]]
                          for c7 in widths[-2]] for r in res])
        self._luts.update(first=first, stages=stages, head=head)
        return self._luts

    def predict_genes(self, space: SearchSpace, genes: np.ndarray) -> np.ndarray:
        """Predicted latency (ms) of every row of a gene matrix (vectorised lookups)."""
        self.check_space(space)
        g = np.atleast_2d(np.asarray(genes, dtype=np.int64))
        lut = self._lookup_tables(space)
        n_w, n_s = len(space.choices["width"]), space.num_stages
        ow, od, ok, oe = 1, 1 + n_w, 1 + n_w + n_s, 1 + n_w + 2 * n_s
        r = g[:, 0]
        total = lut["first"][r, g[:, ow]].copy()
        for s in range(n_s):
            total += lut["stages"][s][r, g[:, ow + s], g[:, ow + s + 1], g[:, od + s], g[:, ok + s], g[:, oe + s]]
        total += lut["head"][r, g[:, ow + n_w - 2], g[:, ow + n_w - 1]]
        bad = np.flatnonzero(np.isnan(total))
        if bad.size:
            for op in arch_ops(space, space.decode(g[bad[0]]), self.num_classes):
                self.op_ms(op)  # raises naming the missing op
        blocks = space.features_from_genes(g)[:, od : od + n_s].sum(axis=1)
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
            for k in entries:
                OpSig.from_key(k)
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


# --------------------------------------------------------------------------- building
def random_subnet(space: SearchSpace, arch: Arch, num_classes: int = 1000, seed: int = 0,
                  supernet: nn.Module | None = None) -> nn.Module:
    """A static subnet of ``arch`` with seeded random weights (latency does not depend on weights)."""
    from .supernet import Supernet

    if supernet is None:
        torch.manual_seed(seed)
        supernet = Supernet(space, num_classes=num_classes)
    return supernet.extract(arch).eval()


def measure_arch(space: SearchSpace, arch: Arch, device: str | torch.device = "cpu", batch: int = 1,
                 threads: int | None = None, warmup: int = 10, repeats: int = 50, num_classes: int = 1000,
                 supernet: nn.Module | None = None, seed: int = 0, rounds: int = 1,
                 clock: str = "wall") -> LatencyResult:
    """Measured latency of the static subnet ``arch`` at its resolution."""
    model = random_subnet(space, arch, num_classes, seed, supernet)
    return measure_latency(model, (batch, 3, arch.resolution, arch.resolution), device, warmup, repeats, threads,
                           seed, rounds, clock)


def _progress(items: list, enabled: bool, desc: str) -> Iterable:
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, leave=False)


def measure_archs(space: SearchSpace, archs: Sequence[Arch], device: str | torch.device = "cpu", batch: int = 1,
                  threads: int | None = 1, warmup: int = 5, repeats: int = 20, passes: int = 1,
                  num_classes: int = 1000, supernet: nn.Module | None = None, seed: int = 0,
                  progress: bool = False, clock: str = "wall") -> list[float]:
    """Measured latency (ms) of many archs: ``passes`` round-robin passes over all of them, keeping
    each arch's lowest median (transient load from other processes only ever adds time)."""
    if passes < 1:
        raise UserError(f"passes must be >= 1, got {passes}")
    if supernet is None:
        from .supernet import Supernet

        torch.manual_seed(seed)
        supernet = Supernet(space, num_classes=num_classes)
    models = [random_subnet(space, a, num_classes, seed, supernet) for a in archs]
    best = [float("inf")] * len(archs)
    for _ in range(passes):
        for i in _progress(list(range(len(archs))), progress, "archs"):
            r = archs[i].resolution
            ms = measure_latency(models[i], (batch, 3, r, r), device, warmup, repeats, threads, seed,
                                 clock=clock).median_ms
            best[i] = min(best[i], ms)
    return best


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
        for i, sig in enumerate(_progress(ordered, progress, "latency ops")):
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
    table._luts.clear()
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
