"""The weight-sharing supernet and extraction of static subnets.

Weight sharing follows the authors: every op keeps the weights of its largest setting and an
active subnet uses the *first* channels, depthwise kernels are centre-cropped from the largest
kernel, and BN weights and statistics are sliced to the active width. Module names follow the
authors' layout, so ``Supernet.state_dict()`` has the keys of their checkpoints (without the
``module.`` prefix and the unused ``bn_tracking`` buffers).

Unlike the authors' release the supernet also runs in eval mode (BN statistics sliced to the
active widths), with batch size 1, and at any resolution of the space. Setting an arch only
updates a small per-block plan; no module is rebuilt.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .cost import HEAD_EXPAND, SE_REDUCTION, conv_out_size
from .space import Arch, SearchSpace, make_divisible

# --------------------------------------------------------------------------- activations
_ACT_FN: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "swish": F.silu,
    "relu": F.relu,
    "relu6": F.relu6,
    "h_swish": F.hardswish,
}


def _act_module(name: str) -> nn.Module:
    return {"swish": nn.SiLU, "relu": nn.ReLU, "relu6": nn.ReLU6, "h_swish": nn.Hardswish}[name]()


def block_mid_channels(c_in: int, expand: float, has_expand_conv: bool) -> int:
    """Middle width of a block: the input width when the stage has no expand conv, else
    make_divisible(round(c_in * t), 8)."""
    return make_divisible(round(c_in * expand), 8) if has_expand_conv else c_in


def resize_input(x: torch.Tensor, resolution: int) -> torch.Tensor:
    """Resize a batch to ``resolution`` (bicubic), as the authors' network does inside forward."""
    if x.size(-1) != resolution or x.size(-2) != resolution:
        x = F.interpolate(x, size=(resolution, resolution), mode="bicubic", align_corners=False)
    return x


