"""SGD with Nesterov momentum (no weight decay on BN and biases) and the per-iteration
warm-up + cosine learning-rate schedule."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
from torch.optim.lr_scheduler import LambdaLR

from ..config import OptimConfig


def param_groups(model: nn.Module, weight_decay: float, no_decay_bn_bias: bool = True) -> list[dict]:
    """Two groups: conv/linear weights with ``weight_decay``; BN weights and all biases (every
    parameter with fewer than 2 dims) without, when ``no_decay_bn_bias``."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if no_decay_bn_bias and p.ndim <= 1 else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def scaled_lr(cfg: OptimConfig, total_batch: int) -> float:
    """The peak learning rate: ``lr * total_batch / lr_reference_batch`` (0.1 x 2048 / 256 = 0.8)."""
    return cfg.lr * total_batch / cfg.lr_reference_batch


def build_optimizer(model: nn.Module, cfg: OptimConfig, total_batch: int) -> torch.optim.SGD:
    """SGD (Nesterov when ``cfg.nesterov``) at the batch-scaled learning rate, with PyTorch's fused
    kernel (4-5x faster on CPU than the per-parameter loop: 70 vs 320 ms per step for the
    attentivenas supernet's 24M parameters, one thread).

    The fused kernel needs every parameter's momentum buffer to exist or none: a supernet's
    parameters that only some subnets use get their first gradient late. So every buffer starts as
    zeros (:func:`fill_momentum_buffers`), which with no dampening is the same update as PyTorch's
    first-step copy of the gradient."""
    optimizer = torch.optim.SGD(
        param_groups(model, cfg.weight_decay, cfg.no_decay_bn_bias),
        lr=scaled_lr(cfg, total_batch),
        momentum=cfg.momentum,
        nesterov=cfg.nesterov and cfg.momentum > 0,
        fused=True,
    )
    fill_momentum_buffers(optimizer)
    return optimizer


def fill_momentum_buffers(optimizer: torch.optim.Optimizer) -> None:
    """Give every parameter of a momentum group a (zero) momentum buffer where it has none, e.g. in
    a state restored from a checkpoint written before the fused optimiser."""
    for group in optimizer.param_groups:
        if group.get("momentum", 0) == 0 or group.get("dampening", 0) != 0:
            continue
        for p in group["params"]:
            state = optimizer.state[p]
            if state.get("momentum_buffer") is None:
                state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)


def warmup_cosine_factor(step: int, warmup_steps: int, total_steps: int, start_factor: float = 0.0,
                         min_factor: float = 0.0) -> float:
    """LR multiplier at iteration ``step`` (0-based): linear from ``start_factor`` to 1 over the
    warm-up (reaching 1 at ``warmup_steps``), then a cosine from 1 to ``min_factor`` at ``total_steps``."""
    if warmup_steps > 0 and step < warmup_steps:
        return start_factor + (1.0 - start_factor) * (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, max(0.0, (step - warmup_steps) / span))
    return min_factor + (1.0 - min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def follow_config(optimizer: torch.optim.Optimizer, scheduler: LambdaLR, cfg: OptimConfig, total_batch: int) -> None:
    """Make a restored optimiser and schedule follow ``cfg``: a resume may change the learning rate,
    momentum, Nesterov or weight decay (e.g. ``--resume auto optim.lr=0.01`` after a divergence). The
    schedule continues at its step from the new peak; unchanged settings give the same values bit for bit."""
    peak = scaled_lr(cfg, total_batch)
    groups = optimizer.param_groups
    for i, group in enumerate(groups):
        group["initial_lr"] = peak
        group["momentum"] = cfg.momentum
        group["nesterov"] = cfg.nesterov and cfg.momentum > 0
        group["weight_decay"] = cfg.weight_decay if i == 0 else 0.0  # group 1: BN and biases (no decay)
    scheduler.base_lrs = [peak] * len(groups)
    for group, factor in zip(groups, scheduler.lr_lambdas, strict=True):
        group["lr"] = peak * factor(scheduler.last_epoch)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimConfig, steps_per_epoch: int) -> LambdaLR:
    """Per-iteration warm-up + cosine over ``cfg.epochs * steps_per_epoch`` iterations (call
    ``scheduler.step()`` once per training step)."""
    total = cfg.epochs * steps_per_epoch
    warmup = int(round(cfg.warmup_epochs * steps_per_epoch))
    peak = optimizer.param_groups[0]["lr"]
    min_factor = min(1.0, cfg.min_lr / peak) if peak > 0 else 0.0
    start = cfg.warmup_start_factor

    def factor(step: int) -> float:
        return warmup_cosine_factor(step, warmup, total, start, min_factor)

    return LambdaLR(optimizer, factor)
