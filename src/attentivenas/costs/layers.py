"""Per-layer specs of one subnet and its analytic FLOPs and parameters.

FLOPs follow the authors' convention (multiply-accumulates of conv and linear layers only):
first conv, every expand / depthwise / project conv at its output size, SE as
``2 * C_mid * se_mid`` at 1x1, the shortcut 1x1 conv where channels differ, the head's two convs
(feature mix at 1x1) and the classifier. BN, activations, pooling, the SE multiply, residual adds,
biases and the input resize are not counted.

Parameters are those of the static subnet: shortcut convs of identity shortcuts, which never run,
are not counted (the authors' static model keeps them as dead weights).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..space import Arch, BlockConfig, SearchSpace, net_plan


@dataclass(frozen=True)
class LayerSpec:
    """One conv or linear layer of a static subnet.

    ``kind`` is one of ``first_conv``, ``expand``, ``depthwise``, ``se_reduce``, ``se_expand``,
    ``project``, ``shortcut``, ``final_expand``, ``feature_mix``, ``classifier``.
    """

    name: str
    kind: str
    c_in: int
    c_out: int
    kernel: int
    stride: int
    size_in: int
    size_out: int
    groups: int = 1
    bias: bool = False
    bn: bool = True

    @property
    def macs(self) -> int:
        return self.c_in // self.groups * self.c_out * self.kernel**2 * self.size_out**2

    @property
    def params(self) -> int:
        n = self.c_in // self.groups * self.c_out * self.kernel**2
        if self.bias:
            n += self.c_out
        if self.bn:
            n += 2 * self.c_out
        return n


def block_layers(b: BlockConfig) -> list[LayerSpec]:
    """The conv layers of one MBConv block, in execution order (the shortcut last)."""
    p = f"stage{b.stage + 1}.block{b.index}"
    size, size_out, mid = b.size_in, b.size_out, b.c_mid
    layers = []
    if b.has_expand:
        layers.append(LayerSpec(f"{p}.expand", "expand", b.c_in, mid, 1, 1, size, size))
    layers.append(LayerSpec(f"{p}.depthwise", "depthwise", mid, mid, b.kernel, b.stride, size, size_out, groups=mid))
    if b.se:
        layers.append(LayerSpec(f"{p}.se_reduce", "se_reduce", mid, b.se_mid, 1, 1, 1, 1, bias=True, bn=False))
        layers.append(LayerSpec(f"{p}.se_expand", "se_expand", b.se_mid, mid, 1, 1, 1, 1, bias=True, bn=False))
    layers.append(LayerSpec(f"{p}.project", "project", mid, b.c_out, 1, 1, size_out, size_out))
    if b.c_in != b.c_out:
        layers.append(LayerSpec(f"{p}.shortcut", "shortcut", b.c_in, b.c_out, 1, 1, size_out, size_out, bn=False))
    return layers


def layer_specs(space: SearchSpace, arch: Arch, num_classes: int = 1000) -> list[LayerSpec]:
    """Every conv/linear layer that runs in the subnet ``arch``, in execution order."""
    plan = net_plan(space, arch)
    layers = [LayerSpec("first_conv", "first_conv", 3, plan.first_out, 3, plan.first_stride, plan.resolution,
                        plan.first_size)]
    for b in plan.blocks:
        layers += block_layers(b)
    layers += [
        LayerSpec("head.final_expand", "final_expand", plan.head_in, plan.head_expand, 1, 1, plan.head_size,
                  plan.head_size),
        LayerSpec("head.feature_mix", "feature_mix", plan.head_expand, plan.last, 1, 1, 1, 1, bn=False),
        LayerSpec("classifier", "classifier", plan.last, num_classes, 1, 1, 1, 1, bias=True, bn=False),
    ]
    return layers


def count_flops(space: SearchSpace, arch: Arch, num_classes: int = 1000) -> float:
    """MFLOPs (million multiply-accumulates) of ``arch`` under the authors' convention."""
    return sum(layer.macs for layer in layer_specs(space, arch, num_classes)) / 1e6


def count_params(space: SearchSpace, arch: Arch, num_classes: int = 1000) -> int:
    """Parameters of the static subnet (BN affine included, dead shortcut convs excluded)."""
    return sum(layer.params for layer in layer_specs(space, arch, num_classes))
