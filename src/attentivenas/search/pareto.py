"""Pareto math: non-dominance, ranks, normalisation and hypervolume. Objectives are minimised
throughout (accuracy enters as ``-accuracy`` or as an error)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pymoo.indicators.hv import HV


def pareto_mask(F: np.ndarray) -> np.ndarray:
    """Boolean mask of the non-dominated rows of ``F`` (n, m), all objectives minimised.

    A row is dominated when another is no worse in every objective and better in one; equal rows
    do not dominate each other, so duplicates are all kept."""
    F = np.asarray(F, dtype=np.float64)
    if F.ndim != 2:
        raise ValueError("F must be a 2-D array (points x objectives)")
    n = len(F)
    keep = np.ones(n, dtype=bool)
    order = np.lexsort(F.T[::-1])  # candidates that dominate come first
    for i in order:
        if not keep[i]:
            continue
        dominated = np.all(F[i] <= F, axis=1) & np.any(F[i] < F, axis=1)
        keep &= ~dominated
    return keep


def pareto_ranks(F: np.ndarray) -> np.ndarray:
    """Non-domination rank of every row (0 = first front), by repeated peeling."""
    F = np.asarray(F, dtype=np.float64)
    ranks = np.full(len(F), -1, dtype=np.int64)
    left = np.arange(len(F))
    r = 0
    while left.size:
        mask = pareto_mask(F[left])
        ranks[left[mask]] = r
        left = left[~mask]
        r += 1
    return ranks


def normalise(F: np.ndarray, lo: Sequence[float], hi: Sequence[float]) -> np.ndarray:
    """Scale each column of ``F`` linearly so that ``lo`` maps to 0 and ``hi`` to 1."""
    lo_a, hi_a = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
    span = np.where(hi_a > lo_a, hi_a - lo_a, 1.0)
    return (np.asarray(F, dtype=np.float64) - lo_a) / span


def hypervolume(F: np.ndarray, ref: Sequence[float]) -> float:
    """Hypervolume dominated by the rows of ``F`` (minimised) up to the reference point ``ref``.

    Points not strictly better than ``ref`` in every objective contribute nothing."""
    F = np.atleast_2d(np.asarray(F, dtype=np.float64))
    ref_a = np.asarray(ref, dtype=np.float64)
    if F.size == 0:
        return 0.0
    inside = F[np.all(F < ref_a, axis=1) & np.all(np.isfinite(F), axis=1)]
    if len(inside) == 0:
        return 0.0
    return float(HV(ref_point=ref_a)(inside))


def normalised_objectives(accuracy: Sequence[float] | np.ndarray, costs: Sequence[Sequence[float] | np.ndarray],
                          bounds: Sequence[tuple[float, float]]) -> np.ndarray:
    """The search's minimised objectives of (accuracy, costs) points: the error ``(100 - top1) / 100``,
    then each cost column scaled so that its ``(lo, hi)`` bound maps to (0, 1)."""
    err = (100.0 - np.asarray(accuracy, dtype=np.float64).reshape(-1)) / 100.0
    cols = [normalise(np.asarray(c, dtype=np.float64).reshape(-1, 1), [lo], [hi])[:, 0]
            for c, (lo, hi) in zip(costs, bounds, strict=True)]
    return np.column_stack([err, *cols])


def front_hypervolume(accuracy: Sequence[float] | np.ndarray, costs: Sequence[Sequence[float] | np.ndarray],
                      bounds: Sequence[tuple[float, float]]) -> float:
    """Hypervolume of the non-dominated (accuracy %, cost...) points as the search reports it: objectives of
    :func:`normalised_objectives`, reference point 1 on every axis (0 for no points). With the space's
    smallest and largest MFLOPs as ``bounds`` this is the ``hypervolume`` of a search without budgets."""
    if not len(accuracy):
        return 0.0
    F = normalised_objectives(accuracy, costs, bounds)
    return hypervolume(F[pareto_mask(F)], np.ones(F.shape[1]))
