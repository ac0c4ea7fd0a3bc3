"""The block plan: the explicit shapes of every block of a subnet, computed in one place.

In the spirit of torchvision's ``InvertedResidualConfig``, a :class:`BlockConfig` holds one MBConv
block's stage, position, channels (in, middle, out, SE), kernel, stride, shortcut kind and feature
map sizes; a :class:`NetPlan` is the whole subnet as a readable table of them, between the first
conv and the head. Everything that needs a subnet's geometry reads it from here: the supernet and
its static twins, the cost model (scalar and vectorised), the memory model and the latency ops.

Three forms:

* :func:`net_plan` (scalar): the plan of one :class:`~attentivenas.space.Arch`;
* :func:`stage_plan`: the blocks of one stage for given knob values (what the latency tables of
  whole stages enumerate);
* :func:`plan_columns` (vectorised): the same numbers for a gene matrix, one :class:`SlotColumns`
  per supernet block slot (a slot past an arch's depth is off and passes channels and size on);
* :func:`supernet_slots`: the largest shapes every supernet block slot must hold.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .arch import Arch
from .spec import SearchSpace, make_divisible, make_divisible_vec

SE_REDUCTION = 4  #: SE middle width = make_divisible(mid // SE_REDUCTION, 8)
HEAD_EXPAND = 6  #: the head's final expand conv widens to HEAD_EXPAND x the last stage's width


def conv_out_size(size: int, stride: int) -> int:
    """Spatial size after a 'same'-padded conv (or the shortcut's avg-pool) of ``stride``."""
    return -(-size // stride)


def mid_channels(c_in: int, expand: float, has_expand_conv: bool = True) -> int:
    """Middle width of an MBConv block: make_divisible(round(c_in * t), 8), or the input width
    when the stage has no expand conv (its only ratio is 1)."""
    return make_divisible(round(c_in * expand), 8) if has_expand_conv else c_in


def se_channels(c_mid: int) -> int:
    """Middle width of a block's squeeze-and-excitation."""
    return make_divisible(c_mid // SE_REDUCTION, 8)


def shortcut_kind(c_in: int, c_out: int, stride: int) -> str:
    """``identity``, ``pool`` (strided, same channels), ``conv`` (1x1, channels change) or ``pool_conv``."""
    pool, conv = stride > 1, c_in != c_out
    return ("pool_conv" if conv else "pool") if pool else ("conv" if conv else "identity")


# --------------------------------------------------------------------------- scalar plan
@dataclass(frozen=True)
class BlockConfig:
    """One MBConv block of a subnet: [1x1 expand], depthwise k x k [+ SE], 1x1 project, shortcut."""

    stage: int  # stage index (0-based)
    index: int  # block index inside its stage
    slot: int  # index of the supernet block that runs it
    c_in: int
    c_mid: int
    c_out: int
    kernel: int
    stride: int
    has_expand: bool
    se_mid: int  # SE middle width, 0 without SE
    act: str
    size_in: int
    size_out: int

    @property
    def se(self) -> bool:
        return self.se_mid > 0

    @property
    def shortcut(self) -> str:
        return shortcut_kind(self.c_in, self.c_out, self.stride)


@dataclass(frozen=True)
class NetPlan:
    """A whole subnet: first conv, the blocks in execution order, the v3 head and the classifier."""

    arch: Arch
    act: str
    resolution: int
    first_stride: int
    first_out: int  # first conv width
    first_size: int  # feature map side after the first conv
    blocks: tuple[BlockConfig, ...]
    head_in: int  # last stage's width
    head_size: int  # feature map side entering the head
    last: int  # feature-mix (last conv) width, the classifier's input

    @property
    def head_expand(self) -> int:
        return HEAD_EXPAND * self.head_in

    def table(self) -> str:
        """The plan as a readable table, one row per block."""
        rows = [f"first_conv  3 -> {self.first_out}, k3 s{self.first_stride}, {self.resolution} -> {self.first_size}"]
        for b in self.blocks:
            se = f" se{b.se_mid}" if b.se else ""
            rows.append(f"mb{b.stage + 1}.{b.index}  {b.c_in} -> {b.c_mid} -> {b.c_out}, k{b.kernel} s{b.stride}{se}, "
                        f"{b.size_in} -> {b.size_out}, shortcut {b.shortcut}")
        rows.append(f"head  {self.head_in} -> {self.head_expand} -> {self.last}, at {self.head_size}")
        return "\n".join(rows)


def stage_input_sizes(space: SearchSpace, resolution: int) -> list[int]:
    """Feature map side entering every stage, then the head's (depths are >= 1, so the sizes
    depend on the resolution only)."""
    size = conv_out_size(resolution, space.first_stride)
    out = []
    for stage in space.stages:
        out.append(size)
        size = conv_out_size(size, stage.stride)
    return out + [size]


def stage_plan(space: SearchSpace, s: int, size: int, c_prev: int, width: int, depth: int, kernel: int,
               expand: float, first_slot: int = 0) -> list[BlockConfig]:
    """The ``depth`` blocks of stage ``s`` entered at side ``size`` with ``c_prev`` channels."""
    stage = space.stages[s]
    blocks = []
    c_in = c_prev
    for j in range(depth):
        stride = stage.stride if j == 0 else 1
        size_out = conv_out_size(size, stride)
        mid = mid_channels(c_in, expand, stage.has_expand_conv)
        blocks.append(BlockConfig(s, j, first_slot + j, c_in, mid, width, kernel, stride, stage.has_expand_conv,
                                  se_channels(mid) if stage.se else 0, stage.act, size, size_out))
        c_in, size = width, size_out
    return blocks


@functools.lru_cache(maxsize=4096)
def net_plan(space: SearchSpace, arch: Arch) -> NetPlan:
    """The plan of ``arch`` (not validated here: callers validate against the space first)."""
    r = arch.resolution
    size = conv_out_size(r, space.first_stride)
    first_size = size
    c_in = arch.width[0]
    blocks: list[BlockConfig] = []
    slot = 0
    for s, stage in enumerate(space.stages):
        stage_blocks = stage_plan(space, s, size, c_in, arch.width[s + 1], arch.depth[s], arch.kernel_size[s],
                                  arch.expand_ratio[s], slot)
        blocks += stage_blocks
        slot += stage.max_depth
        c_in, size = stage_blocks[-1].c_out, stage_blocks[-1].size_out
    return NetPlan(arch, space.act, r, space.first_stride, arch.width[0], first_size, tuple(blocks), c_in, size,
                   arch.width[-1])


def output_size(space: SearchSpace, resolution: int) -> int:
    """Spatial size of the last feature map at ``resolution``."""
    return stage_input_sizes(space, resolution)[-1]


# --------------------------------------------------------------------------- supernet slots
@dataclass(frozen=True)
class SlotConfig:
    """One block slot of the supernet: the largest shapes any arch of the space gives it."""

    stage: int
    index: int  # block index inside its stage
    slot: int
    max_in: int
    max_mid: int
    max_out: int
    max_kernel: int
    stride: int
    has_expand: bool
    se: bool
    act: str


def supernet_slots(space: SearchSpace) -> tuple[SlotConfig, ...]:
    """Every block slot of the supernet (max depth per stage), with the shapes its weights need.

    The middle width holds both ``round(max_in * max_t)`` (the authors' allocation) and the largest
    ``make_divisible`` middle width any input width and ratio can produce.
    """
    slots = []
    in_widths: tuple[int, ...] = tuple(space.first_conv)
    for s, stage in enumerate(space.stages):
        for j in range(stage.max_depth):
            max_in = max(in_widths)
            max_mid = max(
                round(max_in * max(stage.expands)) if stage.has_expand_conv else max_in,
                max(mid_channels(c, t, stage.has_expand_conv) for c in in_widths for t in stage.expands),
            )
            slots.append(SlotConfig(s, j, len(slots), max_in, max_mid, max(stage.widths), max(stage.kernels),
                                    stage.stride if j == 0 else 1, stage.has_expand_conv, stage.se, stage.act))
            in_widths = stage.widths
    return tuple(slots)


# --------------------------------------------------------------------------- vectorised plan
@dataclass(frozen=True)
class SlotColumns:
    """One supernet block slot over ``n`` archs. ``on`` marks the archs whose depth reaches it; for
    the others the channel and size arrays describe the input passed on unchanged."""

    stage: int
    index: int
    stride: int
    has_expand: bool
    se: bool
    on: np.ndarray  # bool[n]
    c_in: np.ndarray
    c_mid: np.ndarray
    c_out: np.ndarray
    kernel: np.ndarray
    se_mid: np.ndarray  # zeros without SE
    size_in: np.ndarray
    size_out: np.ndarray


@dataclass(frozen=True)
class PlanColumns:
    """:class:`NetPlan` numbers for a gene matrix (int64 arrays of length n)."""

    resolution: np.ndarray
    first_out: np.ndarray
    first_size: np.ndarray
    slots: tuple[SlotColumns, ...]
    head_in: np.ndarray
    head_size: np.ndarray
    last: np.ndarray

    @property
    def head_expand(self) -> np.ndarray:
        return HEAD_EXPAND * self.head_in


def _slot_columns(space: SearchSpace, cols, first_out: np.ndarray, size: np.ndarray) -> Iterator[SlotColumns]:
    c_in = first_out
    for s, stage in enumerate(space.stages):
        c_out, k, t, d = cols.width[s + 1], cols.kernel_size[s], cols.expand_ratio[s], cols.depth[s]
        for j in range(stage.max_depth):
            on = j < d
            stride = stage.stride if j == 0 else 1
            size_out = -(-size // stride)
            mid = make_divisible_vec(np.round(c_in * t)) if stage.has_expand_conv else c_in
            se_mid = make_divisible_vec(mid // SE_REDUCTION) if stage.se else np.zeros_like(mid)
            yield SlotColumns(s, j, stride, stage.has_expand_conv, stage.se, on, c_in, mid, c_out, k, se_mid, size,
                              size_out)
            c_in = np.where(on, c_out, c_in)
            size = np.where(on, size_out, size)


def plan_columns(space: SearchSpace, genes: np.ndarray) -> PlanColumns:
    """The plan of every row of a gene matrix, vectorised over rows (see :class:`SlotColumns`)."""
    cols = space.columns(genes)
    res = cols.resolution
    size = -(-res // space.first_stride)
    first_out = cols.width[0]
    slots = tuple(_slot_columns(space, cols, first_out, size))
    last_slot = slots[-1]
    head_in = np.where(last_slot.on, last_slot.c_out, last_slot.c_in)
    head_size = np.where(last_slot.on, last_slot.size_out, last_slot.size_in)
    return PlanColumns(res, first_out, size, slots, head_in, head_size, cols.width[-1])
