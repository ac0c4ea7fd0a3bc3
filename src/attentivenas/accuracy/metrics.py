"""Rank metrics of accuracy predictions: Kendall's tau, Spearman's rho, RMSE."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import kendalltau, spearmanr


def _pair(y_true: Sequence[float], y_pred: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(y_true, dtype=np.float64).ravel()
    b = np.asarray(y_pred, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"y_true has {a.size} values, y_pred {b.size}")
    return a, b


def kendall_tau(y_true: Sequence[float], y_pred: Sequence[float]) -> float:
    """Kendall's tau-b rank correlation (nan when either side is constant or has < 2 values)."""
    a, b = _pair(y_true, y_pred)
    if a.size < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(kendalltau(a, b).statistic)


def spearman_rho(y_true: Sequence[float], y_pred: Sequence[float]) -> float:
    """Spearman's rank correlation (nan when either side is constant or has < 2 values)."""
    a, b = _pair(y_true, y_pred)
    if a.size < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def rmse(y_true: Sequence[float], y_pred: Sequence[float]) -> float:
    """Root mean squared error."""
    a, b = _pair(y_true, y_pred)
    return float(np.sqrt(np.mean((a - b) ** 2))) if a.size else float("nan")


def format_metric(value: object, digits: int = 3) -> str:
    """A metric for a log line: ``"undefined"`` when it is missing or not finite (a rank correlation
    of tied accuracies, read back from JSON as ``null``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        return "undefined"
    return f"{value:.{digits}f}"


def rank_metrics(y_true: Sequence[float], y_pred: Sequence[float]) -> dict[str, float]:
    """``{"kendall_tau", "spearman_rho", "rmse"}`` of a prediction."""
    return {
        "kendall_tau": kendall_tau(y_true, y_pred),
        "spearman_rho": spearman_rho(y_true, y_pred),
        "rmse": rmse(y_true, y_pred),
    }
