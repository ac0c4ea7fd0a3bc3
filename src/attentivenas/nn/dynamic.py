"""Dynamic ops of the weight-sharing supernet, each able to build its own static twin.

Weight sharing follows the authors: every op keeps the weights of its largest setting and an active
subnet uses the *first* channels, depthwise kernels are centre-cropped from the largest kernel, and
BN weights and statistics are sliced to the active width. Module names follow the authors' layout,
so the supernet's state dict has the keys of their checkpoints.

As in once-for-all's ``get_active_subnet``, every op's ``to_static(...)`` returns the plain module
of :mod:`attentivenas.nn.static` that computes what the op computes for the given shapes, with the
weights (and BN statistics) copied; extracting a subnet is the composition of these twins.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..space import HEAD_EXPAND, BlockConfig, SlotConfig, se_channels
from . import small_maps
from .layers import ACT_FN, depthwise_weight, drop_connect, first, shortcut_pool, slice_weight
from .static import Block, ConvBnAct, DepthConv, Head, MBConv, SEFc, Shortcut, SqueezeExcite


def _copy_bn(dst: nn.BatchNorm2d, src: nn.BatchNorm2d) -> nn.BatchNorm2d:
    """Copy the first ``dst.num_features`` channels of ``src`` (affine, statistics, settings)."""
    c = dst.num_features
    with torch.no_grad():
        dst.weight.copy_(src.weight[:c])
        dst.bias.copy_(src.bias[:c])
        dst.running_mean.copy_(src.running_mean[:c])
        dst.running_var.copy_(src.running_var[:c])
        dst.num_batches_tracked.copy_(src.num_batches_tracked)
    dst.eps, dst.momentum = src.eps, src.momentum
    return dst


# --------------------------------------------------------------------------- conv, BN
class DynamicConv2d(nn.Module):
    """A conv whose active output channels are the first ``out_channels`` of its weight; the
    input channels follow the input. Depthwise convs (``depthwise=True``) crop the kernel."""

    def __init__(self, max_in: int, max_out: int, kernel_size: int = 1, stride: int = 1,
                 depthwise: bool = False) -> None:
        super().__init__()
        groups = max_in if depthwise else 1
        self.conv = nn.Conv2d(max_in, max_out, kernel_size, stride, kernel_size // 2, groups=groups, bias=False)
        self.depthwise = depthwise
        self.stride = stride
        self.max_kernel = kernel_size

    def active_weight(self, c_in: int, out_channels: int, kernel_size: int | None = None) -> torch.Tensor:
        """The weight slice of ``c_in`` inputs (depthwise: channels), ``out_channels`` outputs and
        ``kernel_size`` (depthwise only; others use their one kernel)."""
        if self.depthwise:
            return depthwise_weight(self.conv.weight, c_in, kernel_size or self.max_kernel)
        return slice_weight(self.conv.weight, out_channels, c_in)

    def forward(self, x: torch.Tensor, out_channels: int, kernel_size: int | None = None) -> torch.Tensor:
        c_in = x.size(1)
        w = self.active_weight(c_in, out_channels, kernel_size).contiguous()
        return small_maps.conv2d(x, w, self.stride, self.depthwise)

    def copy_to(self, dst: nn.Conv2d) -> nn.Conv2d:
        """Copy the active weight into the static conv ``dst`` (its shape selects the slice)."""
        c_in = dst.out_channels if self.depthwise else dst.in_channels
        with torch.no_grad():
            dst.weight.copy_(self.active_weight(c_in, dst.out_channels, dst.kernel_size[0]))
        return dst


class DynamicBatchNorm2d(nn.Module):
    """BatchNorm over the first C channels of an ``nn.BatchNorm2d`` named ``bn``.

    Honours the inner BN's ``momentum`` (``None`` = cumulative average) and
    ``num_batches_tracked`` like PyTorch's BN, on the sliced statistics, in train and eval mode.
    With ``momentum = 0`` (the recipe) training leaves the statistics untouched: PyTorch's update
    ``(1 - 0) * running + 0 * batch`` would still turn them NaN on a non-finite batch.
    """

    def __init__(self, max_channels: int, momentum: float | None = 0.1, eps: float = 1e-5) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(max_channels, eps=eps, momentum=momentum)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bn = self.bn
        c = x.size(1)
        factor = 0.0
        running = bn.running_mean is not None
        if self.training and bn.track_running_stats:
            bn.num_batches_tracked.add_(1)
            factor = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
            running = factor != 0.0
        use_batch_stats = self.training or bn.running_mean is None
        return F.batch_norm(
            x,
            first(bn.running_mean, c) if running else None,
            first(bn.running_var, c) if running else None,
            first(bn.weight, c),
            first(bn.bias, c),
            use_batch_stats,
            factor,
            bn.eps,
        )

    def copy_to(self, dst: nn.BatchNorm2d) -> nn.BatchNorm2d:
        return _copy_bn(dst, self.bn)


class DynamicConvBnAct(nn.Module):
    """conv + (BN) + activation, sliced."""

    def __init__(self, max_in: int, max_out: int, kernel_size: int = 1, stride: int = 1,
                 use_bn: bool = True, act: str | None = "swish", bn_momentum: float | None = 0.1,
                 bn_eps: float = 1e-5) -> None:
        super().__init__()
        self.conv = DynamicConv2d(max_in, max_out, kernel_size, stride)
        self.bn = DynamicBatchNorm2d(max_out, bn_momentum, bn_eps) if use_bn else None
        self.act_name = act

    def forward(self, x: torch.Tensor, out_channels: int) -> torch.Tensor:
        x = self.conv(x, out_channels)
        if self.bn is not None:
            x = self.bn(x)
        if self.act_name is not None:
            x = ACT_FN[self.act_name](x)
        return x

    def copy_to(self, dst: ConvBnAct) -> ConvBnAct:
        self.conv.copy_to(dst.conv)
        if self.bn is not None:
            self.bn.copy_to(dst.bn)
        return dst

    def to_static(self, c_in: int, c_out: int) -> ConvBnAct:
        conv = self.conv
        return self.copy_to(ConvBnAct(c_in, c_out, conv.max_kernel, conv.stride, use_bn=self.bn is not None,
                                      act=self.act_name))


# --------------------------------------------------------------------------- squeeze-and-excitation
class DynamicSE(nn.Module):
    """Squeeze-and-excitation: mean pool, 1x1 reduce (+bias), ReLU, 1x1 expand (+bias), hard sigmoid."""

    def __init__(self, max_channels: int) -> None:
        super().__init__()
        self.fc = SEFc(max_channels, se_channels(max_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.size(1)
        mid = se_channels(c)
        fc = self.fc
        # the 1x1 convs of a pooled 1x1 map are matrix products: F.linear runs them 3-5x faster than
        # oneDNN's convolution (forward + backward, measured on CPU); the weights keep the conv layout
        y = x.mean((2, 3))
        y = F.relu(F.linear(y, slice_weight(fc.reduce.weight, mid, c).flatten(1), first(fc.reduce.bias, mid)))
        y = F.hardsigmoid(F.linear(y, slice_weight(fc.expand.weight, c, mid).flatten(1), first(fc.expand.bias, c)))
        return x * y[:, :, None, None]

    def copy_to(self, dst: SqueezeExcite) -> SqueezeExcite:
        c, mid = dst.fc.reduce.in_channels, dst.fc.reduce.out_channels
        with torch.no_grad():
            dst.fc.reduce.weight.copy_(slice_weight(self.fc.reduce.weight, mid, c))
            dst.fc.reduce.bias.copy_(self.fc.reduce.bias[:mid])
            dst.fc.expand.weight.copy_(slice_weight(self.fc.expand.weight, c, mid))
            dst.fc.expand.bias.copy_(self.fc.expand.bias[:c])
        return dst

    def to_static(self, channels: int) -> SqueezeExcite:
        return self.copy_to(SqueezeExcite(channels, se_channels(channels)))


# --------------------------------------------------------------------------- depth-wise convolution
class DynamicDepthConv(nn.Module):
    """Depthwise conv + BN + act (+ SE), named as in the authors' layout (``depth_conv``)."""

    def __init__(self, channels: int, max_kernel: int, stride: int, use_se: bool, act: str,
                 bn_momentum: float | None, bn_eps: float) -> None:
        super().__init__()
        self.conv = DynamicConv2d(channels, channels, max_kernel, stride, depthwise=True)
        self.bn = DynamicBatchNorm2d(channels, bn_momentum, bn_eps)
        self.se = DynamicSE(channels) if use_se else None
        self.act_name = act

    def forward(self, x: torch.Tensor, kernel_size: int) -> torch.Tensor:
        x = ACT_FN[self.act_name](self.bn(self.conv(x, x.size(1), kernel_size)))
        if self.se is not None:
            x = self.se(x)
        return x

    def copy_to(self, dst: DepthConv) -> DepthConv:
        self.conv.copy_to(dst.conv)
        self.bn.copy_to(dst.bn)
        if self.se is not None:
            self.se.copy_to(dst.se)
        return dst

    def to_static(self, channels: int, kernel: int) -> DepthConv:
        se_mid = se_channels(channels) if self.se is not None else 0
        return self.copy_to(DepthConv(channels, kernel, self.conv.stride, se_mid, self.act_name))


