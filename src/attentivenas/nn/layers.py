"""Small functional pieces shared by the dynamic and the static modules: activations, the input
resize, the strided shortcut's pooling, drop-connect, and the weight slicing of weight sharing."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.nn as nn
import torch.nn.functional as F

ACT_FN: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "swish": F.silu,
    "relu": F.relu,
    "relu6": F.relu6,
    "h_swish": F.hardswish,
}
_ACT_MODULES: dict[str, type[nn.Module]] = {"swish": nn.SiLU, "relu": nn.ReLU, "relu6": nn.ReLU6, "h_swish": nn.Hardswish}


def act_module(name: str | None) -> nn.Module:
    """The activation module of a space's ``act_func`` name (identity for ``None``)."""
    return _ACT_MODULES[name]() if name is not None else nn.Identity()


def resize_input(x: torch.Tensor, resolution: int) -> torch.Tensor:
    """Resize a batch to ``resolution`` (bicubic), as the authors' network does inside forward."""
    if x.size(-1) != resolution or x.size(-2) != resolution:
        x = F.interpolate(x, size=(resolution, resolution), mode="bicubic", align_corners=False)
    return x


def shortcut_pool(x: torch.Tensor, stride: int) -> torch.Tensor:
    """Avg-pool of a strided shortcut; odd sizes get padding 1 (output size = ceil(size / stride))."""
    pad = 0 if x.size(-1) % 2 == 0 else 1
    return F.avg_pool2d(x, stride, padding=pad)


def drop_connect(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """Drop whole samples of a residual branch with probability ``rate`` (scaled by 1 / keep)."""
    if not training or rate <= 0.0:
        return x
    keep = 1.0 - rate
    mask = torch.floor(keep + torch.rand((x.size(0), 1, 1, 1), dtype=x.dtype, device=x.device))
    return x / keep * mask


# --------------------------------------------------------------------------- weight sharing
class _SharedSlice(torch.autograd.Function):
    """A slice of a shared parameter whose gradient is added in place into the same slice of
    ``param.grad``. Autograd's own slice backward builds a zero-filled gradient of the *whole*
    parameter and then adds all of it into ``param.grad``: three passes over the largest setting's
    weights for every smaller subnet trained, however small (the sandwich trains three per step).
    The sums are the same, element for element. Gradients are all-reduced once per step from
    ``param.grad`` (:func:`attentivenas.train.distributed.all_reduce_grads`), so no hook is missed."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, param: torch.Tensor,  # type: ignore[override]
                index: tuple[slice, ...]) -> torch.Tensor:
        ctx.param, ctx.index = param, index  # type: ignore[attr-defined]
        return param[index].clone(memory_format=torch.contiguous_format)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> tuple[None, None]:  # type: ignore[override]
        param: torch.Tensor = ctx.param  # type: ignore[attr-defined]
        if param.grad is None:
            param.grad = torch.zeros_like(param)
        param.grad[ctx.index].add_(grad)  # type: ignore[attr-defined]
        return None, None


_slices_in_place = True  # False only inside autograd_slices()


@contextmanager
def autograd_slices() -> Iterator[None]:
    """Inside the block, sliced shared weights take autograd's own slice (a zero-filled gradient of
    the whole parameter, then added whole) instead of :class:`_SharedSlice`: the same sums, to
    measure what the in-place gradient saves (``benchmarks/bench_shared_slice.py``)."""
    global _slices_in_place
    _slices_in_place = False
    try:
        yield
    finally:
        _slices_in_place = True


def take(t: torch.Tensor, index: tuple[slice, ...]) -> torch.Tensor:
    """``t[index]`` for the prefix and centre slices of weight sharing: ``t`` itself when ``index``
    takes all of it (no slice recorded); a trainable parameter's slice accumulates its gradient in
    place (:class:`_SharedSlice`; not inside :func:`autograd_slices`), anything else is a view."""
    if all(sl.indices(n) == (0, n, 1) for sl, n in zip(index, t.shape, strict=False)):
        return t
    if (_slices_in_place and t.requires_grad and t.is_leaf and torch.is_grad_enabled()
            and not torch.compiler.is_compiling()):
        return _SharedSlice.apply(t, index)
    return t[index]


def first(t: torch.Tensor, n: int, dim: int = 0) -> torch.Tensor:
    """The first ``n`` entries of ``t`` along ``dim`` (see :func:`take`)."""
    return take(t, (slice(None),) * dim + (slice(0, n),))


def kernel_index(size: int, kernel: int) -> tuple[slice, slice]:
    """The centre ``kernel x kernel`` of a ``size x size`` kernel (the largest holds every smaller one)."""
    start = (size - kernel) // 2 if kernel < size else 0
    return slice(start, start + min(kernel, size)), slice(start, start + min(kernel, size))


def depthwise_weight(weight: torch.Tensor, channels: int, kernel: int) -> torch.Tensor:
    """The first ``channels`` filters of a depthwise weight, centre-cropped to ``kernel`` (one slice)."""
    return take(weight, (slice(0, channels), slice(None), *kernel_index(weight.size(-1), kernel)))


def slice_weight(weight: torch.Tensor, out_channels: int, in_channels: int | None = None) -> torch.Tensor:
    """The first ``out_channels`` (and ``in_channels``) of a conv or linear weight (one slice)."""
    index = (slice(0, out_channels),) if in_channels is None else (slice(0, out_channels), slice(0, in_channels))
    return take(weight, index)
