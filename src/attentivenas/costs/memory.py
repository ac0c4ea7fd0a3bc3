"""Memory footprint of a subnet: weight bytes and peak activation bytes of inference.

Weights: ``parameters x itemsize`` (the parameters of :func:`attentivenas.costs.count_params`:
conv and linear weights, biases and BN affine parameters; BN running statistics are buffers and
only counted with ``include_buffers=True``).

Peak activation bytes follow the **liveness model of PyTorch eager execution** of the
:class:`~attentivenas.nn.StaticSubnet`: an op allocates its output while its inputs are
alive, and a tensor is freed once no Python frame references it (a temporary right after the call
that consumed it; a local variable when it is rebound or its frame returns). For batch ``B`` and
element counts (channels x height x width x B) this gives:

- always live: the input batch (held by the caller); ``R`` its resized copy while the first conv
  runs (only when the input size differs from the resolution);
- first conv: ``input + conv_out + bn_out`` (conv output freed after BN; BN output after SiLU);
- while the blocks run, the first conv's output ``A`` stays live (it is the argument of the
  ``nn.Sequential`` of blocks);
- an MBConv block keeps its input ``X`` live to its end (residual). Steps, with ``E`` the expand
  output, ``D`` the depthwise output, ``P`` the project output:
  expand ``X + 2E``; depthwise ``X + E + 2D`` (the expand output is the depthwise module's
  argument until it returns); SE ``X + E + 2D + B*mid`` (the gate; or its 1x1 squeeze tensors
  when those are larger); project ``X + D + 2P``; shortcut ``X + P + pooled + conv`` and the
  add ``X + P + shortcut + out``. Without an expand conv ``E`` is ``X`` itself (not counted
  twice);
- head: ``X + 2F`` (final expand), ``X + F + pooled``, ``X + pooled + 2 * mix``, then
  ``mix + logits``.

The peak is the maximum over these steps. :func:`attentivenas.nn.measure_peak_activation_bytes` checks it: on
CUDA with ``torch.cuda.max_memory_allocated`` (which adds allocator rounding and kernel
workspaces), on CPU by tracing every op's output storage (see :mod:`attentivenas.nn.memory`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import UserError
from ..space import Arch, SearchSpace, SlotColumns, plan_columns
from .layers import count_params, layer_specs
from .model import CostModel

MB = 1e6  #: bytes per MB (decimal, like MFLOPs)


#: Bytes per element of the dtypes a deployed subnet runs in (names as torch spells them).
ITEMSIZE = {"float64": 8, "double": 8, "float32": 4, "float": 4, "float16": 2, "half": 2, "bfloat16": 2,
            "int64": 8, "long": 8, "int32": 4, "int": 4, "int16": 2, "short": 2, "int8": 1, "uint8": 1,
            "float8_e4m3fn": 1, "float8_e5m2": 1}

Dtype = Any  # a torch.dtype or its name ("float32", "torch.float16", ...): torch is not imported here


def itemsize(dtype: Dtype) -> int:
    """Bytes per element of ``dtype`` (a ``torch.dtype`` or its name)."""
    name = str(dtype).replace("torch.", "")
    if name not in ITEMSIZE:
        raise UserError(f"unknown dtype {dtype!r}; use e.g. float32, float16, bfloat16, int8")
    return ITEMSIZE[name]


# --------------------------------------------------------------------------- weights
def weight_bytes(space: SearchSpace, arch: Arch, dtype: Dtype = "float32",
                 num_classes: int = 1000, include_buffers: bool = False) -> int:
    """Bytes of the subnet's parameters (``params x itemsize``); with ``include_buffers`` also the BN
    running mean/var (same dtype) and their int64 batch counters."""
    n = count_params(space, arch, num_classes)
    size = itemsize(dtype)
    total = n * size
    if include_buffers:
        bns = [layer.c_out for layer in layer_specs(space, arch, num_classes) if layer.bn]
        total += sum(2 * c * size + 8 for c in bns)
    return int(total)


# --------------------------------------------------------------------------- activations (vectorised)
def _block_live(slot: SlotColumns, b: int, held: np.ndarray) -> list[np.ndarray]:
    """Live elements at each step of one MBConv block (see the module docstring), ``held`` being
    what stays live around it (the input batch, the blocks' argument and the block's input)."""
    c_in, c_out, mid, size, size_out = slot.c_in, slot.c_out, slot.c_mid, slot.size_in, slot.size_out
    dd = mid * size_out**2 * b
    p = c_out * size_out**2 * b
    live: list[np.ndarray] = []
    e = 0
    if slot.has_expand:
        e = mid * size**2 * b
        live.append(held + 2 * e)
    live.append(held + e + 2 * dd)
    if slot.se:
        gate = mid * b
        live.append(held + e + dd + np.maximum(dd + gate, 2 * gate + 2 * slot.se_mid * b))
    live.append(held + dd + 2 * p)
    pooled = np.where(slot.stride > 1, c_in * size_out**2 * b, 0)
    conv = np.where(c_in != c_out, p, 0)
    live.append(held + p + pooled + conv)
    shortcut = np.where(c_in != c_out, conv, pooled)
    live.append(held + p + shortcut + p)
    return live


class MemoryModel:
    """Vectorised memory model of one space: weights and peak activations for gene matrices.

    ``batch`` and ``dtype`` fix the inference setting; ``input_size`` is the side of the input
    batch when it differs from every arch's resolution (``None``: input at the resolution).
    """

    def __init__(self, space: SearchSpace, num_classes: int = 1000, batch: int = 1,
                 dtype: Dtype = "float32", input_size: int | None = None) -> None:
        if batch < 1:
            raise UserError(f"batch must be >= 1, got {batch}")
        self.space = space
        self.num_classes = num_classes
        self.batch = int(batch)
        self.itemsize = itemsize(dtype)
        self.input_size = input_size
        self.cost = CostModel(space, num_classes)

    def peak_elements(self, genes: np.ndarray, return_steps: bool = False) -> Any:
        """Peak number of live activation elements per row (and the per-step live counts)."""
        plan = plan_columns(self.space, genes)
        res, b = plan.resolution, self.batch
        steps: list[tuple[str, np.ndarray]] = []

        in_side = res if self.input_size is None else np.full_like(res, self.input_size)
        inp = 3 * in_side**2 * b
        resized = np.where(in_side != res, 3 * res**2 * b, 0)
        a0 = plan.first_out * plan.first_size**2 * b
        steps.append(("first_conv", inp + resized + 2 * a0))
        held = inp + a0  # the input and the first conv's output (argument of the blocks)
        x = a0
        for i, slot in enumerate(plan.slots):
            hb = held if i == 0 else held + x  # the first block's input is the first conv's output
            live = _block_live(slot, b, hb)
            name = f"{self.space.stages[slot.stage].name}.block{slot.index}"
            steps.append((name, np.where(slot.on, np.max(np.stack(live), axis=0), 0)))
            x = np.where(slot.on, slot.c_out * slot.size_out**2 * b, x)
        f = plan.head_expand * plan.head_size**2 * b
        g = plan.head_expand * b
        h = plan.last * b
        steps.append(("head", inp + x + np.maximum(2 * f, np.maximum(f + g, g + 2 * h))))
        steps.append(("classifier", inp + h + self.num_classes * b))
        steps = [(name, np.asarray(v, dtype=np.int64)) for name, v in steps]
        peak = np.max(np.stack([v for _, v in steps]), axis=0)
        return (peak, steps) if return_steps else peak

    def peak_activation_bytes(self, genes: np.ndarray) -> np.ndarray:
        """Peak activation bytes of every row of ``genes``."""
        return self.peak_elements(genes) * self.itemsize

    def weight_bytes(self, genes: np.ndarray) -> np.ndarray:
        """Parameter bytes of every row of ``genes``."""
        return self.cost.params(genes).astype(np.int64) * self.itemsize

    def memory_mb(self, genes: np.ndarray) -> np.ndarray:
        """Peak activation plus weight bytes, in MB (1e6 bytes), of every row of ``genes``."""
        return (self.peak_activation_bytes(genes) + self.weight_bytes(genes)) / MB

    def __call__(self, genes: np.ndarray) -> np.ndarray:
        return self.memory_mb(genes)


def peak_activation_bytes(space: SearchSpace, arch: Arch, batch: int = 1, dtype: Dtype = "float32",
                          num_classes: int = 1000, input_size: int | None = None) -> int:
    """Analytic peak activation bytes of inference of ``arch`` (see the module docstring)."""
    model = MemoryModel(space, num_classes, batch, dtype, input_size)
    return int(model.peak_activation_bytes(space.encode(arch)[None, :])[0])


def activation_steps(space: SearchSpace, arch: Arch, batch: int = 1, dtype: Dtype = "float32",
                     num_classes: int = 1000) -> list[tuple[str, int]]:
    """Live activation bytes at the peak of every step (first conv, each block, head)."""
    model = MemoryModel(space, num_classes, batch, dtype)
    genes = space.encode(arch)[None, :]
    _, steps = model.peak_elements(genes, return_steps=True)
    return [(name, int(v[0]) * model.itemsize) for name, v in steps if int(v[0]) > 0]


def memory_mb(space: SearchSpace, genes: np.ndarray, batch: int = 1, dtype: Dtype = "float32",
              num_classes: int = 1000) -> np.ndarray:
    """Memory footprint (peak activations + weights, MB) of every row of ``genes``."""
    return MemoryModel(space, num_classes, batch, dtype).memory_mb(genes)
