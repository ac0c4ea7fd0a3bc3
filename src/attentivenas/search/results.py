"""The outcome of a search: the Pareto entries (file contract), each budget's winner, hypervolume,
the re-measurement of the best predicted candidates (``predicted+remeasure``) and, in an INT8 search,
the measurement of the best measured ones quantized (:func:`collect`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..config import OBJECTIVES, SearchConfig
from .measured import MeasuredAccuracy
from .pareto import pareto_mask, pareto_ranks
from .problem import SearchState, feasible


@dataclass
class SearchResult:
    """The outcome of a search: Pareto entries (file contract), winners per budget point,
    hypervolume with its reference, per-generation history, and the resolved config that ran."""

    pareto: list[dict[str, Any]]
    budget_winners: list[dict[str, Any]] = field(default_factory=list)
    hypervolume: float = 0.0
    hypervolume_reference: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    evaluated: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    n_evaluations: int = 0
    n_measured: int = 0
    config: SearchConfig = field(default_factory=SearchConfig)
    space_name: str = ""
    num_classes: int = 1000
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. the predictor the search fitted (summary.json)
    n_measured_int8: int | None = None  # distinct archs measured quantized (precision int8)

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary (written as ``summary.json``, printed by ``search --json``)."""
        return {
            "pareto_size": len(self.pareto),
            "hypervolume": self.hypervolume,
            "hypervolume_reference": self.hypervolume_reference,
            "budget_winners": self.budget_winners,
            "n_evaluations": self.n_evaluations,
            "n_measured": self.n_measured,
            **({"n_measured_int8": self.n_measured_int8} if self.n_measured_int8 is not None else {}),
            "space": self.space_name,
            "num_classes": self.num_classes,
            "settings": self.config.to_dict(),
            **self.extra,
        }


def _entries(search: SearchState, genes: np.ndarray, values: dict[str, np.ndarray], idx: np.ndarray, source: str,
             predicted: np.ndarray | None = None, also: dict[str, np.ndarray] | None = None) -> list[dict[str, Any]]:
    out = []
    for i in idx:
        e: dict[str, Any] = {
            "arch": search.space.decode(genes[i]).to_dict(),
            "mflops": float(values["mflops"][i]),
            "params_m": float(values["params_m"][i]),
            "latency_ms": float(values["latency_ms"][i]) if "latency_ms" in values else None,
            "accuracy": float(values["accuracy"][i]),
            "accuracy_source": source,
        }
        if "memory_mb" in values:
            e["memory_mb"] = float(values["memory_mb"][i])
        if predicted is not None:
            e["predicted_accuracy"] = float(predicted[i])
        for k, v in (also or {}).items():
            e[k] = float(v[i])
        out.append(e)
    return sorted(out, key=lambda e: (e["mflops"], -e["accuracy"]))


def _remeasure_candidates(search: SearchState, values: dict[str, np.ndarray], top: int, points: Sequence[float],
                          col: str) -> np.ndarray:
    """Indices to re-measure: the first fronts (best predicted first) up to ``top``, plus the best few
    predicted archs under each budget point."""
    ranks = pareto_ranks(search.objectives_matrix(values))
    order = np.lexsort((-values["accuracy"], ranks))
    chosen = list(order[: max(top, 0)])
    for b in points:
        under = np.flatnonzero(values[col] <= b)
        chosen += list(under[np.argsort(-values["accuracy"][under], kind="stable")][:3])
    return np.array(sorted(set(chosen)), dtype=np.int64)


def _with_known_measurements(search: SearchState, measured: MeasuredAccuracy, genes: np.ndarray,
                             values: dict[str, np.ndarray], predicted: np.ndarray
                             ) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """Add the archs already measured in the cache (e.g. the predictor's training data) that meet the
    budgets: the measured front is then built from every measurement, not only the re-measured top."""
    seen = {g.tobytes() for g in genes}
    known = [r for r in measured.cache.records if search.space.encode(r.arch).tobytes() not in seen]
    if not known:
        return genes, values, predicted
    extra = np.stack([search.space.encode(r.arch) for r in known])
    extra_values = search.costs(extra)
    extra_values["accuracy"] = np.array([r.accuracy for r in known], dtype=np.float64)
    ok = feasible(extra_values, search.limits)
    if not ok.any():
        return genes, values, predicted
    extra, extra_values = extra[ok], {c: v[ok] for c, v in extra_values.items()}
    extra_pred = np.asarray(search.accuracy_fn(extra), dtype=np.float64)
    merged = {c: np.concatenate([values[c], extra_values[c]]) for c in values}
    return np.concatenate([genes, extra]), merged, np.concatenate([predicted, extra_pred])


