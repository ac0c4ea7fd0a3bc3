"""Fitting a latency table's models on whole subnets measured with it, and their errors.

The ``sum`` model (:func:`fit_overhead`) fits ``overhead_ms + per_block_ms * blocks`` to the
residuals of the summed op times; the ``scaled`` model (:func:`fit_scaled`) also fits one factor
per op group. :func:`fit_models` fits both and picks one, :func:`holdout_errors` and
:func:`table_error` report the mean absolute percentage error (MAPE) on held-out archs, and
:func:`refit_table` fits a table again on the subnets it stored.
"""

from __future__ import annotations

import math
import statistics
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.optimize import lsq_linear

from ..config.latency import MAX_REFIT_SUBNETS  # most stored subnets refit accepts (quadratic fit)
from ..errors import UserError
from ..space import Arch, SearchSpace
from .table import MIN_FRACTION, MODELS, OP_GROUPS, LatencyTable

#: fewest calibration archs the scaled model is fitted on (2 overhead terms + 3 group factors)
MIN_SCALED_ARCHS = 8
#: the range of the ``scaled`` model's per-group factors
FACTOR_BOUNDS = (0.05, 5.0)


def fit_overhead(table: LatencyTable, space: SearchSpace, archs: Sequence[Arch], measured: Sequence[float]) -> None:
    """Set ``table.overhead_ms`` and ``table.per_block_ms`` from whole-subnet measurements (the ``sum``
    model, stored in ``table.meta['fits']['sum']``).

    Least squares of (measured - sum of ops) on ``[1, blocks]``; with fewer than 3 archs, or
    archs that all have the same number of blocks, only a constant (the median residual).
    """
    table.overhead_ms = table.per_block_ms = 0.0
    table.group_scale = {}
    table.model = "sum"
    table.clear_cache()
    if not archs:
        return
    res = np.array([m - table.predict(space, a) for a, m in zip(archs, measured, strict=True)])
    blocks = np.array([sum(a.depth) for a in archs], dtype=np.float64)
    if len(archs) >= 3 and np.ptp(blocks) > 0:
        coef = np.linalg.lstsq(np.stack([np.ones_like(blocks), blocks], 1), res, rcond=None)[0]
        table.overhead_ms, table.per_block_ms = float(coef[0]), float(coef[1])
    else:
        table.overhead_ms = float(statistics.median(res))
    table.overhead_ms, lifted = lift_overhead(table, space, table.overhead_ms, table.per_block_ms, {})
    table.meta["calibration_archs"] = len(archs)
    table.meta.setdefault("fits", {})["sum"] = {"overhead_ms": table.overhead_ms, "per_block_ms": table.per_block_ms,
                                                **({"lifted_ms": lifted} if lifted else {})}


def lift_overhead(table: LatencyTable, space: SearchSpace, overhead: float, per_block: float,
                  scale: dict[str, float]) -> tuple[float, float]:
    """``(overhead, lift)``: the fitted overhead raised by ``lift`` ms where it would leave the space's
    max subnet below ``MIN_FRACTION`` of its summed ops (``lift`` 0 otherwise).

    A negative overhead is expected (each op timed alone carries call overhead), but one that cancels
    the largest subnet comes from op timings inflated by load while a few calibration subnets were
    not (seen on a busy 2-core CI machine: -17.8 ms against a 4 ms max subnet); the table's held-out
    error reports that noise, and the table stays one its loader accepts (:meth:`LatencyTable.check_times`)."""
    parts = table.max_subnet_parts(space)
    if parts is None:
        return overhead, 0.0
    sums, blocks = parts
    summed = sum(v * scale.get(g, 1.0) for g, v in sums.items())
    short = MIN_FRACTION * summed - (summed + overhead + per_block * blocks)
    return (overhead + short, float(short)) if short > 0 else (overhead, 0.0)


