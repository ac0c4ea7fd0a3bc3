"""The weight-sharing supernet of a search space, and extraction of static subnets.

Module names follow the authors' layout, so ``Supernet.state_dict()`` has the keys of their
checkpoints (without the ``module.`` prefix and the unused ``bn_tracking`` buffers). Unlike the
authors' release the supernet also runs in eval mode (BN statistics sliced to the active widths),
with batch size 1, and at any resolution of the space. Setting an arch only looks up its block plan
(:func:`attentivenas.space.net_plan`); no module is rebuilt.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..space import Arch, NetPlan, SearchSpace, net_plan, supernet_slots
from .dynamic import DynamicBlock, DynamicClassifier, DynamicConvBnAct, DynamicHead
from .layers import resize_input
from .static import StaticSubnet


class Supernet(nn.Module):
    """Weight-sharing supernet of a :class:`SearchSpace`.

    ``set_arch`` picks the active subnet; ``forward`` runs it (input resized to its resolution).
    ``extract`` returns the active subnet as a :class:`StaticSubnet` of plain modules.
    Weights: ``init`` ``pytorch`` (each layer's PyTorch default) or ``kaiming_fan_out``, then, with
    ``zero_init_residual``, the last BN weight of every block zeroed. ``init="pytorch",
    zero_init_residual=True`` is the authors' constructor (training's ``model.*`` defaults); the class
    default leaves every block contributing to the output (a fresh supernet for tests and latency).
    """

    def __init__(self, space: SearchSpace, num_classes: int = 1000, bn_momentum: float | None = 0.1,
                 bn_eps: float = 1e-5, init: str = "pytorch", zero_init_residual: bool = False) -> None:
        super().__init__()
        self.space = space
        self.num_classes = num_classes
        self.dropout = 0.0
        self.first_conv = DynamicConvBnAct(3, max(space.first_conv), 3, space.first_stride, True, space.act,
                                           bn_momentum=bn_momentum, bn_eps=bn_eps)
        slots = supernet_slots(space)
        self.blocks = nn.ModuleList(DynamicBlock(slot, bn_momentum, bn_eps) for slot in slots)
        self.stage_blocks: list[list[int]] = [[sl.slot for sl in slots if sl.stage == s]
                                              for s in range(space.num_stages)]
        self.last_conv = DynamicHead(max(space.stages[-1].widths), max(space.last_conv), space.act, bn_momentum,
                                     bn_eps)
        self.classifier = DynamicClassifier(max(space.last_conv), num_classes)
        if init == "kaiming_fan_out":
            self._init_weights()
        elif init != "pytorch":
            raise ValueError(f"init must be 'pytorch' or 'kaiming_fan_out', got {init!r}")
        if zero_init_residual:
            self.zero_residual_bn_weights()
        self._arch: Arch = space.max_arch()
        self._plan: NetPlan = net_plan(space, self._arch)

    def _init_weights(self) -> None:
        """``init="kaiming_fan_out"``: He-normal fan-out convs, N(0, 0.01) classifier, unit BN
        (torchvision's MobileNetV3). ``init="pytorch"`` (the authors') keeps each layer's own default."""
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

    @torch.no_grad()
    def zero_residual_bn_weights(self) -> None:
        """Zero the weight (gamma) of the last BN of every block, so each block starts as its
        shortcut: the one init step of the authors' supernet constructor. Every block of ours has a
        shortcut, as every block of theirs does, so all of them count (37 in the attentivenas space)."""
        for block in self.blocks:
            nn.init.zeros_(block.mobile_inverted_conv.point_linear.bn.bn.weight)

    # ----------------------------------------------------------------- arch
    @property
    def arch(self) -> Arch:
        return self._arch

    @property
    def plan(self) -> NetPlan:
        """The block plan of the active arch."""
        return self._plan

    def set_arch(self, arch: Arch) -> None:
        """Activate ``arch`` (validated against the space). Cheap: only its plan is looked up."""
        self.space.validate(arch)
        self._plan = net_plan(self.space, arch)
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
        plan = self._plan
        x = resize_input(x, plan.resolution)
        x = self.first_conv(x, plan.first_out)
        for b in plan.blocks:
            x = self.blocks[b.slot](x, b.c_mid, b.c_out, b.kernel)
        x = self.last_conv(x, plan.last)
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
        BN statistics, on the supernet's device and dtype: the composition of every op's static twin."""
        if arch is not None:
            self.set_arch(arch)
        plan = self._plan
        parts = (
            self.first_conv.to_static(3, plan.first_out),
            [self.blocks[b.slot].to_static(b) for b in plan.blocks],
            self.last_conv.to_static(plan.head_in, plan.last),
            self.classifier.to_static(plan.last),
        )
        p0 = next(self.parameters())
        sub = StaticSubnet(self.space, self._arch, self.num_classes, parts).to(device=p0.device, dtype=p0.dtype)
        sub.train(self.training)
        return sub