# --------------------------------------------------------------------------- inverted residual block
class DynamicMBConv(nn.Module):
    """Inverted residual conv: [1x1 expand + BN + act], depthwise + BN + act [+ SE], 1x1 project + BN."""

    def __init__(self, slot: SlotConfig, bn_momentum: float | None, bn_eps: float) -> None:
        super().__init__()
        bn = {"bn_momentum": bn_momentum, "bn_eps": bn_eps}
        self.inverted_bottleneck = (
            DynamicConvBnAct(slot.max_in, slot.max_mid, 1, 1, True, slot.act, **bn) if slot.has_expand else None
        )
        self.depth_conv = DynamicDepthConv(slot.max_mid, slot.max_kernel, slot.stride, slot.se, slot.act,
                                           bn_momentum, bn_eps)
        self.point_linear = DynamicConvBnAct(slot.max_mid, slot.max_out, 1, 1, True, None, **bn)
        self.stride = slot.stride

    def forward(self, x: torch.Tensor, mid: int, out: int, kernel_size: int) -> torch.Tensor:
        if self.inverted_bottleneck is not None:
            x = self.inverted_bottleneck(x, mid)
        x = self.depth_conv(x, kernel_size)
        return self.point_linear(x, out)

    def copy_to(self, dst: MBConv) -> MBConv:
        if self.inverted_bottleneck is not None:
            self.inverted_bottleneck.copy_to(dst.inverted_bottleneck)
        self.depth_conv.copy_to(dst.depth_conv)
        self.point_linear.copy_to(dst.point_linear)
        return dst

    def to_static(self, b: BlockConfig) -> MBConv:
        return self.copy_to(MBConv(b))


