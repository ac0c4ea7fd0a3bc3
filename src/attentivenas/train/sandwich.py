"""The sandwich step: max subnet, attentive middle subnets, min subnet; one optimiser step.

1. max subnet, label-smoothed CE, dropout and drop-connect (the recipe's regularisation);
2. ``num_middle`` subnets from the sampler (BestUp/WorstUp-k among candidates scored on this
   batch, or uniform), distilled from the max subnet's detached logits;
3. the min subnet, distilled likewise (during ``loss.distill_warmup_epochs`` the middle and min
   subnets learn from the labels instead: ``labels_only``);
4. gradients of all of them accumulate (one backward per subnet), are all-reduced once across
   ranks, clipped by value, and one optimiser step is taken.

Each distinct input resolution is resized once per step and shared by the subnets using it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn as nn

from ..config import TrainConfig
from ..devices import use_channels_last
from ..nn import Supernet, resize_input
from ..space import Arch
from .distributed import all_reduce_grads, all_reduce_mean
from .losses import DistillLoss, build_distill_loss, label_smoothing_ce
from .sampling import CandidateGroups, Chosen, Estimator


def resolve_amp(setting: str, device: torch.device) -> str:
    """``runtime.amp``: ``auto`` means bf16 on a CUDA device that supports it, none elsewhere."""
    if setting != "auto":
        return setting
    return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "none"


class MiddleSampler(Protocol):
    """What the step needs from :class:`attentivenas.train.sampling.ArchSampler`."""

    def propose(self, n: int | None = None) -> CandidateGroups: ...

    def choose(self, groups: CandidateGroups, scores: Any = None) -> Chosen: ...

    def mflops(self, genes: np.ndarray) -> list[float]: ...


#: Scores candidate groups ``[n, k]``; higher is better. Gets the step's context (inputs, teacher logits).
Scorer = Callable[[CandidateGroups, "StepContext"], np.ndarray]


@dataclass
class StepContext:
    """Per-step inputs: the batch, its resizes per resolution, labels and the teacher logits."""

    net: Supernet
    images: torch.Tensor
    labels: torch.Tensor
    autocast: Callable[[], Any]
    channels_last: bool = False
    teacher: torch.Tensor | None = None
    label_smoothing: float = 0.0  # of the candidates' mini-batch loss (the authors score with the training loss)
    score_images: int | None = None  # candidates scored on the first N images of the batch (None: all)
    _resized: dict[int, torch.Tensor] = field(default_factory=dict)

    def inputs(self, resolution: int) -> torch.Tensor:
        """The batch at ``resolution`` (bicubic, as the network would), computed once per step."""
        if resolution not in self._resized:
            x = resize_input(self.images, resolution)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            self._resized[resolution] = x
        return self._resized[resolution]

    def logits(self, arch: Arch, first: int | None = None) -> torch.Tensor:
        """The active net's logits for ``arch`` on the batch (or its first ``first`` images)."""
        self.net.set_arch(arch)
        x = self.inputs(arch.resolution)
        with self.autocast():
            return self.net(x if first is None else x[:first])


def loss_scorer(groups: CandidateGroups, ctx: StepContext) -> np.ndarray:
    """Mini-batch loss of every candidate (no gradients): cross-entropy with the context's label
    smoothing, as the authors score candidates with their training criterion; averaged across ranks
    so every rank makes the same choice; returned as scores (higher is better = ``-loss``)."""
    flat = groups.flat()
    space = ctx.net.space
    losses = torch.empty(len(flat), dtype=torch.float64, device=ctx.labels.device)
    labels = ctx.labels if ctx.score_images is None else ctx.labels[: ctx.score_images]
    with torch.no_grad():
        for i, genes in enumerate(flat):
            logits = ctx.logits(space.decode(genes), ctx.score_images).float()
            losses[i] = label_smoothing_ce(logits, labels, ctx.label_smoothing).double()
    all_reduce_mean(losses)
    return (-losses).cpu().numpy().reshape(len(groups), groups.k)


def estimator_scorer(estimator: Estimator) -> Scorer:
    """A scorer that ignores the batch (e.g. an accuracy predictor: same result on every rank); all
    candidates of the step are scored in one call."""

    def scorer(groups: CandidateGroups, ctx: StepContext) -> np.ndarray:
        return np.asarray(estimator.score(groups.flat()), dtype=np.float64).reshape(len(groups), groups.k)

    return scorer


@dataclass
class StepResult:
    """What one step did: per-subnet losses (averaged over ranks), the trained archs and their
    MFLOPs, whether the optimiser stepped (all losses finite)."""

    losses: list[float]
    archs: list[Arch]
    finite: bool
    mflops: list[float] = field(default_factory=list)
    scored_mflops: float = 0.0  # sum over the candidates scored by a forward pass (mini-batch loss)

    @property
    def loss(self) -> float:
        return float(sum(self.losses))

    def gflop(self, batch: int) -> float:
        """The step's work from the cost model: a multiply-add is 2 FLOPs, a trained subnet costs
        3x its forward (forward + backward), a scored candidate its forward."""
        return 2.0 * batch * (3.0 * sum(self.mflops) + self.scored_mflops) / 1e3


