"""Fitting a whole-model latency predictor (:class:`~.whole.WholeModel`) on measured whole subnets,
and its held-out error beside the per-op table's (``attentivenas latency fit-model``).

The fit is bounded least squares on relative errors with every coefficient >= 0 (latency grows
with work; a non-negative combination of non-negative features extrapolates sanely to subnets
outside the measured ones). Candidates: ``global`` (a constant, the net's dense and depthwise
multiply-adds, activation elements and blocks) and ``stage`` (those plus the same per stage, the
first conv and the head, shrunk towards 0 by a ridge: with few subnets the per-stage terms stay
small and the global ones carry the fit). The one with the lower K-fold MAPE on the measured subnets
is kept (seeded folds: the same subnets give the same model).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import lsq_linear
from scipy.stats import kendalltau

from ..errors import UserError
from ..space import Arch, SearchSpace
from .fit import MIN_SCALED_ARCHS, fit_overhead, fit_scaled, stored_subnets
from .table import LatencyTable
from .whole import WholeFeatures, WholeModel

#: fewest measured subnets a whole model is fitted on, and the most
MIN_WHOLE_SUBNETS = 10
MAX_WHOLE_SUBNETS = 5000
#: candidates: (features, ridge on the per-stage and end features, relative to each column's weight)
CANDIDATES: tuple[tuple[str, float], ...] = (("global", 0.0), ("stage", 0.1), ("stage", 1e-3), ("stage", 1e-5))
BASE_RIDGE = 1e-6  # on every column: a unique solution where features are collinear
FOLDS = 5
#: a prediction is never below this fraction of the fastest measured subnet
FLOOR_FRACTION = 0.05


def _used(names: Sequence[str], kind: str) -> np.ndarray:
    """Whether each feature is a column of candidate ``kind``."""
    return np.array([kind == "stage" or n.startswith("net.") for n in names])


def solve(x: np.ndarray, y: np.ndarray, penalised: np.ndarray, ridge: float) -> np.ndarray:
    """Coefficients >= 0 minimising the squared relative error of ``x @ c`` against ``y`` plus
    ``ridge`` on the ``penalised`` columns (each column scaled to unit weight first)."""
    a = x / y[:, None]
    norms = np.linalg.norm(a, axis=0)
    live = norms > 0
    a = a[:, live] / norms[live]
    lam = np.where(penalised[live], ridge, 0.0) + BASE_RIDGE
    lhs = np.vstack([a, np.diag(np.sqrt(lam))])
    rhs = np.concatenate([np.ones(len(y)), np.zeros(a.shape[1])])
    coef = np.zeros(x.shape[1])
    sol = lsq_linear(lhs, rhs, bounds=(0.0, np.inf), method="bvls").x
    coef[live] = np.maximum(sol, 0.0) / norms[live]  # bvls may leave -1e-17 at a bound
    return coef


def _fit_candidate(x: np.ndarray, y: np.ndarray, names: Sequence[str], kind: str, ridge: float) -> np.ndarray:
    used = _used(names, kind)
    coef = np.zeros(x.shape[1])
    coef[used] = solve(x[:, used], y, ~np.array([n.startswith("net.") for n in names])[used], ridge)
    return coef


def kfold_mape(x: np.ndarray, y: np.ndarray, names: Sequence[str], kind: str, ridge: float, floor: float) -> float:
    """K-fold MAPE (%) of candidate ``(kind, ridge)`` on ``(x, y)`` (folds from seed 0)."""
    k = min(FOLDS, len(y))
    fold = np.empty(len(y), dtype=np.int64)
    fold[np.random.default_rng(0).permutation(len(y))] = np.arange(len(y)) % k
    errs = np.empty(len(y))
    for f in range(k):
        test = fold == f
        coef = _fit_candidate(x[~test], y[~test], names, kind, ridge)
        errs[test] = np.abs(np.maximum(x[test] @ coef, floor) - y[test]) / y[test]
    return float(errs.mean() * 100.0)


def candidate_name(kind: str, ridge: float) -> str:
    return kind if kind == "global" else f"{kind} (ridge {ridge:g})"


def fit_whole(space: SearchSpace, num_classes: int, archs: Sequence[Arch],
              measured: Sequence[float]) -> tuple[dict[str, float], float, dict[str, Any]]:
    """``(coefficients, floor_ms, info)`` of the whole model fitted on ``archs`` measured at
    ``measured`` ms: the candidate with the lowest K-fold MAPE (``info``: every candidate's, the choice)."""
    feats = WholeFeatures(space, num_classes)
    x, y = feats(space.encode_many(list(archs))), np.asarray(measured, dtype=np.float64)
    floor = FLOOR_FRACTION * float(y.min())
    cv = {candidate_name(k, r): kfold_mape(x, y, feats.names, k, r, floor) for k, r in CANDIDATES}
    best = min(range(len(CANDIDATES)), key=lambda i: cv[candidate_name(*CANDIDATES[i])])
    kind, ridge = CANDIDATES[best]
    coef = _fit_candidate(x, y, feats.names, kind, ridge)
    used = _used(feats.names, kind)
    coefficients = {n: float(c) for n, c, u in zip(feats.names, coef, used, strict=True) if u}
    info = {"candidate": kind, "ridge": ridge, "cv_folds": min(FOLDS, len(y)),
            "cv_mape_by_candidate": {k: round(v, 4) for k, v in cv.items()}}
    return coefficients, floor, info


def errors(pred: Sequence[float], measured: Sequence[float]) -> dict[str, float | None]:
    """MAPE (%) and Kendall tau of ``pred`` against ``measured`` (tau None for fewer than 2)."""
    p, m = np.asarray(pred, dtype=np.float64), np.asarray(measured, dtype=np.float64)
    tau = float(kendalltau(p, m)[0]) if len(m) >= 2 else float("nan")
    return {"mape_percent": round(float(np.mean(np.abs(p - m) / m) * 100.0), 4),
            "kendall_tau": round(tau, 4) if math.isfinite(tau) else None}


def per_op_errors(table: LatencyTable, space: SearchSpace, archs: Sequence[Arch], measured: Sequence[float],
                  held: Sequence[Arch], held_ms: Sequence[float]) -> dict[str, Any]:
    """The per-op table's held-out errors, its model fitted again on the same ``archs`` (a copy:
    ``table`` is unchanged); ``{"error": why}`` where the table cannot predict them."""
    tab = LatencyTable.from_dict(table.to_dict())
    tab.meta.pop("fits", None)
    try:
        fit_overhead(tab, space, archs, measured)
        if table.model == "scaled" and len(archs) >= MIN_SCALED_ARCHS:
            fit_scaled(tab, space, archs, measured)
            tab.use_model("scaled")
        return {"model": tab.model, **errors([tab.predict(space, a) for a in held], held_ms)}
    except UserError as exc:
        return {"model": tab.model, "error": str(exc)}


def fit_model_from_table(table: LatencyTable, space: SearchSpace, subnets: int | None = None,
                         path: str | Path | None = None) -> WholeModel:
    """A whole model fitted on the first ``subnets`` (all by default) calibration subnets stored in
    ``table`` (read from ``path``), its errors on the table's held-out subnets beside the per-op
    table's in ``meta['holdout']``."""
    source = "latency table" if path is None else f"latency table {path}"
    table.check_space(space)
    stored = sum(len(v) for k in ("calibration_subnets", "holdout_subnets") if isinstance(v := table.meta.get(k), list))
    if stored > MAX_WHOLE_SUBNETS:  # bounded work: refuse before validating anything
        raise UserError(f"{source} holds {stored} measured subnets; fit-model handles at most {MAX_WHOLE_SUBNETS}")
    if not table.meta.get("calibration_subnets"):
        raise UserError(f"{source} stores no measured calibration subnets (meta.calibration_subnets); build it with "
                        f"--calibration-archs N (N >= {MIN_WHOLE_SUBNETS}; 50 to 200 for a useful model)")
    calib, ms = stored_subnets(table, space, "calibration_subnets")
    n = len(calib) if subnets is None else subnets
    if n > len(calib):
        raise UserError(f"--subnets {n}: {source} stores {len(calib)} calibration subnets; use at most {len(calib)}")
    if n < MIN_WHOLE_SUBNETS:
        raise UserError(f"a whole model needs >= {MIN_WHOLE_SUBNETS} measured subnets, "
                        f"{'--subnets is' if subnets is not None else f'{source} stores'} {n}; build the table with "
                        f"--calibration-archs N (50 to 200 for a useful model)")
    coef, floor, info = fit_whole(space, table.num_classes, calib[:n], ms[:n])
    model = WholeModel(space=table.space, coefficients=coef, floor_ms=floor, num_classes=table.num_classes,
                       batch=table.batch, threads=table.threads, device=table.device, device_name=table.device_name,
                       runtime=table.runtime, runtime_version=table.runtime_version, precision=table.precision,
                       meta={"fitted_on": n, "source_table": None if path is None else Path(path).name, **info})
    if table.meta.get("holdout_subnets"):
        held, held_ms = stored_subnets(table, space, "holdout_subnets")
        whole = errors(model.predict_genes(space, space.encode_many(held)), held_ms)
        model.meta["holdout"] = {"subnets": len(held), "whole": whole,
                                 "per_op": per_op_errors(table, space, calib[:n], ms[:n], held, held_ms)}
    model.meta["space_range"] = model.space_range(space)
    return model


def _err_text(e: dict[str, Any]) -> str:
    if "error" in e:
        return f"cannot predict them ({e['error']})"
    tau = "n/a" if e["kendall_tau"] is None else f"{e['kendall_tau']:.3f}"
    return f"{e['mape_percent']:.1f}% MAPE, Kendall tau {tau}"


def fitted_report(model: WholeModel, path: Path, space: SearchSpace) -> tuple[dict[str, Any], list[str]]:
    """``latency fit-model``'s JSON object and lines of ``model`` written to ``path``."""
    m, held, span = model.meta, model.meta.get("holdout"), model.meta["space_range"]
    info = {"path": str(path), "kind": model.kind, **model.setting(), "num_classes": model.num_classes,
            "fitted_on": m["fitted_on"], "candidate": m["candidate"], "ridge": m["ridge"],
            "cv_mape_by_candidate": m["cv_mape_by_candidate"], "holdout": held,
            "latency_range_ms": {k: round(v, 4) if isinstance(v, float) else v for k, v in span.items()}}
    cv = ", ".join(f"{k} {v:.1f}%" for k, v in m["cv_mape_by_candidate"].items())
    runtime = " ".join(v for v in (model.runtime, model.runtime_version, model.precision) if v)
    lines = [f"wrote {path}: whole-model latency predictor ({candidate_name(m['candidate'], m['ridge'])}) fitted on "
             f"{m['fitted_on']} measured subnets, {runtime} on {model.device_name or model.device}, batch "
             f"{model.batch}, {model.threads} thread(s)",
             f"{m['cv_folds']}-fold MAPE on the fitted subnets: {cv}"]
    if held is None:
        lines.append("the table stores no held-out subnets: no held-out error (build it with --holdout-archs N)")
    else:
        lines += [f"on the table's {held['subnets']} held-out subnets: whole model {_err_text(held['whole'])}",
                  f"on the same subnets: per-op table ({held['per_op']['model']} model, fitted on the same "
                  f"{m['fitted_on']} subnets) {_err_text(held['per_op'])}"]
    lines.append(f"latency of space '{space.name}' (predicted, {span['samples']:,} random subnets + min and max): min "
                 f"{span['min_ms']:.3f} ms, median {span['p50_ms']:.3f} ms, max {span['max_ms']:.3f} ms; use it as "
                 "search --latency-table FILE")
    return info, lines