# --------------------------------------------------------------------------- dynamic ops
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

    def forward(self, x: torch.Tensor, out_channels: int, kernel_size: int | None = None) -> torch.Tensor:
        c_in = x.size(1)
        w = self.conv.weight
        if self.depthwise:
            k = kernel_size or self.max_kernel
            start = (self.max_kernel - k) // 2
            w = w[:c_in, :, start : start + k, start : start + k]
            return F.conv2d(x, w.contiguous(), None, self.stride, k // 2, 1, c_in)
        k = self.max_kernel
        w = w[:out_channels, :c_in]
        return F.conv2d(x, w.contiguous(), None, self.stride, k // 2)


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
            bn.running_mean[:c] if running else None,
            bn.running_var[:c] if running else None,
            bn.weight[:c],
            bn.bias[:c],
            use_batch_stats,
            factor,
            bn.eps,
        )


class DynamicConvBnAct(nn.Module):
    """conv + (BN) + activation, sliced."""

    def __init__(self, max_in: int, max_out: int, kernel_size: int = 1, stride: int = 1,
                 use_bn: bool = True, act: str | None = "swish", depthwise: bool = False,
                 bn_momentum: float | None = 0.1, bn_eps: float = 1e-5) -> None:
        super().__init__()
        self.conv = DynamicConv2d(max_in, max_out, kernel_size, stride, depthwise)
        self.bn = DynamicBatchNorm2d(max_out, bn_momentum, bn_eps) if use_bn else None
        self.act_name = act

    def forward(self, x: torch.Tensor, out_channels: int, kernel_size: int | None = None) -> torch.Tensor:
        x = self.conv(x, out_channels, kernel_size)
        if self.bn is not None:
            x = self.bn(x)
        if self.act_name is not None:
            x = _ACT_FN[self.act_name](x)
        return x


class _SEFc(nn.Module):
    def __init__(self, channels: int, mid: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, mid, 1, bias=True)
        self.expand = nn.Conv2d(mid, channels, 1, bias=True)


class DynamicSE(nn.Module):
    """Squeeze-and-excitation: mean pool, 1x1 reduce (+bias), ReLU, 1x1 expand (+bias), hard sigmoid."""

    def __init__(self, max_channels: int) -> None:
        super().__init__()
        self.fc = _SEFc(max_channels, make_divisible(max_channels // SE_REDUCTION, 8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.size(1)
        mid = make_divisible(c // SE_REDUCTION, 8)
        y = x.mean((2, 3), keepdim=True)
        y = F.relu(F.conv2d(y, self.fc.reduce.weight[:mid, :c].contiguous(), self.fc.reduce.bias[:mid]))
        y = F.hardsigmoid(F.conv2d(y, self.fc.expand.weight[:c, :mid].contiguous(), self.fc.expand.bias[:c]))
        return x * y


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
        x = _ACT_FN[self.act_name](self.bn(self.conv(x, x.size(1), kernel_size)))
        if self.se is not None:
            x = self.se(x)
        return x


class DynamicMBConv(nn.Module):
    """Inverted residual conv: [1x1 expand + BN + act], depthwise + BN + act [+ SE], 1x1 project + BN."""

    def __init__(self, max_in: int, max_mid: int, max_out: int, max_kernel: int, stride: int,
                 has_expand_conv: bool, use_se: bool, act: str, bn_momentum: float | None, bn_eps: float) -> None:
        super().__init__()
        self.inverted_bottleneck = (
            DynamicConvBnAct(max_in, max_mid, 1, 1, True, act, bn_momentum=bn_momentum, bn_eps=bn_eps)
            if has_expand_conv else None
        )
        self.depth_conv = DynamicDepthConv(max_mid, max_kernel, stride, use_se, act, bn_momentum, bn_eps)
        self.point_linear = DynamicConvBnAct(max_mid, max_out, 1, 1, True, None, bn_momentum=bn_momentum,
                                             bn_eps=bn_eps)
        self.stride = stride

    def forward(self, x: torch.Tensor, mid: int, out: int, kernel_size: int) -> torch.Tensor:
        if self.inverted_bottleneck is not None:
            x = self.inverted_bottleneck(x, mid)
        x = self.depth_conv(x, kernel_size)
        return self.point_linear(x, out)


def _shortcut_pool(x: torch.Tensor, stride: int) -> torch.Tensor:
    """Avg-pool of a strided shortcut; odd sizes get padding 1 (output size = ceil(size / stride))."""
    pad = 0 if x.size(-1) % 2 == 0 else 1
    return F.avg_pool2d(x, stride, padding=pad)


class DynamicShortcut(nn.Module):
    """Identity, or avg-pool(stride) then a 1x1 conv (no BN) where channels differ."""

    def __init__(self, max_in: int, max_out: int, stride: int) -> None:
        super().__init__()
        self.conv = DynamicConv2d(max_in, max_out, 1, 1)
        self.stride = stride

    def forward(self, x: torch.Tensor, out: int) -> torch.Tensor:
        if self.stride > 1:
            x = _shortcut_pool(x, self.stride)
        if x.size(1) != out:
            x = self.conv(x, out)
        return x


def drop_connect(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """Drop whole samples of a residual branch with probability ``rate`` (scaled by 1 / keep)."""
    if not training or rate <= 0.0:
        return x
    keep = 1.0 - rate
    mask = torch.floor(keep + torch.rand((x.size(0), 1, 1, 1), dtype=x.dtype, device=x.device))
    return x / keep * mask


class DynamicBlock(nn.Module):
    """One residual block of the supernet (``mobile_inverted_conv`` + ``shortcut``)."""

    def __init__(self, mbconv: DynamicMBConv, shortcut: DynamicShortcut) -> None:
        super().__init__()
        self.mobile_inverted_conv = mbconv
        self.shortcut = shortcut
        self.drop_connect_rate = 0.0

    def forward(self, x: torch.Tensor, mid: int, out: int, kernel_size: int) -> torch.Tensor:
        identity = x.size(1) == out and self.shortcut.stride == 1
        res = self.shortcut(x, out)
        y = self.mobile_inverted_conv(x, mid, out, kernel_size)
        if identity and self.drop_connect_rate > 0:
            y = drop_connect(y, self.drop_connect_rate, self.training)
        return y + res


class _Head(nn.Module):
    """The v3 head: 1x1 conv to 6 x C + BN + act, global pool, 1x1 conv without BN + act."""

    def __init__(self, max_in: int, max_last: int, act: str, bn_momentum: float | None, bn_eps: float) -> None:
        super().__init__()
        self.final_expand_layer = DynamicConvBnAct(max_in, HEAD_EXPAND * max_in, 1, 1, True, act,
                                                   bn_momentum=bn_momentum, bn_eps=bn_eps)
        self.feature_mix_layer = DynamicConvBnAct(HEAD_EXPAND * max_in, max_last, 1, 1, False, act)


class _Classifier(nn.Module):
    def __init__(self, max_in: int, num_classes: int) -> None:
        super().__init__()
        self.linear = nn.Module()
        self.linear.linear = nn.Linear(max_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.linear.linear.weight[:, : x.size(1)].contiguous()
        return F.linear(x, w, self.linear.linear.bias)


@dataclass(frozen=True)
class _BlockPlan:
    index: int
    mid: int
    out: int
    kernel: int


# --------------------------------------------------------------------------- supernet
class Supernet(nn.Module):
    """Weight-sharing supernet of a :class:`SearchSpace`.

    ``set_arch`` picks the active subnet; ``forward`` runs it (input resized to its resolution).
    ``extract`` returns the active subnet as a :class:`StaticSubnet` of plain modules.
    """

    def __init__(self, space: SearchSpace, num_classes: int = 1000, bn_momentum: float | None = 0.1,
                 bn_eps: float = 1e-5, zero_init_residual: bool = True) -> None:
        super().__init__()
        self.space = space
        self.num_classes = num_classes
        self.dropout = 0.0
        bn = {"bn_momentum": bn_momentum, "bn_eps": bn_eps}
        max_first = max(space.first_conv)
        self.first_conv = DynamicConvBnAct(3, max_first, 3, space.first_stride, True, space.act, **bn)
        blocks: list[DynamicBlock] = []
        self.stage_blocks: list[list[int]] = []
        in_widths: tuple[int, ...] = tuple(space.first_conv)
        for stage in space.stages:
            ids = []
            for j in range(stage.max_depth):
                stride = stage.stride if j == 0 else 1
                max_in, max_out = max(in_widths), max(stage.widths)
                max_mid = max(
                    round(max_in * max(stage.expands)) if stage.has_expand_conv else max_in,
                    max(block_mid_channels(c, t, stage.has_expand_conv) for c in in_widths for t in stage.expands),
                )
                mb = DynamicMBConv(max_in, max_mid, max_out, max(stage.kernels), stride, stage.has_expand_conv,
                                   stage.se, stage.act, bn_momentum, bn_eps)
                ids.append(len(blocks))
                blocks.append(DynamicBlock(mb, DynamicShortcut(max_in, max_out, stride)))
                in_widths = stage.widths
            self.stage_blocks.append(ids)
        self.blocks = nn.ModuleList(blocks)
        self.last_conv = _Head(max(in_widths), max(space.last_conv), space.act, bn_momentum, bn_eps)
        self.classifier = _Classifier(max(space.last_conv), num_classes)
        self._init_weights(zero_init_residual)
        self._plan: list[_BlockPlan] = []
        self._arch: Arch = space.max_arch()
        self.set_arch(self._arch)

    def _init_weights(self, zero_init_residual: bool) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for block in self.blocks:
                nn.init.zeros_(block.mobile_inverted_conv.point_linear.bn.bn.weight)

    # ----------------------------------------------------------------- arch
    @property
    def arch(self) -> Arch:
        return self._arch

    def set_arch(self, arch: Arch) -> None:
        """Activate ``arch`` (validated against the space). Cheap: only a plan is recomputed."""
        self.space.validate(arch)
        plan = []
        c_in = arch.width[0]
        for s, stage in enumerate(self.space.stages):
            out, k, t = arch.width[s + 1], arch.kernel_size[s], arch.expand_ratio[s]
            for j in range(arch.depth[s]):
                plan.append(_BlockPlan(self.stage_blocks[s][j], block_mid_channels(c_in, t, stage.has_expand_conv),
                                       out, k))
                c_in = out
        self._plan = plan
        self._arch = arch

    def set_regularization(self, dropout: float = 0.0, drop_connect: float = 0.0,
                           only_last_two_stages: bool = True) -> None:
        """Dropout before the classifier and drop-connect on identity blocks (train mode only).

        Drop-connect of block i is ``drop_connect * i / num_blocks``, on the last two stages only
        by default, as in the recipe.
        """
        self.dropout = float(dropout)
        eligible = set(range(len(self.blocks)))
        if only_last_two_stages:
            eligible = set(self.stage_blocks[-1]) | set(self.stage_blocks[-2])
        n = len(self.blocks)
        for i, block in enumerate(self.blocks):
            block.drop_connect_rate = drop_connect * float(i) / n if i in eligible else 0.0

    # ----------------------------------------------------------------- forward
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        arch = self._arch
        x = resize_input(x, arch.resolution)
        x = self.first_conv(x, arch.width[0])
        for p in self._plan:
            x = self.blocks[p.index](x, p.mid, p.out, p.kernel)
        head = self.last_conv
        x = head.final_expand_layer(x, HEAD_EXPAND * x.size(1))
        x = F.adaptive_avg_pool2d(x, 1)
        x = head.feature_mix_layer(x, arch.width[-1])
        return torch.flatten(x, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.forward_features(x)
        if self.dropout > 0 and self.training:
            x = F.dropout(x, p=self.dropout, training=True)
        return self.classifier(x)

    # ----------------------------------------------------------------- extraction
    @torch.no_grad()
    def extract(self, arch: Arch | None = None) -> StaticSubnet:
        """The subnet ``arch`` (default: the active one) as plain modules with copied weights and
        BN statistics, on the supernet's device and dtype."""
        if arch is not None:
            self.set_arch(arch)
        return StaticSubnet.from_supernet(self)


# --------------------------------------------------------------------------- static subnet
def _copy_bn(dst: nn.BatchNorm2d, src: nn.BatchNorm2d) -> None:
    c = dst.num_features
    dst.weight.copy_(src.weight[:c])
    dst.bias.copy_(src.bias[:c])
    dst.running_mean.copy_(src.running_mean[:c])
    dst.running_var.copy_(src.running_var[:c])
    dst.num_batches_tracked.copy_(src.num_batches_tracked)
    dst.eps, dst.momentum = src.eps, src.momentum


class ConvBnAct(nn.Module):
    """Plain conv + BN (or identity) + activation (or identity)."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 1, stride: int = 1, groups: int = 1,
                 use_bn: bool = True, act: str | None = "swish") -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(c_out) if use_bn else nn.Identity()
        self.act = _act_module(act) if act is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, mid: int) -> None:
        super().__init__()
        self.fc = _SEFc(channels, mid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.mean((2, 3), keepdim=True)
        y = F.hardsigmoid(self.fc.expand(F.relu(self.fc.reduce(y))))
        return x * y


class DepthConv(nn.Module):
    def __init__(self, channels: int, kernel: int, stride: int, se_mid: int, act: str) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel, stride, kernel // 2, groups=channels, bias=False)
        self.bn = nn.BatchNorm2d(channels)
        self.act = _act_module(act)
        self.se = SqueezeExcite(channels, se_mid) if se_mid > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.se(self.act(self.bn(self.conv(x))))


class MBConv(nn.Module):
    def __init__(self, c_in: int, mid: int, c_out: int, kernel: int, stride: int, has_expand: bool,
                 se: bool, act: str) -> None:
        super().__init__()
        self.inverted_bottleneck = ConvBnAct(c_in, mid, 1, 1, act=act) if has_expand else nn.Identity()
        se_mid = make_divisible(mid // SE_REDUCTION, 8) if se else 0
        self.depth_conv = DepthConv(mid, kernel, stride, se_mid, act)
        self.point_linear = ConvBnAct(mid, c_out, 1, 1, act=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.point_linear(self.depth_conv(self.inverted_bottleneck(x)))


class Shortcut(nn.Module):
    """Identity, avg-pool, 1x1 conv, or avg-pool then 1x1 conv."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.has_conv = c_in != c_out
        self.conv = nn.Conv2d(c_in, c_out, 1, bias=False) if self.has_conv else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            pad = 0 if x.size(-1) % 2 == 0 else 1
            x = F.avg_pool2d(x, self.stride, padding=pad)
        return self.conv(x)


class Block(nn.Module):
    def __init__(self, mbconv: MBConv, shortcut: Shortcut) -> None:
        super().__init__()
        self.mobile_inverted_conv = mbconv
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mobile_inverted_conv(x) + self.shortcut(x)


class Head(nn.Module):
    def __init__(self, c_in: int, c_last: int, act: str) -> None:
        super().__init__()
        self.final_expand_layer = ConvBnAct(c_in, HEAD_EXPAND * c_in, 1, 1, act=act)
        self.feature_mix_layer = ConvBnAct(HEAD_EXPAND * c_in, c_last, 1, 1, use_bn=False, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.final_expand_layer(x)
        x = F.adaptive_avg_pool2d(x, 1)
        return self.feature_mix_layer(x)


class StaticSubnet(nn.Module):
    """A subnet as plain torch.nn modules (scriptable, exportable); input resized to its resolution."""

    def __init__(self, space: SearchSpace, arch: Arch, num_classes: int) -> None:
        super().__init__()
        space.validate(arch)
        self.space = space
        self.arch = arch
        self.resolution = int(arch.resolution)
        self.num_classes = num_classes
        self.first_conv = ConvBnAct(3, arch.width[0], 3, space.first_stride, act=space.act)
        blocks = []
        c_in = arch.width[0]
        for s, stage in enumerate(space.stages):
            out, k, t = arch.width[s + 1], arch.kernel_size[s], arch.expand_ratio[s]
            for j in range(arch.depth[s]):
                stride = stage.stride if j == 0 else 1
                mid = block_mid_channels(c_in, t, stage.has_expand_conv)
                blocks.append(Block(MBConv(c_in, mid, out, k, stride, stage.has_expand_conv, stage.se, stage.act),
                                    Shortcut(c_in, out, stride)))
                c_in = out
        self.blocks = nn.Sequential(*blocks)
        self.last_conv = Head(c_in, arch.width[-1], space.act)
        self.classifier = nn.Linear(arch.width[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.size(-1) != self.resolution or x.size(-2) != self.resolution:
            x = F.interpolate(x, size=(self.resolution, self.resolution), mode="bicubic", align_corners=False)
        x = self.first_conv(x)
        x = self.blocks(x)
        x = self.last_conv(x)
        return self.classifier(torch.flatten(x, 1))

    @classmethod
    @torch.no_grad()
    def from_supernet(cls, net: Supernet) -> StaticSubnet:
        """Copy the active subnet of ``net`` (weights and BN statistics)."""
        p0 = next(net.parameters())
        sub = cls(net.space, net.arch, net.num_classes).to(device=p0.device, dtype=p0.dtype)
        _copy_conv_bn(sub.first_conv, net.first_conv)
        for static_block, plan in zip(sub.blocks, net._plan, strict=False):
            dyn = net.blocks[plan.index]
            smb, dmb = static_block.mobile_inverted_conv, dyn.mobile_inverted_conv
            if dmb.inverted_bottleneck is not None:
                _copy_conv_bn(smb.inverted_bottleneck, dmb.inverted_bottleneck)
            sdc, ddc = smb.depth_conv, dmb.depth_conv
            k = sdc.conv.kernel_size[0]
            start = (ddc.conv.max_kernel - k) // 2
            sdc.conv.weight.copy_(ddc.conv.conv.weight[: sdc.conv.out_channels, :, start : start + k, start : start + k])
            _copy_bn(sdc.bn, ddc.bn.bn)
            if isinstance(sdc.se, SqueezeExcite):
                c, mid = sdc.se.fc.reduce.in_channels, sdc.se.fc.reduce.out_channels
                sdc.se.fc.reduce.weight.copy_(ddc.se.fc.reduce.weight[:mid, :c])
                sdc.se.fc.reduce.bias.copy_(ddc.se.fc.reduce.bias[:mid])
                sdc.se.fc.expand.weight.copy_(ddc.se.fc.expand.weight[:c, :mid])
                sdc.se.fc.expand.bias.copy_(ddc.se.fc.expand.bias[:c])
            _copy_conv_bn(smb.point_linear, dmb.point_linear)
            if static_block.shortcut.has_conv:
                w = static_block.shortcut.conv.weight
                w.copy_(dyn.shortcut.conv.conv.weight[: w.size(0), : w.size(1)])
        _copy_conv_bn(sub.last_conv.final_expand_layer, net.last_conv.final_expand_layer)
        _copy_conv_bn(sub.last_conv.feature_mix_layer, net.last_conv.feature_mix_layer)
        sub.classifier.weight.copy_(net.classifier.linear.linear.weight[:, : sub.classifier.in_features])
        sub.classifier.bias.copy_(net.classifier.linear.linear.bias)
        sub.train(net.training)
        return sub


def _copy_conv_bn(dst: ConvBnAct, src: DynamicConvBnAct) -> None:
    w = dst.conv.weight
    dst.conv.weight.copy_(src.conv.conv.weight[: w.size(0), : w.size(1)])
    if isinstance(dst.bn, nn.BatchNorm2d) and src.bn is not None:
        _copy_bn(dst.bn, src.bn.bn)


def output_size(space: SearchSpace, resolution: int) -> int:
    """Spatial size of the last feature map at ``resolution``."""
    size = conv_out_size(resolution, space.first_stride)
    for stage in space.stages:
        size = conv_out_size(size, stage.stride)
    return size


__all__ = ["Supernet", "StaticSubnet", "resize_input", "block_mid_channels", "output_size"]