def _scaled_coefficients(x: np.ndarray, y: np.ndarray, ridge: float) -> np.ndarray:
    """Least squares ``y ~ a + b * blocks + sum_g c_g * S_g`` (columns of ``x``: 1, blocks, S_g...),
    relative errors weighted alike, the factors shrunk towards 1 with ``ridge`` (a fraction of each
    group's own weight in the data) and bounded to ``FACTOR_BOUNDS`` *in* the fit (bounded least
    squares): clipping an unbounded solution afterwards left the other terms fitted to factors that
    were no longer used (an ExecuTorch table's held-out error 23% instead of 10%)."""
    w = 1.0 / y  # relative error: a large subnet does not dominate the fit
    a, t = x * w[:, None], y * w
    n_g = x.shape[1] - 2
    scale = np.sqrt(ridge) * np.maximum(np.linalg.norm(a[:, 2:], axis=0), 1e-12)  # relative to each group's data
    prior = np.zeros((n_g, x.shape[1]))
    prior[:, 2:] = np.diag(scale)
    lower = [-np.inf, -np.inf] + [FACTOR_BOUNDS[0]] * n_g
    upper = [np.inf, np.inf] + [FACTOR_BOUNDS[1]] * n_g
    return lsq_linear(np.vstack([a, prior]), np.concatenate([t, scale]), bounds=(lower, upper)).x


def _scaled_design(table: LatencyTable, space: SearchSpace, archs: Sequence[Arch]) -> np.ndarray:
    rows = []
    for a in archs:
        sums = table.group_sums(space, a)
        rows.append([1.0, float(sum(a.depth))] + [sums[g] for g in OP_GROUPS])
    return np.array(rows)


def fit_scaled(table: LatencyTable, space: SearchSpace, archs: Sequence[Arch], measured: Sequence[float],
               ridge: float = 1e-3) -> float:
    """Fit the ``scaled`` model (one factor per op group, plus ``overhead_ms + per_block_ms * blocks``)
    on whole-subnet measurements, store it in ``table.meta['fits']['scaled']`` and return its
    leave-one-out MAPE (%) on ``archs``. The table's active model is not changed."""
    if len(archs) < MIN_SCALED_ARCHS:
        raise UserError(f"the scaled model needs >= {MIN_SCALED_ARCHS} calibration archs, got {len(archs)}")
    x, y = _scaled_design(table, space, archs), np.asarray(measured, dtype=np.float64)
    coef = _scaled_coefficients(x, y, ridge)
    scale = {g: float(c) for g, c in zip(OP_GROUPS, coef[2:], strict=True)}
    overhead, lifted = lift_overhead(table, space, float(coef[0]), float(coef[1]), scale)
    table.meta.setdefault("fits", {})["scaled"] = {
        "overhead_ms": overhead, "per_block_ms": float(coef[1]), "group_scale": scale,
        **({"lifted_ms": lifted} if lifted else {})}
    loo = []
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        c = _scaled_coefficients(x[keep], y[keep], ridge)
        pred = max(float(x[i] @ c), MIN_FRACTION * float(x[i, 2:] @ c[2:]))
        loo.append(abs(pred - y[i]) / y[i])
    return float(np.mean(loo) * 100.0)


def _sum_loo(table: LatencyTable, space: SearchSpace, archs: Sequence[Arch], measured: Sequence[float]) -> float:
    """Leave-one-out MAPE (%) of the ``sum`` model on the calibration archs."""
    errs = []
    for i in range(len(archs)):
        keep = [j for j in range(len(archs)) if j != i]
        fit_overhead(table, space, [archs[j] for j in keep], [measured[j] for j in keep])
        errs.append(abs(table.predict(space, archs[i]) - measured[i]) / measured[i])
    return float(np.mean(errs) * 100.0)


def fit_models(table: LatencyTable, space: SearchSpace, archs: Sequence[Arch], measured: Sequence[float],
               model: str = "auto") -> None:
    """Fit the ``sum`` model (and the ``scaled`` one with enough archs) and make ``model`` active
    (``auto``: the lower leave-one-out error on ``archs``, in ``table.meta['calibration_loo_mape']``)."""
    loo = {"sum": _sum_loo(table, space, archs, measured)} if len(archs) >= 4 else {}
    fit_overhead(table, space, archs, measured)
    if len(archs) >= MIN_SCALED_ARCHS:
        loo["scaled"] = fit_scaled(table, space, archs, measured)
    table.meta["calibration_loo_mape"] = loo
    if model == "auto":
        model = min(loo, key=lambda k: loo[k]) if loo else "sum"
    table.use_model(model)
    lifted = float(table.meta["fits"][model].get("lifted_ms", 0.0))
    if lifted:
        warnings.warn(f"the calibration subnets ran {lifted:.3g} ms faster than their summed op times allow for the "
                      f"space's max subnet: op timings were inflated (a busy machine?); the {model!r} model's "
                      f"overhead was raised so the max subnet keeps {MIN_FRACTION:.0%} of its ops, and the held-out error shows the "
                      "noise (rebuild on an idle machine with more --repeats)", UserWarning, stacklevel=2)


