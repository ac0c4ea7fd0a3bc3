"""Latency ops: a subnet cut into the real module sequences that run in the static subnet.

- ``first_conv``, ``expand``, ``final_expand``: conv + BN + SiLU;
- ``depthwise``: depthwise conv + BN + SiLU, followed by the SE module when the stage has one
  (pool, 1x1 reduce + ReLU, 1x1 expand + hard-sigmoid, multiply);
- ``project``: 1x1 conv + BN;
- ``residual``: the shortcut and the add (identity; avg-pool when strided; 1x1 conv when the
  channels change);
- ``pool`` (global average pool), ``feature_mix`` (1x1 conv + SiLU at 1x1) and ``classifier``.

The ops of an arch come from its block plan (:func:`attentivenas.space.net_plan`); each op
signature is measured alone by :func:`measure_op` (or loaded in a runtime by :func:`op_runner`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..nn.static import ConvBnAct, DepthConv, Shortcut
from ..runtimes.records import runtime as get_runtime
from ..runtimes.runners import Runner, prepare
from ..space import HEAD_EXPAND, Arch, BlockConfig, SearchSpace, conv_out_size, net_plan, stage_input_sizes, stage_plan
from .measure import measure_latency

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


def block_ops(b: BlockConfig) -> list[OpSig]:
    """Ops of one MBConv block: [expand], depthwise (+ SE), project, residual."""
    ops = []
    if b.has_expand:
        ops.append(OpSig("expand", b.c_in, b.c_mid, 1, 1, b.size_in))
    ops.append(OpSig("depthwise", b.c_mid, b.c_mid, b.kernel, b.stride, b.size_in, b.se_mid))
    ops.append(OpSig("project", b.c_mid, b.c_out, 1, 1, b.size_out))
    ops.append(OpSig("residual", b.c_in, b.c_out, 1, b.stride, b.size_in))
    return ops


def first_ops(space: SearchSpace, resolution: int, c0: int) -> list[OpSig]:
    return [OpSig("first_conv", 3, c0, 3, space.first_stride, resolution)]


def stage_ops(space: SearchSpace, s: int, resolution: int, c_prev: int, c: int, d: int, k: int,
              t: float) -> list[OpSig]:
    """Ops of stage ``s`` for given knob values (the stage's input size depends on the resolution only)."""
    size = stage_input_sizes(space, resolution)[s]
    return [op for b in stage_plan(space, s, size, c_prev, c, d, k, t) for op in block_ops(b)]


def head_ops(space: SearchSpace, resolution: int, c7: int, c_last: int, num_classes: int) -> list[OpSig]:
    size = stage_input_sizes(space, resolution)[-1]
    c_exp = HEAD_EXPAND * c7
    return [
        OpSig("final_expand", c7, c_exp, 1, 1, size),
        OpSig("pool", c_exp, c_exp, 1, 1, size),
        OpSig("feature_mix", c_exp, c_last),
        OpSig("classifier", c_last, num_classes),
    ]


def arch_ops(space: SearchSpace, arch: Arch, num_classes: int = 1000) -> list[OpSig]:
    """The ops of ``arch`` in execution order, from its block plan."""
    plan = net_plan(space, arch)
    ops = first_ops(space, plan.resolution, plan.first_out)
    for b in plan.blocks:
        ops += block_ops(b)
    return ops + head_ops(space, plan.resolution, plan.head_in, plan.last, num_classes)


def space_signatures(space: SearchSpace, num_classes: int = 1000) -> set[OpSig]:
    """Every op signature any arch of ``space`` can use."""
    sigs: set[OpSig] = set()
    widths = space.choices["width"]
    for r in space.resolutions:
        for c0 in widths[0]:
            sigs.update(first_ops(space, r, c0))
        for s, stage in enumerate(space.stages):
            for c_prev in widths[s]:
                for c in widths[s + 1]:
                    for k in stage.kernels:
                        for t in stage.expands:
                            sigs.update(stage_ops(space, s, r, c_prev, c, stage.max_depth, k, t))
        for c7 in widths[-2]:
            for cl in widths[-1]:
                sigs.update(head_ops(space, r, c7, cl, num_classes))
    return sigs


# --------------------------------------------------------------------------- op modules
class _ResidualOp(nn.Module):
    """The residual op: the block's shortcut on its input plus the add to a fixed main-path tensor."""

    def __init__(self, sig: OpSig) -> None:
        super().__init__()
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
    k, shape = sig.kind, op_input_shape(sig)
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
        return ConvBnAct(sig.c_in, sig.c_out, 1, 1, use_bn=False, act=act), shape
    if k == "classifier":
        return _Classifier(sig.c_in, sig.c_out), shape
    raise ValueError(f"unknown op kind {k!r}")


class _Null(nn.Module):
    """A near-empty op: its time in a runtime is the runtime's cost of one call."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x)


def null_runner(device: str | torch.device = "cpu", batch: int = 1, threads: int | None = None,
                runtime: str = "torch", precision: str = "fp32") -> Runner:
    """A near-empty op (ReLU of ``batch x 8``) loaded in ``runtime``: the cost of one call."""
    return prepare(_Null(), torch.zeros(batch, 8, 1, 1), runtime, device, threads, precision)


def op_runner(sig: OpSig, device: str | torch.device = "cpu", batch: int = 1, threads: int | None = None,
              seed: int = 0, act: str = "swish", runtime: str = "torch", precision: str = "fp32") -> Runner:
    """One op exported and loaded in ``runtime`` (in ``precision``; INT8: quantized alone, so its
    input is quantized on entry as the previous op's output is inside a whole INT8 graph), bound to a
    seeded random input of ``batch``."""
    module = seeded_op_module(sig, seed, act, runtime)
    return prepare(module, op_input(sig, batch, seed), runtime, device, threads, precision)


def seeded_op_module(sig: OpSig, seed: int, act: str = "swish", runtime: str = "torch") -> nn.Module:
    """The module of ``sig`` with weights drawn from ``seed`` (the same in any process), as it is timed
    in ``runtime``: in the graph runtimes it returns one element of its output (:class:`_OneElement`)."""
    torch.manual_seed(seed)
    module = op_module(sig, act)[0]
    return module if get_runtime(runtime).eager else _OneElement(module)


class _OneElement(nn.Module):
    """An op that returns one element of its output. A graph runtime keeps a network's intermediate
    activations in its planned memory, but hands a graph's *output* back as a new tensor: ExecuTorch
    took 4.26 ms for a 16 -> 96 channel 1x1 conv at 112x112 returning its output and 1.89 ms returning
    one element of it (ONNX Runtime 2.20 and 1.95 ms), so summed ops overstated whole subnets by
    1.4-2.4x, and unevenly. The op is still computed whole (neither runtime computes part of a conv)."""

    def __init__(self, op: nn.Module) -> None:
        super().__init__()
        self.op = op

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.op(x)
        return y[(slice(None),) + (slice(0, 1),) * (y.dim() - 1)]


def op_input(sig: OpSig, batch: int, seed: int) -> torch.Tensor:
    """The seeded random input an op of ``sig`` is timed on."""
    return torch.randn(batch, *op_input_shape(sig), generator=torch.Generator().manual_seed(seed))


def op_input_shape(sig: OpSig) -> tuple[int, int, int]:
    """The input shape of an op of ``sig``, without the batch (the head's 1x1 ops see the pooled map)."""
    return (sig.c_in, 1, 1) if sig.kind in ("feature_mix", "classifier") else (sig.c_in, sig.size_in, sig.size_in)


def measure_op(sig: OpSig, device: str | torch.device = "cpu", batch: int = 1, warmup: int = 5,
               repeats: int = 20, threads: int | None = None, seed: int = 0, act: str = "swish",
               rounds: int = 1, clock: str = "wall", runtime: str = "torch") -> float:
    """Median latency (ms) of one op on ``device`` in ``runtime``."""
    torch.manual_seed(seed)
    module, shape = op_module(sig, act)
    return measure_latency(module, (batch, *shape), device, warmup, repeats, threads, seed, rounds, clock,
                           runtime).median_ms
