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


def alpha_divergence_terms(logits: torch.Tensor, teacher_logits: torch.Tensor, alpha: float,
                           iw_clip: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample value and gradient surrogate of AlphaNet's alpha-divergence term (their
    ``AdaptiveLossSoft``; reference section 9), with p the teacher's and q the student's softmax (both
    detached) and r = p / q:

    * alpha = 0 (``|alpha| < 1e-3``): r clipped to [0, iw_clip]; f = -log r; rho = log r - 1;
    * alpha = 1 (``|alpha - 1| < 1e-3``): no clipping; f = r log r; rho = r;
    * otherwise: w = r^alpha clipped to [0, iw_clip]; f = w / (alpha (alpha - 1)) - base with
      base = 1 / (alpha (alpha - 1)); rho = w / alpha + base.

    The value is ``sum_i q_i f_i`` (from the clipped weights), the surrogate
    ``-sum_i q_i rho_i log q_i`` (gradient through log q only). Everything is computed in log space
    and as products with q, so far-apart logits (small students early in training) stay finite:
    ``q r = p`` exactly, and clipped weights are bounded by ``iw_clip``.
    """
    dtype = torch.promote_types(logits.dtype, torch.float32)  # at least float32 (bf16 / fp16 under AMP)
    log_q = F.log_softmax(logits.to(dtype), dim=1)
    log_p = F.log_softmax(teacher_logits.detach().to(dtype), dim=1)
    q = log_q.exp().detach()
    log_r = (log_p - log_q).detach()
    if abs(alpha) < 1e-3:
        log_r = log_r.clamp(max=math.log(iw_clip))  # r <= iw_clip
        q_f, q_rho = -q * log_r, q * (log_r - 1.0)
    elif abs(alpha - 1.0) < 1e-3:
        p = log_p.exp()  # q r = p: no overflow of r = p / q
        q_f, q_rho = p * log_r, p
    else:
        w = (alpha * log_r).exp().clamp(max=iw_clip)  # an overflow to inf clips to iw_clip
        base = 1.0 / (alpha * (alpha - 1.0))
        q_f, q_rho = q * (w * base - base), q * (w / alpha + base)
    value = q_f.sum(dim=1)
    surrogate = -(q_rho * log_q).sum(dim=1)
    return value.detach(), surrogate


def adaptive_alpha_divergence(logits: torch.Tensor, teacher_logits: torch.Tensor, alpha_min: float = -1.0,
                              alpha_max: float = 1.0, iw_clip: float = 5.0) -> torch.Tensor:
    """AlphaNet's adaptive alpha-divergence: per sample, the ``alpha_min`` term where its value is
    strictly larger than the ``alpha_max`` term's, else the ``alpha_max`` term; the loss is the batch
    mean of the chosen surrogates (see :func:`alpha_divergence_terms`)."""
    v_lo, s_lo = alpha_divergence_terms(logits, teacher_logits, alpha_min, iw_clip)
    v_hi, s_hi = alpha_divergence_terms(logits, teacher_logits, alpha_max, iw_clip)
    return torch.where(v_lo > v_hi, s_lo, s_hi).mean()


def build_distill_loss(cfg: LossConfig) -> DistillLoss:
    """The distillation loss ``(student_logits, teacher_logits) -> scalar`` chosen by ``cfg``."""
    if cfg.distill == "alpha_divergence":
        return lambda s, t: adaptive_alpha_divergence(s, t, cfg.alpha_min, cfg.alpha_max, cfg.iw_clip)
    return lambda s, t: soft_target_ce(s, t, cfg.temperature)