class DynamicShortcut(nn.Module):
    """Identity, or avg-pool(stride) then a 1x1 conv (no BN) where channels differ."""

    def __init__(self, max_in: int, max_out: int, stride: int) -> None:
        super().__init__()
        self.conv = DynamicConv2d(max_in, max_out, 1, 1)
        self.stride = stride

    def forward(self, x: torch.Tensor, out: int) -> torch.Tensor:
        if self.stride > 1:
            x = shortcut_pool(x, self.stride)
        if x.size(1) != out:
            x = self.conv(x, out)
        return x

    def copy_to(self, dst: Shortcut) -> Shortcut:
        if dst.has_conv:
            self.conv.copy_to(dst.conv)
        return dst

    def to_static(self, c_in: int, c_out: int) -> Shortcut:
        return self.copy_to(Shortcut(c_in, c_out, self.stride))


class DynamicBlock(nn.Module):
    """One residual block of the supernet (``mobile_inverted_conv`` + ``shortcut``)."""

    def __init__(self, slot: SlotConfig, bn_momentum: float | None, bn_eps: float) -> None:
        super().__init__()
        self.mobile_inverted_conv = DynamicMBConv(slot, bn_momentum, bn_eps)
        self.shortcut = DynamicShortcut(slot.max_in, slot.max_out, slot.stride)
        self.drop_connect_rate = 0.0

    def forward(self, x: torch.Tensor, mid: int, out: int, kernel_size: int) -> torch.Tensor:
        identity = x.size(1) == out and self.shortcut.stride == 1
        res = self.shortcut(x, out)
        y = self.mobile_inverted_conv(x, mid, out, kernel_size)
        if identity and self.drop_connect_rate > 0:
            y = drop_connect(y, self.drop_connect_rate, self.training)
        return y + res

    def to_static(self, b: BlockConfig) -> Block:
        return Block(self.mobile_inverted_conv.to_static(b), self.shortcut.to_static(b.c_in, b.c_out))


# --------------------------------------------------------------------------- head, classifier
class DynamicHead(nn.Module):
    """The v3 head: 1x1 conv to 6 x C + BN + act, global pool, 1x1 conv without BN + act."""

    def __init__(self, max_in: int, max_last: int, act: str, bn_momentum: float | None, bn_eps: float) -> None:
        super().__init__()
        self.final_expand_layer = DynamicConvBnAct(max_in, HEAD_EXPAND * max_in, 1, 1, True, act,
                                                   bn_momentum=bn_momentum, bn_eps=bn_eps)
        self.feature_mix_layer = DynamicConvBnAct(HEAD_EXPAND * max_in, max_last, 1, 1, False, act)
        self.act = act

    def forward(self, x: torch.Tensor, last: int) -> torch.Tensor:
        x = self.final_expand_layer(x, HEAD_EXPAND * x.size(1))
        x = F.adaptive_avg_pool2d(x, 1)
        return self.feature_mix_layer(x, last)

    def copy_to(self, dst: Head) -> Head:
        self.final_expand_layer.copy_to(dst.final_expand_layer)
        self.feature_mix_layer.copy_to(dst.feature_mix_layer)
        return dst

    def to_static(self, c_in: int, c_last: int) -> Head:
        return self.copy_to(Head(c_in, HEAD_EXPAND * c_in, c_last, self.act))


class DynamicClassifier(nn.Module):
    """The linear classifier over the first input features (named ``linear.linear`` as the authors')."""

    def __init__(self, max_in: int, num_classes: int) -> None:
        super().__init__()
        self.linear = nn.Module()
        self.linear.linear = nn.Linear(max_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = first(self.linear.linear.weight, x.size(1), 1).contiguous()
        return F.linear(x, w, self.linear.linear.bias)

    def to_static(self, c_in: int) -> nn.Linear:
        src = self.linear.linear
        out = nn.Linear(c_in, src.out_features)
        with torch.no_grad():
            out.weight.copy_(src.weight[:, :c_in])
            out.bias.copy_(src.bias)
        return out
