"""Measured memory of a module: peak activation bytes of one eval-mode forward, and weight bytes.

The analytic model (:mod:`attentivenas.costs.memory`) predicts these; this module checks it. On
CUDA with ``torch.cuda.max_memory_allocated`` (which adds allocator rounding and kernel
workspaces); on CPU by tracing every op's output storage with a ``TorchDispatchMode`` and freeing
it with a weakref finalizer on the storage (exactly the tensors the model counts; kernel-internal
scratch buffers are not seen).
"""

from __future__ import annotations

import copy
import weakref
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


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
