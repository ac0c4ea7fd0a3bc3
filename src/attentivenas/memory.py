"""Memory footprint of a subnet: weight bytes and peak activation bytes of inference.

Weights: ``parameters x itemsize`` (the parameters of :func:`attentivenas.cost.count_params`:
conv and linear weights, biases and BN affine parameters; BN running statistics are buffers and
only counted with ``include_buffers=True``).

Peak activation bytes follow the **liveness model of PyTorch eager execution** of the
:class:`~attentivenas.supernet.StaticSubnet`: an op allocates its output while its inputs are
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

The peak is the maximum over these steps. :func:`measure_peak_activation_bytes` checks it: on
CUDA with ``torch.cuda.max_memory_allocated`` (which adds allocator rounding and kernel
workspaces), on CPU by tracing every op's output storage with a ``TorchDispatchMode`` and
freeing it with a weakref finalizer on the storage (exactly the tensors above; kernel-internal
scratch buffers are not seen).
"""

from __future__ import annotations

import copy
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from .cost import HEAD_EXPAND, SE_REDUCTION, CostModel, count_params, layer_specs
from .errors import UserError
from .space import Arch, SearchSpace

MB = 1e6  #: bytes per MB (decimal, like MFLOPs)


def _itemsize(dtype: torch.dtype | str) -> int:
    if isinstance(dtype, str):
        name = dtype.replace("torch.", "")
        dt = getattr(torch, name, None)
        if not isinstance(dt, torch.dtype):
            raise UserError(f"unknown dtype {dtype!r}; use e.g. float32, float16, bfloat16, int8")
        dtype = dt
    return torch.empty((), dtype=dtype).element_size()


