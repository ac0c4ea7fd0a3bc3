"""Small functional pieces shared by the dynamic and the static modules: activations, the input
resize, the strided shortcut's pooling, drop-connect, and the weight slicing of weight sharing."""

from __future__ import annotations

from collections.abc import Callable

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
def first(t: torch.Tensor, n: int, dim: int = 0) -> torch.Tensor:
    """The first ``n`` entries of ``t`` along ``dim``; ``t`` itself when that is all of it (no slice is
    recorded, so the gradient needs no zero-filled copy of the whole parameter)."""
    return t if n >= t.size(dim) else t.narrow(dim, 0, n)


def crop_kernel(weight: torch.Tensor, kernel: int) -> torch.Tensor:
    """The centre ``kernel x kernel`` of a conv weight (the largest kernel holds every smaller one)."""
    if kernel >= weight.size(-1):
        return weight
    start = (weight.size(-1) - kernel) // 2
    return weight[..., start : start + kernel, start : start + kernel]


def slice_weight(weight: torch.Tensor, out_channels: int, in_channels: int | None = None) -> torch.Tensor:
    """The first ``out_channels`` (and ``in_channels``) of a conv or linear weight."""
    w = first(weight, out_channels)
    return w if in_channels is None else first(w, in_channels, 1)
