"""Static subnets: plain ``torch.nn`` modules (scriptable, exportable), built from the block plan.

Module names follow the authors' static model (``first_conv``, ``blocks.N.mobile_inverted_conv``
with ``inverted_bottleneck`` / ``depth_conv`` / ``point_linear``, ``blocks.N.shortcut``,
``last_conv``, ``classifier``), without their dead 1x1 convs on identity shortcuts.

A :class:`StaticSubnet` is built empty from ``(space, arch, num_classes)`` (e.g. to load exported
weights) or from the static twins of a supernet's dynamic ops (:meth:`Supernet.extract`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..space import Arch, BlockConfig, SearchSpace, net_plan
from .layers import act_module, resize_input, shortcut_pool


# --------------------------------------------------------------------------- conv + BN + act
class ConvBnAct(nn.Module):
    """Plain conv + BN (or identity) + activation (or identity)."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 1, stride: int = 1, groups: int = 1,
                 use_bn: bool = True, act: str | None = "swish") -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(c_out) if use_bn else nn.Identity()
        self.act = act_module(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


# --------------------------------------------------------------------------- squeeze-and-excitation
class SEFc(nn.Module):
    """The two 1x1 convs (with bias) of a squeeze-and-excitation, named as in the authors' layout."""

    def __init__(self, channels: int, mid: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, mid, 1, bias=True)
        self.expand = nn.Conv2d(mid, channels, 1, bias=True)


class SqueezeExcite(nn.Module):
    """Mean pool, 1x1 reduce + ReLU, 1x1 expand + hard sigmoid, multiply."""

    def __init__(self, channels: int, mid: int) -> None:
        super().__init__()
        self.fc = SEFc(channels, mid)

    @torch.jit.unused
    def _exporting(self):  # noqa: ANN202 - TorchScript cannot read the annotation here; returns a bool
        """Whether ``torch.export`` is tracing (TorchScript skips this; its graph keeps the matrix products)."""
        return torch.compiler.is_exporting()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fc = self.fc
        if not torch.jit.is_scripting() and self._exporting():
            # graphs for runtimes (torch.export: ExecuTorch, OpenVINO, .pt2) keep the 1x1 convs on the
            # kept-dim mean, which XNNPACK takes into the same delegate as the rest of the network;
            # the matrix-product form leaves mean and addmm outside it (21 delegates for A0, 1.7x slower)
            return x * F.hardsigmoid(fc.expand(F.relu(fc.reduce(x.mean((2, 3), keepdim=True)))))
        # eager: the 1x1 convs of the pooled map as matrix products, as in the supernet (faster, same values)
        y = F.relu(F.linear(x.mean((2, 3)), fc.reduce.weight.flatten(1), fc.reduce.bias))
        y = F.hardsigmoid(F.linear(y, fc.expand.weight.flatten(1), fc.expand.bias))
        return x * y[:, :, None, None]


# --------------------------------------------------------------------------- depth-wise convolution
class DepthConv(nn.Module):
    """Depthwise conv + BN + act, then the SE module when the stage has one (``se_mid > 0``)."""

    def __init__(self, channels: int, kernel: int, stride: int, se_mid: int, act: str) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel, stride, kernel // 2, groups=channels, bias=False)
        self.bn = nn.BatchNorm2d(channels)
        self.act = act_module(act)
        self.se = SqueezeExcite(channels, se_mid) if se_mid > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.se(self.act(self.bn(self.conv(x))))


# --------------------------------------------------------------------------- inverted residual block
class MBConv(nn.Module):
    """[1x1 expand + BN + act], depthwise [+ SE], 1x1 project + BN."""

    def __init__(self, b: BlockConfig) -> None:
        super().__init__()
        self.inverted_bottleneck = ConvBnAct(b.c_in, b.c_mid, 1, 1, act=b.act) if b.has_expand else nn.Identity()
        self.depth_conv = DepthConv(b.c_mid, b.kernel, b.stride, b.se_mid, b.act)
        self.point_linear = ConvBnAct(b.c_mid, b.c_out, 1, 1, act=None)

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
            x = shortcut_pool(x, self.stride)
        return self.conv(x)


class Block(nn.Module):
    """One residual block: ``mobile_inverted_conv(x) + shortcut(x)``."""

    def __init__(self, mbconv: MBConv, shortcut: Shortcut) -> None:
        super().__init__()
        self.mobile_inverted_conv = mbconv
        self.shortcut = shortcut

    @classmethod
    def from_config(cls, b: BlockConfig) -> Block:
        return cls(MBConv(b), Shortcut(b.c_in, b.c_out, b.stride))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mobile_inverted_conv(x) + self.shortcut(x)


# --------------------------------------------------------------------------- head
class Head(nn.Module):
    """The v3 head: 1x1 conv to 6 x C + BN + act, global pool, 1x1 conv without BN + act."""

    def __init__(self, c_in: int, c_exp: int, c_last: int, act: str) -> None:
        super().__init__()
        self.final_expand_layer = ConvBnAct(c_in, c_exp, 1, 1, act=act)
        self.feature_mix_layer = ConvBnAct(c_exp, c_last, 1, 1, use_bn=False, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.final_expand_layer(x)
        x = F.adaptive_avg_pool2d(x, 1)
        return self.feature_mix_layer(x)


# --------------------------------------------------------------------------- the subnet
class StaticSubnet(nn.Module):
    """A subnet as plain torch.nn modules (scriptable, exportable); input resized to its resolution.

    Without ``parts`` its modules are built fresh from the block plan; with ``parts`` (first conv,
    blocks, head, classifier: the static twins of a supernet's ops) they are used as given.
    """

    def __init__(self, space: SearchSpace, arch: Arch, num_classes: int,
                 parts: tuple[nn.Module, Sequence[nn.Module], nn.Module, nn.Linear] | None = None) -> None:
        super().__init__()
        space.validate(arch)
        self.space = space
        self.arch = arch
        self.resolution = int(arch.resolution)
        self.num_classes = num_classes
        if parts is None:
            plan = net_plan(space, arch)
            parts = (
                ConvBnAct(3, plan.first_out, 3, plan.first_stride, act=plan.act),
                [Block.from_config(b) for b in plan.blocks],
                Head(plan.head_in, plan.head_expand, plan.last, plan.act),
                nn.Linear(plan.last, num_classes),
            )
        first, blocks, head, classifier = parts
        self.first_conv = first
        self.blocks = nn.Sequential(*blocks)
        self.last_conv = head
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = resize_input(x, self.resolution)
        x = self.first_conv(x)
        x = self.blocks(x)
        x = self.last_conv(x)
        return self.classifier(torch.flatten(x, 1))