def _div8_vec(v: np.ndarray, divisor: int = 8) -> np.ndarray:
    new_v = np.maximum(1, np.floor(v + divisor / 2).astype(np.int64) // divisor * divisor)
    return np.where(new_v < 0.9 * v, new_v + divisor, new_v)


# --------------------------------------------------------------------------- weights
def weight_bytes(space: SearchSpace, arch: Arch, dtype: torch.dtype | str = torch.float32,
                 num_classes: int = 1000, include_buffers: bool = False) -> int:
    """Bytes of the subnet's parameters (``params x itemsize``); with ``include_buffers`` also the BN
    running mean/var (same dtype) and their int64 batch counters."""
    n = count_params(space, arch, num_classes)
    size = _itemsize(dtype)
    total = n * size
    if include_buffers:
        bns = [layer.c_out for layer in layer_specs(space, arch, num_classes) if layer.bn]
        total += sum(2 * c * size + 8 for c in bns)
    return int(total)


# --------------------------------------------------------------------------- activations (vectorised)
class MemoryModel:
    """Vectorised memory model of one space: weights and peak activations for gene matrices.

    ``batch`` and ``dtype`` fix the inference setting; ``input_size`` is the side of the input
    batch when it differs from every arch's resolution (``None``: input at the resolution).
    """

    def __init__(self, space: SearchSpace, num_classes: int = 1000, batch: int = 1,
                 dtype: torch.dtype | str = torch.float32, input_size: int | None = None) -> None:
        if batch < 1:
            raise UserError(f"batch must be >= 1, got {batch}")
        self.space = space
        self.num_classes = num_classes
        self.batch = int(batch)
        self.itemsize = _itemsize(dtype)
        self.input_size = input_size
        self.cost = CostModel(space, num_classes)

    def peak_elements(self, genes: np.ndarray, return_steps: bool = False) -> Any:
        """Peak number of live activation elements per row (and the per-step live counts)."""
        space = self.space
        res, widths, depths, kernels, expands = self.cost._columns(genes)
        del kernels  # activations do not depend on the kernel size
        b = self.batch
        steps: list[tuple[str, np.ndarray]] = []

        def step(name: str, live: np.ndarray) -> None:
            steps.append((name, np.asarray(live, dtype=np.int64)))

        in_side = res if self.input_size is None else np.full_like(res, self.input_size)
        inp = 3 * in_side**2 * b
        resized = np.where(in_side != res, 3 * res**2 * b, 0)
        size = -(-res // space.first_stride)
        a0 = widths[0] * size**2 * b
        step("first_conv", inp + resized + 2 * a0)
        held = inp + a0  # the input and the first conv's output (argument of the blocks)
        c_in = widths[0]
        x = a0
        first = True
        for s, stage in enumerate(space.stages):
            c_out, t, d = widths[s + 1], expands[s], depths[s]
            for j in range(stage.max_depth):
                on = j < d
                stride = stage.stride if j == 0 else 1
                size_out = -(-size // stride)
                hb = held if first else held + x
                mid = _div8_vec(np.round(c_in * t)) if stage.has_expand_conv else c_in
                dd = mid * size_out**2 * b
                p = c_out * size_out**2 * b
                live: list[np.ndarray] = []
                if stage.has_expand_conv:
                    e = mid * size**2 * b
                    live.append(hb + 2 * e)
                else:
                    e = 0
                live.append(hb + e + 2 * dd)
                if stage.se:
                    se = _div8_vec(mid // SE_REDUCTION)
                    gate = mid * b
                    live.append(hb + e + dd + np.maximum(dd + gate, 2 * gate + 2 * se * b))
                live.append(hb + dd + 2 * p)
                pooled = np.where(stride > 1, c_in * size_out**2 * b, 0)
                conv = np.where(c_in != c_out, p, 0)
                live.append(hb + p + pooled + conv)
                shortcut = np.where(c_in != c_out, conv, pooled)
                live.append(hb + p + shortcut + p)
                name = f"{stage.name}.block{j}"
                block_peak = np.max(np.stack(live), axis=0)
                step(name, np.where(on, block_peak, 0))
                x = np.where(on, p, x)
                c_in = np.where(on, c_out, c_in)
                size = np.where(on, size_out, size)
                first = False
        c_exp = HEAD_EXPAND * c_in
        f = c_exp * size**2 * b
        g = c_exp * b
        h = widths[-1] * b
        step("head", inp + x + np.maximum(2 * f, np.maximum(f + g, g + 2 * h)))
        step("classifier", inp + h + self.num_classes * b)
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


def peak_activation_bytes(space: SearchSpace, arch: Arch, batch: int = 1, dtype: torch.dtype | str = torch.float32,
                          num_classes: int = 1000, input_size: int | None = None) -> int:
    """Analytic peak activation bytes of inference of ``arch`` (see the module docstring)."""
    model = MemoryModel(space, num_classes, batch, dtype, input_size)
    return int(model.peak_activation_bytes(space.encode(arch)[None, :])[0])


def activation_steps(space: SearchSpace, arch: Arch, batch: int = 1, dtype: torch.dtype | str = torch.float32,
                     num_classes: int = 1000) -> list[tuple[str, int]]:
    """Live activation bytes at the peak of every step (first conv, each block, head)."""
    model = MemoryModel(space, num_classes, batch, dtype)
    genes = space.encode(arch)[None, :]
    _, steps = model.peak_elements(genes, return_steps=True)
    return [(name, int(v[0]) * model.itemsize) for name, v in steps if int(v[0]) > 0]


def memory_mb(space: SearchSpace, genes: np.ndarray, batch: int = 1, dtype: torch.dtype | str = torch.float32,
              num_classes: int = 1000) -> np.ndarray:
    """Memory footprint (peak activations + weights, MB) of every row of ``genes``."""
    return MemoryModel(space, num_classes, batch, dtype).memory_mb(genes)


# --------------------------------------------------------------------------- measurement
class _AllocationTracer(TorchDispatchMode):
    """Tracks bytes of storages created by ops (outputs that do not alias an input) until freed."""

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, int] = {}
        self.current = 0
        self.peak = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        out = func(*args, **(kwargs or {}))
        inputs = {t.untyped_storage().data_ptr() for t in tree_flatten((args, kwargs))[0]
                  if isinstance(t, torch.Tensor)}
        for t in tree_flatten(out)[0]:
            if not isinstance(t, torch.Tensor):
                continue
            storage = t.untyped_storage()
            key, nbytes = storage.data_ptr(), storage.nbytes()
            if nbytes == 0 or key in self.live or key in inputs:
                continue
            self.live[key] = nbytes
            self.current += nbytes
            self.peak = max(self.peak, self.current)
            weakref.finalize(storage, self._free, key)
        return out

    def _free(self, key: int) -> None:
        self.current -= self.live.pop(key, 0)


def measure_peak_activation_bytes(model: nn.Module, input_shape: Sequence[int],
                                  dtype: torch.dtype | str = torch.float32,
                                  device: str | torch.device = "cpu", seed: int = 0) -> int:
    """Measured peak activation bytes of one eval-mode forward of ``model`` (input included).

    CUDA: ``max_memory_allocated`` during the forward minus what was allocated before it (weights
    and input), plus the input. CPU: op outputs traced with a dispatch mode (see module docstring).
    """
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype.replace("torch.", ""))
    dev = torch.device(device)
    net = copy.deepcopy(model).to(device=dev, dtype=dtype).eval()
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(*input_shape, generator=gen).to(device=dev, dtype=dtype)
    input_bytes = x.numel() * x.element_size()
    with torch.inference_mode():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
            torch.cuda.reset_peak_memory_stats(dev)
            before = torch.cuda.memory_allocated(dev)
            y = net(x)
            torch.cuda.synchronize(dev)
            peak = torch.cuda.max_memory_allocated(dev) - before + input_bytes
            del y
            return int(peak)
        tracer = _AllocationTracer()
        with tracer:
            y = net(x)
        del y
        return int(tracer.peak + input_bytes)


def measure_weight_bytes(model: nn.Module, include_buffers: bool = False) -> int:
    """Bytes of the model's parameters (and buffers)."""
    total = sum(p.numel() * p.element_size() for p in model.parameters())
    if include_buffers:
        total += sum(b.numel() * b.element_size() for b in model.buffers())
    return int(total)
