"""The supernet's small-map convolutions compute what ``F.conv2d`` computes, values and gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from attentivenas.nn.small_maps import conv2d, depthwise_weight_grad


def _reference(x: torch.Tensor, w: torch.Tensor, stride: int, depthwise: bool) -> torch.Tensor:
    return F.conv2d(x, w, None, stride, w.size(-1) // 2, 1, x.size(1) if depthwise else 1)


@pytest.mark.parametrize(("size", "kernel", "stride", "depthwise", "channels_last"), [
    (1, 3, 1, True, True), (1, 5, 2, True, False), (2, 5, 1, True, True), (2, 3, 2, True, True),
    (3, 7, 1, True, False), (4, 5, 1, True, True), (5, 5, 2, True, True), (8, 3, 1, True, True),
    (1, 1, 1, False, True), (2, 1, 1, False, False), (2, 1, 2, False, True), (3, 1, 1, False, True),
])
def test_small_map_conv_matches_conv2d(size: int, kernel: int, stride: int, depthwise: bool,
                                       channels_last: bool) -> None:
    g = torch.Generator().manual_seed(size * 100 + kernel * 10 + stride)
    c_in = 12
    c_out = c_in if depthwise else 20
    x0 = torch.randn(5, c_in, size, size, generator=g)
    if channels_last:
        x0 = x0.contiguous(memory_format=torch.channels_last)
    w0 = torch.randn(c_out, 1 if depthwise else c_in, kernel, kernel, generator=g)
    grad = None
    results = []
    for fn in (conv2d, _reference):
        x, w = x0.clone().requires_grad_(), w0.clone().requires_grad_()
        y = fn(x, w, stride, depthwise)
        if grad is None:
            grad = torch.randn(y.shape, generator=g)
        y.backward(grad)
        results.append((y.detach(), x.grad, w.grad))
    for ours, ref in zip(*results, strict=True):
        assert ours.shape == ref.shape
        assert torch.allclose(ours, ref, rtol=1e-5, atol=1e-5)


def test_tap_weight_gradient_skips_only_padding_taps() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 2, 2, generator=g)
    grad_out = torch.randn(3, 4, 2, 2, generator=g)
    ours = depthwise_weight_grad(grad_out, x, 5, 1)
    ref = torch.ops.aten.convolution_backward(grad_out, x, torch.zeros(4, 1, 5, 5), None, [1, 1], [2, 2], [1, 1],
                                              False, [0, 0], 4, [False, True, False])[1]
    assert torch.allclose(ours, ref, atol=1e-6)
    assert (ours[:, :, 0] == 0).all() and (ours[:, :, :, 4] == 0).all()  # taps that see padding only
    assert (ours[:, :, 1:4, 1:4] != 0).all()


def test_without_gradients_depthwise_uses_oneDNN_and_agrees() -> None:
    x = torch.randn(2, 6, 2, 2)
    w = torch.randn(6, 1, 3, 3)
    with torch.no_grad():
        assert torch.allclose(conv2d(x, w, 1, True), _reference(x, w, 1, True), atol=1e-6)
