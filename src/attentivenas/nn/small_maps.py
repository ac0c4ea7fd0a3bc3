"""Convolutions on small feature maps, computed without oneDNN's slow paths there.

The supernet's last stages see 1x1 to 4x4 maps on small images (the tiny space at 24-32 pixels) and
7x7 maps at 224. On those maps oneDNN's kernels (torch 2.14, CPU) are dominated by overhead:

* a depthwise convolution's weight gradient took 7.4 ms for 32 x 384 channels on a 1x1 map and
  2.7 ms for 32 x 240 on 2x2 (one thread); summing ``grad_out * shifted input`` per kernel tap
  takes 0.05 and 0.29 ms and gives the same values (the input gradient stays with oneDNN, which is
  fast there);
* a depthwise convolution of a 1x1 map is a per-channel scale by the kernel's centre tap;
* a 1x1 convolution on a map of at most 4 positions is a matrix product of the ``[B * H * W, C]``
  rows: 1.2 ms as a conv and 0.06 ms as ``F.linear`` forward for 32 x 72 -> 432 at 1x1.

:func:`conv2d` picks the path from the shapes, so the same call serves every layer; other maps go
to ``F.conv2d`` unchanged. Only the supernet's dynamic ops use it: the static subnets keep plain
``nn.Conv2d`` modules so that exported programs (ONNX, TorchScript, ``torch.export``) hold
ordinary convolutions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: Maps of at most this many positions run their 1x1 convolutions as matrix products.
POINTWISE_MAX_POSITIONS = 4
#: Depthwise convolutions whose output has at most this many positions compute their weight
#: gradient by kernel taps (measured faster up to 4x4 outputs at 16-432 channels; oneDNN wins
#: from about 8x8 on).
DEPTHWISE_MAX_POSITIONS = 16


def _out_size(size: int, kernel: int, stride: int) -> int:
    return (size + 2 * (kernel // 2) - kernel) // stride + 1


def _only_padding(tap: int, out: int, stride: int, pad: int, size: int) -> bool:
    """Whether kernel tap ``tap`` meets only padding along one axis (of ``size`` inputs, ``out`` outputs)."""
    return all(r < pad or r >= pad + size for r in range(tap, tap + stride * (out - 1) + 1, stride))


def depthwise_weight_grad(grad_out: torch.Tensor, x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """The weight gradient ``[C, 1, k, k]`` of a depthwise conv (padding ``k // 2``), per tap.

    Tap ``(i, j)`` sums ``grad_out * x_padded[..., i::stride, j::stride]`` over batch and space; taps
    that only ever see padding are zero and skipped.
    """
    c = x.size(1)
    ho, wo = grad_out.shape[-2:]
    pad = kernel // 2
    h, w = x.shape[-2:]
    xp = F.pad(x, (pad, pad, pad, pad))
    grad = grad_out.new_zeros(c, kernel, kernel)
    for i in range(kernel):
        if _only_padding(i, ho, stride, pad, h):
            continue
        for j in range(kernel):
            if _only_padding(j, wo, stride, pad, w):
                continue
            patch = xp[:, :, i:i + stride * (ho - 1) + 1:stride, j:j + stride * (wo - 1) + 1:stride]
            grad[:, i, j] = (grad_out * patch).sum((0, 2, 3))
    return grad.unsqueeze(1)


class _SmallDepthwise(torch.autograd.Function):
    """Depthwise conv: forward and input gradient by oneDNN, weight gradient by taps."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, stride: int) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x, weight)
        ctx.stride = stride
        k = weight.size(-1)
        return F.conv2d(x, weight, None, stride, k // 2, 1, x.size(1))

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):  # type: ignore[override]
        x, weight = ctx.saved_tensors
        stride, k = ctx.stride, weight.size(-1)
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten.convolution_backward(
                grad_out, x, weight, None, [stride, stride], [k // 2, k // 2], [1, 1], False, [0, 0], x.size(1),
                [True, False, False])[0]
        if ctx.needs_input_grad[1]:
            grad_w = depthwise_weight_grad(grad_out, x, k, stride)
        return grad_x, grad_w, None


def _pointwise_as_matmul(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """A 1x1 conv (stride 1) as ``F.linear`` over the channels-last rows; the result is channels-last."""
    rows = x.permute(0, 2, 3, 1)
    return F.linear(rows, weight.flatten(1)).permute(0, 3, 1, 2)


def conv2d(x: torch.Tensor, weight: torch.Tensor, stride: int = 1, depthwise: bool = False) -> torch.Tensor:
    """``F.conv2d(x, weight, None, stride, k // 2, groups=C if depthwise else 1)`` by the fastest path."""
    k = weight.size(-1)
    h, w = x.shape[-2:]
    if depthwise:
        if h == 1 and w == 1:  # only the centre tap meets the input: a per-channel scale
            return x * weight[:, 0, k // 2, k // 2].view(1, -1, 1, 1)
        positions = _out_size(h, k, stride) * _out_size(w, k, stride)
        if positions <= DEPTHWISE_MAX_POSITIONS and torch.is_grad_enabled() and weight.requires_grad:
            return _SmallDepthwise.apply(x, weight, stride)
        return F.conv2d(x, weight, None, stride, k // 2, 1, x.size(1))
    if k == 1 and stride == 1 and h * w <= POINTWISE_MAX_POSITIONS:
        return _pointwise_as_matmul(x, weight)
    return F.conv2d(x, weight, None, stride, k // 2, 1, 1)
