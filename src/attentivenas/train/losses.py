"""Losses of the sandwich step: label-smoothed CE for the max subnet; in-place distillation from
the max subnet's detached logits for the others (soft-target CE, or AlphaNet's adaptive
alpha-divergence)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..config import LossConfig

DistillLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def label_smoothing_ce(logits: torch.Tensor, target: torch.Tensor, smoothing: float = 0.1) -> torch.Tensor:
    """Cross-entropy against labels smoothed by ``smoothing`` (mass spread uniformly over classes)."""
    return F.cross_entropy(logits.float(), target, label_smoothing=smoothing)


def soft_target_ce(logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Mean over the batch of ``-sum softmax(teacher / T) * log_softmax(student / T)``.

    The teacher is detached; ``T = 1`` is the recipe's in-place distillation. With ``T != 1`` the
    loss is scaled by ``T**2`` to keep gradient magnitudes comparable.
    """
    t = float(temperature)
    p = F.softmax(teacher_logits.detach().float() / t, dim=1)
    loss = -(p * F.log_softmax(logits.float() / t, dim=1)).sum(dim=1).mean()
    return loss * (t * t) if t != 1.0 else loss


def _alpha_terms(logits: torch.Tensor, teacher_logits: torch.Tensor, alpha: float,
                 iw_clip: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample alpha-divergence ``D_alpha(p || q)`` (p teacher, q student) and a surrogate whose
    gradient is its (weight-clipped) gradient w.r.t. the student.

    ``D_alpha(p||q) = sum_i q_i f(p_i / q_i)`` with ``f(t) = (t^alpha - 1) / (alpha (alpha - 1))``
    (KL(q||p) at alpha -> 0, KL(p||q) at alpha -> 1). Its gradient is
    ``sum_i grad(q_i) * (f(t_i) - t_i f'(t_i))`` and ``grad(q_i) = q_i grad(log q_i)``; the weight
    ``w_i = t_i^alpha`` is clipped to ``[0, iw_clip]`` to bound the variance.
    """
    log_q = F.log_softmax(logits.float(), dim=1)
    log_p = F.log_softmax(teacher_logits.detach().float(), dim=1)
    q = log_q.exp().detach()
    log_t = (log_p - log_q).detach()
    if abs(alpha) < 1e-3:  # KL(q || p)
        value = (q * -log_t).sum(dim=1)
        coef = 1.0 - log_t.clamp(max=math.log(iw_clip))  # f - t f' with f = -log t (ratio clipped)
    elif abs(alpha - 1.0) < 1e-3:  # KL(p || q)
        t = log_t.exp()
        value = (q * t * log_t).sum(dim=1)
        coef = -t.clamp(max=iw_clip)  # f - t f' with f = t log t
    else:
        w = (alpha * log_t).exp()
        value = (q * (w - 1.0)).sum(dim=1) / (alpha * (alpha - 1.0))
        coef = -(w.clamp(max=iw_clip) / alpha + 1.0 / (alpha * (alpha - 1.0)))
    surrogate = (q * coef * log_q).sum(dim=1)
    return value.detach(), surrogate


def adaptive_alpha_divergence(logits: torch.Tensor, teacher_logits: torch.Tensor, alpha_min: float = -1.0,
                              alpha_max: float = 1.0, iw_clip: float = 5.0) -> torch.Tensor:
    """AlphaNet's adaptive alpha-divergence: per sample, the larger of ``D_alpha_min`` and
    ``D_alpha_max``; gradients follow the chosen one. The returned value equals the divergence;
    its gradient is the clipped estimate."""
    v_lo, s_lo = _alpha_terms(logits, teacher_logits, alpha_min, iw_clip)
    v_hi, s_hi = _alpha_terms(logits, teacher_logits, alpha_max, iw_clip)
    pick_lo = v_lo > v_hi
    value = torch.where(pick_lo, v_lo, v_hi)
    surrogate = torch.where(pick_lo, s_lo, s_hi)
    return (value + surrogate - surrogate.detach()).mean()


def build_distill_loss(cfg: LossConfig) -> DistillLoss:
    """The distillation loss ``(student_logits, teacher_logits) -> scalar`` chosen by ``cfg``."""
    if cfg.distill == "alpha_divergence":
        return lambda s, t: adaptive_alpha_divergence(s, t, cfg.alpha_min, cfg.alpha_max, cfg.iw_clip)
    return lambda s, t: soft_target_ce(s, t, cfg.temperature)