def collect(search: SearchState, source: str, measured: MeasuredAccuracy | None, top: int,
            points: Sequence[float], metric: str, int8: MeasuredAccuracy | None = None) -> SearchResult:
    """The result of a finished search: feasible archs only, re-measured for ``predicted+remeasure``.

    With ``int8`` (a ``precision: int8`` search), the best measured archs (the measured front, the
    first fronts up to ``top`` and the best 3 under each budget point, all by float top-1) are measured
    again quantized; the front, the budget winners and the hypervolume are then those of their INT8
    top-1 (``accuracy``), each entry carrying ``top1_fp32`` and ``top1_int8``."""
    genes, values = search.archive.arrays()
    ok = feasible(values, search.limits)  # every output honours every budget
    genes, values = genes[ok], {c: v[ok] for c, v in values.items()}
    evaluated = np.column_stack([values["mflops"], values["accuracy"]])
    col = OBJECTIVES[metric]
    predicted = None
    label = "measured" if source == "measured" else "predicted"
    if source == "predicted+remeasure":
        assert measured is not None
        idx = _remeasure_candidates(search, values, top, points, col)
        genes, values = genes[idx], {c: v[idx] for c, v in values.items()}
        predicted = values["accuracy"].copy()
        measured.measure([search.space.decode(g) for g in genes], what="again: the best candidates")
        values["accuracy"] = measured(genes)
        genes, values, predicted = _with_known_measurements(search, measured, genes, values, predicted)
        label = "measured"
    also = None
    if int8 is not None and len(genes):
        idx = _int8_candidates(search, values, top, points, col)
        genes, values = genes[idx], {c: v[idx] for c, v in values.items()}
        predicted = predicted[idx] if predicted is not None else None
        int8.measure([search.space.decode(g) for g in genes], what="in INT8: the best candidates and budget winners")
        also = {"top1_fp32": values["accuracy"].copy(), "top1_int8": int8(genes)}
        values["accuracy"] = also["top1_int8"]
    front = np.flatnonzero(pareto_mask(search.objectives_matrix(values))) if len(genes) else np.zeros(0, np.int64)
    pareto = _entries(search, genes, values, front, label, predicted, also)
    winners = []
    for b in points:
        under = np.flatnonzero(values[col] <= b)
        best = under[np.argsort(-values["accuracy"][under], kind="stable")][:1]
        entry = _entries(search, genes, values, best, label, predicted, also)
        winners.append({"metric": metric, "budget": b, **(entry[0] if entry else {"arch": None})})
    hv = search.front_hv({c: v[front] for c, v in values.items()})
    reference = {
        "axes": ["error=(100-accuracy)/100"] + [f"{c} scaled: {lo:g} -> 0, {hi:g} -> 1"
                                                for c in search.obj_cols for lo, hi in [search.bounds[c]]],
        "reference_point": [1.0] * (1 + len(search.obj_cols)),
        "bounds": {c: list(search.bounds[c]) for c in search.obj_cols},
    }
    result = SearchResult(pareto, winners, hv, reference, evaluated=evaluated, n_evaluations=len(search.archive),
                          n_measured=len(measured.used) if measured is not None else 0)
    if int8 is not None:
        result.n_measured_int8 = len(int8.used)
    return result


def _int8_candidates(search: SearchState, values: dict[str, np.ndarray], top: int, points: Sequence[float],
                     col: str) -> np.ndarray:
    """Indices of the measured archs to measure in INT8: the float front, the first fronts up to ``top``
    and the best 3 under each budget point."""
    front = np.flatnonzero(pareto_mask(search.objectives_matrix(values)))
    chosen = np.union1d(front, _remeasure_candidates(search, values, top, points, col))
    return chosen.astype(np.int64)