@dataclass
class SandwichStep:
    """One training step of the sandwich rule with in-place distillation (see module doc)."""

    net: Supernet
    optimizer: torch.optim.Optimizer
    sampler: MiddleSampler
    distill: DistillLoss
    num_middle: int = 2
    label_smoothing: float = 0.1
    dropout: float = 0.2
    drop_connect: float = 0.2
    drop_connect_only_last_two_stages: bool = True
    grad_clip_value: float | None = 1.0
    scorer: Scorer | None = loss_scorer  # None: take each group's first candidate (uniform)
    scaler: torch.amp.GradScaler | None = None
    amp_dtype: torch.dtype | None = None
    channels_last: bool = False
    score_fraction: float = 1.0  # candidates scored on this fraction of the batch (the recipe: all of it)
    labels_only: bool = False  # the middle and min subnets learn from the labels (distillation warm-up)
    params: list[nn.Parameter] = field(default_factory=list)

    @classmethod
    def from_config(cls, cfg: TrainConfig, net: Supernet, optimizer: torch.optim.Optimizer, sampler: MiddleSampler,
                    scorer: Scorer | None, scaler: torch.amp.GradScaler | None = None,
                    channels_last: bool | None = None) -> SandwichStep:
        """The step of a training config (losses, regularisation, clipping, AMP, memory format;
        ``channels_last`` None: resolved from ``runtime.channels_last`` for the net's device)."""
        if channels_last is None:
            channels_last = use_channels_last(cfg.runtime.channels_last, next(net.parameters()).device)
        device = next(net.parameters()).device
        amp_dtype = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[resolve_amp(cfg.runtime.amp, device)]
        return cls(net, optimizer, sampler, build_distill_loss(cfg.loss), num_middle=cfg.sampler.num_middle,
                   label_smoothing=cfg.loss.label_smoothing, dropout=cfg.model.dropout,
                   drop_connect=cfg.model.drop_connect,
                   drop_connect_only_last_two_stages=cfg.model.drop_connect_only_last_two_stages,
                   grad_clip_value=cfg.optim.grad_clip_value, scorer=scorer, scaler=scaler, amp_dtype=amp_dtype,
                   channels_last=channels_last, score_fraction=cfg.sampler.score_fraction)

    def __post_init__(self) -> None:
        if not self.params:
            self.params = [p for p in self.net.parameters() if p.requires_grad]
        space = self.net.space
        self._edge_mflops = self.sampler.mflops(space.encode_many([space.max_arch(), space.min_arch()]))

    def _autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.params[0].device.type, dtype=self.amp_dtype)

    def _backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> StepResult:
        net, space = self.net, self.net.space
        net.train()
        self.optimizer.zero_grad(set_to_none=True)
        score_images = None if self.score_fraction >= 1.0 else max(1, math.ceil(self.score_fraction * len(labels)))
        ctx = StepContext(net, images, labels, self._autocast, self.channels_last,
                          label_smoothing=self.label_smoothing, score_images=score_images)
        max_arch = space.max_arch()
        losses = [self._max_subnet_step(ctx, max_arch, labels)]  # 1. the max subnet learns from the labels
        middle, middle_mflops, scored_mflops = self._middle_subnets(ctx, labels, score_images)  # 2. chosen
        archs = [max_arch, *middle, space.min_arch()]
        for arch in archs[1:]:  # 3. middle and min subnets learn from the max subnet's logits
            if self.labels_only:
                loss = label_smoothing_ce(ctx.logits(arch), labels, self.label_smoothing)
            else:
                loss = self.distill(ctx.logits(arch), ctx.teacher)
            self._backward(loss)
            losses.append(loss.detach())
            del loss
        values, finite = self._reduce_and_step(losses)  # 4. one reduction, one of the gradients, one step
        mflops = [self._edge_mflops[0], *middle_mflops, self._edge_mflops[1]]
        return StepResult(values, archs, finite, mflops, scored_mflops)

    def _max_subnet_step(self, ctx: StepContext, max_arch: Arch, labels: torch.Tensor) -> torch.Tensor:
        """The max subnet's forward (regularised) and backward on the labels; its logits become the
        teacher of ``ctx``. Returns its (detached) loss."""
        net = self.net
        net.set_regularization(self.dropout, self.drop_connect, self.drop_connect_only_last_two_stages)
        try:
            logits = ctx.logits(max_arch)
        finally:
            net.set_regularization(0.0, 0.0, self.drop_connect_only_last_two_stages)
        loss = label_smoothing_ce(logits, labels, self.label_smoothing)
        self._backward(loss)
        ctx.teacher = logits.detach()
        return loss.detach()

    def _middle_subnets(self, ctx: StepContext, labels: torch.Tensor,
                        score_images: int | None) -> tuple[list[Arch], list[float], float]:
        """Middle subnets: candidates proposed, scored, chosen (identically on every rank). Returns the
        archs, their MFLOPs and the MFLOPs of the candidates scored by a forward pass."""
        if self.num_middle <= 0:
            return [], [], 0.0
        scored_mflops = 0.0
        groups = self.sampler.propose(self.num_middle)
        scores = self.scorer(groups, ctx) if self.scorer is not None and groups.k > 1 else None
        if scores is not None and self.scorer is loss_scorer:
            share = 1.0 if score_images is None else score_images / len(labels)
            scored_mflops = share * float(sum(self.sampler.mflops(groups.flat())))
        chosen = self.sampler.choose(groups, scores)
        return chosen.archs, chosen.mflops, scored_mflops

    def _reduce_and_step(self, losses: list[torch.Tensor]) -> tuple[list[float], bool]:
        """One reduction of the losses over ranks; when every one is finite, one of the gradients and
        one optimiser step (unscaled, clipped). Returns the reduced losses and whether it stepped."""
        values = all_reduce_mean(torch.stack([v.float() for v in losses])).tolist()
        finite = all(math.isfinite(v) for v in values)
        if finite:
            all_reduce_grads(self.params)
            if self.scaler is not None:
                self.scaler.unscale_(self.optimizer)
            if self.grad_clip_value is not None:
                torch.nn.utils.clip_grad_value_(self.params, self.grad_clip_value)
            if self.scaler is not None:
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return values, finite