def holdout_errors(table: LatencyTable, space: SearchSpace, archs: Sequence[Arch],
                   measured: Sequence[float]) -> dict[str, float]:
    """MAPE (%) of every fitted model of ``table`` on held-out ``archs`` measured at ``measured`` ms,
    recorded in ``table.meta`` (``holdout_mape_by_model``, and the active model's as
    ``holdout_mape_percent``); the active model is kept."""
    active, mapes = table.model, {}
    fits = table.meta.get("fits", {})
    for name in fits or {"sum": None}:
        if name in fits:
            table.use_model(name)
        mapes[name] = table_error(table, space, archs, measured)
    if active in fits:
        table.use_model(active)
    table.meta.update(holdout_archs=len(archs), holdout_mape_percent=mapes.get(table.model),
                      holdout_mape_by_model=mapes, holdout_subnets=subnet_records(archs, measured))
    return mapes


def subnet_records(archs: Sequence[Arch], measured: Sequence[float]) -> list[dict[str, Any]]:
    """``[{"arch": ..., "ms": ...}]``: whole subnets measured with the table, kept in its meta."""
    return [{"arch": a.to_dict(), "ms": float(ms)} for a, ms in zip(archs, measured, strict=True)]


def stored_subnets(table: LatencyTable, space: SearchSpace, key: str) -> tuple[list[Arch], list[float]]:
    """The archs and measured ms of ``meta[key]`` (``calibration_subnets`` or ``holdout_subnets``),
    validated against ``space``; a user error when the table has none or they are malformed."""
    records = table.meta.get(key)
    if not isinstance(records, list) or not records:
        raise UserError(f"latency table has no measured subnets in meta.{key} (tables built before 2026-12-01 "
                        "do not keep them); rebuild it with `attentivenas latency build-table`")
    archs, measured = [], []
    for i, rec in enumerate(records):
        try:
            arch = space.validate(Arch.from_dict(rec["arch"]))
            ms = float(rec["ms"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise UserError(f"latency table meta.{key}[{i}] is malformed ({exc.__class__.__name__}: {exc})") from None
        if not (math.isfinite(ms) and ms > 0):
            raise UserError(f"latency table meta.{key}[{i}].ms = {ms!r} is not a positive latency (ms)")
        archs.append(arch)
        measured.append(ms)
    return archs, measured


def refit_table(table: LatencyTable, space: SearchSpace, model: str = "auto",
                source: str = "latency table") -> dict[str, float]:
    """Fit the table's models again on its stored calibration subnets (no measuring: e.g. after a
    better fitting method) and report every model's error on its stored held-out subnets (if any).
    A table of more than :data:`MAX_REFIT_SUBNETS` stored subnets is a user error naming ``source``."""
    if model not in (*MODELS, "auto"):
        raise UserError(f"unknown latency model {model!r}; use sum, scaled or auto")
    table.check_space(space)
    stored = sum(len(v) for k in ("calibration_subnets", "holdout_subnets")
                 if isinstance(v := table.meta.get(k), list))
    if stored > MAX_REFIT_SUBNETS:  # bounded work: refuse before validating or fitting anything
        raise UserError(f"{source} holds {stored} measured subnets (calibration + held-out); refit handles at most "
                        f"{MAX_REFIT_SUBNETS}")
    calib, measured = stored_subnets(table, space, "calibration_subnets")
    if model == "scaled" and len(calib) < MIN_SCALED_ARCHS:
        raise UserError(f"the scaled model needs >= {MIN_SCALED_ARCHS} calibration subnets, the table has {len(calib)}")
    table.meta.pop("fits", None)
    fit_models(table, space, calib, measured, model)
    if not table.meta.get("holdout_subnets"):
        return {}
    held, held_ms = stored_subnets(table, space, "holdout_subnets")
    return holdout_errors(table, space, held, held_ms)


def table_error(table: LatencyTable, space: SearchSpace, archs: Sequence[Arch], measured: Sequence[float]) -> float:
    """Mean absolute percentage error (%) of the table's predictions against ``measured`` (ms)."""
    if len(archs) != len(measured) or not archs:
        raise UserError("table_error needs one measured latency per arch (and at least one arch)")
    pred = np.array([table.predict(space, a) for a in archs])
    meas = np.asarray(measured, dtype=np.float64)
    if np.any(meas <= 0):
        raise UserError("measured latencies must be positive")
    return float(np.mean(np.abs(pred - meas) / meas) * 100.0)
