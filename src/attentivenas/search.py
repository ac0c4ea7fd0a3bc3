"""Stage 2: multi-objective evolutionary search (pymoo NSGA-II) of a trained supernet.

Maximise accuracy and minimise one or more costs (``mflops``, ``params``, ``latency``, ``memory``)
over the gene vectors of a space, under hard budgets that are pymoo constraints (``G <= 0``) and are
checked again on output, so every returned arch honours every budget.

Accuracy comes from a callable on gene matrices:

* ``predicted``: an accuracy predictor (:class:`attentivenas.predictor.Predictor` is such a callable);
* ``measured``: :class:`MeasuredAccuracy` wraps ``evaluate_fn(arch) -> top-1`` (a BN-recalibrated
  evaluation of the supernet) with a cache, optionally a dataset JSONL on disk;
* ``predicted+remeasure``: search with the predictor, then measure the best candidates (the first
  non-dominated fronts and the best arch under each budget point) and recompute the front on the
  measured values.

Hypervolume is computed on normalised objectives: accuracy as the error ``(100 - top1) / 100`` and
each cost scaled so that 0 is its smallest value in the space and 1 its budget (or its largest value
without a budget); the reference point is 1 on every axis. Everything random flows from ``seed``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .cost import CostModel
from .errors import ConfigError, UserError
from .io import atomic_write_json, atomic_write_text
from .pareto import (
    hypervolume,
    normalise,
    pareto_mask,
    pareto_ranks,
    plot_pareto,
    published_points,
    write_pareto_csv,
    write_pareto_json,
)
from .predictor import ArchDataset, ArchRecord, Predictor, _dataset_header, _JsonlAppender, check_space, spread_genes
from .space import Arch, SearchSpace

#: objective name -> value column (unit)
OBJECTIVES: dict[str, str] = {"mflops": "mflops", "params": "params_m", "latency": "latency_ms", "memory": "memory_mb"}
UNITS: dict[str, str] = {"mflops": "MFLOPs", "params_m": "M params", "latency_ms": "ms", "memory_mb": "MB"}
ACCURACY_SOURCES = ("predicted", "measured", "predicted+remeasure")

GeneFn = Callable[[np.ndarray], np.ndarray]


# =========================================================================== inputs
@dataclass(frozen=True)
class Budgets:
    """Hard upper limits; ``None`` means unconstrained."""

    max_mflops: float | None = None
    max_params_m: float | None = None
    max_latency_ms: float | None = None
    max_memory_mb: float | None = None

    def items(self) -> list[tuple[str, str, float]]:
        """``(name, column, limit)`` of every set budget."""
        cols = {"max_mflops": "mflops", "max_params_m": "params_m", "max_latency_ms": "latency_ms",
                "max_memory_mb": "memory_mb"}
        return [(k, cols[k], float(v)) for k, v in asdict(self).items() if v is not None]

    def validate(self) -> Budgets:
        for name, _, limit in self.items():
            if not math.isfinite(limit) or limit <= 0:
                raise ConfigError(f"budget {name} must be a positive number, got {limit}")
        return self


def check_objectives(objectives: Sequence[str]) -> tuple[str, ...]:
    """Validate cost objectives; raises :class:`ConfigError` listing the allowed ones."""
    out = tuple(str(o).strip().lower() for o in objectives if str(o).strip())
    bad = [o for o in out if o not in OBJECTIVES]
    if bad:
        raise ConfigError(f"unknown objective(s) {bad}; allowed: {list(OBJECTIVES)}")
    if not out:
        raise ConfigError(f"give at least one cost objective; allowed: {list(OBJECTIVES)}")
    return tuple(dict.fromkeys(out))


def parse_budget_points(text: str | Sequence[float] | None) -> tuple[float, ...]:
    """``"250,300,400"`` -> (250.0, 300.0, 400.0); each must be a positive number."""
    if text is None:
        return ()
    items = text.split(",") if isinstance(text, str) else list(text)
    out = []
    for item in items:
        if isinstance(item, str) and not item.strip():
            continue
        try:
            v = float(item)
        except ValueError:
            raise ConfigError(f"budget list must hold numbers separated by commas, got {item!r}") from None
        if not math.isfinite(v) or v <= 0:
            raise ConfigError(f"budget list values must be positive numbers, got {item!r}")
        out.append(v)
    return tuple(sorted(set(out)))


class CostEvaluator:
    """All cost columns of gene matrices: MFLOPs and params (analytic) always, latency and memory
    when their callables (``genes -> ms`` / ``genes -> MB``) are given."""

    def __init__(self, space: SearchSpace, num_classes: int = 1000, latency_fn: GeneFn | None = None,
                 memory_fn: GeneFn | None = None) -> None:
        self.space = space
        self.model = CostModel(space, num_classes)
        self.latency_fn, self.memory_fn = latency_fn, memory_fn

    @property
    def columns(self) -> tuple[str, ...]:
        cols = ["mflops", "params_m"]
        cols += ["latency_ms"] if self.latency_fn is not None else []
        cols += ["memory_mb"] if self.memory_fn is not None else []
        return tuple(cols)

    def __call__(self, genes: np.ndarray) -> dict[str, np.ndarray]:
        genes = np.atleast_2d(genes)
        flops, params = self.model.flops_and_params(genes)
        out = {"mflops": flops, "params_m": params / 1e6}
        if self.latency_fn is not None:
            out["latency_ms"] = _vector(self.latency_fn(genes), len(genes), "latency_fn")
        if self.memory_fn is not None:
            out["memory_mb"] = _vector(self.memory_fn(genes), len(genes), "memory_fn")
        return out


def _vector(values: Any, n: int, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.size != n:
        raise ValueError(f"{name} returned {arr.size} values for {n} archs")
    return arr


class MeasuredAccuracy:
    """Accuracy by evaluating archs one by one with ``evaluate_fn(arch) -> top-1 (%)``, each arch
    once; with ``cache_path`` the results also go to (and come from) a dataset JSONL."""

    def __init__(self, space: SearchSpace, evaluate_fn: Callable[[Arch], float], cache_path: str | Path | None = None,
                 num_classes: int = 1000) -> None:
        self.space, self.evaluate_fn = space, evaluate_fn
        self._cost = CostModel(space, num_classes)
        self._appender = None
        self.cache = ArchDataset(space, num_classes=num_classes)
        if cache_path is not None:
            p = Path(cache_path)
            if p.exists():
                self.cache = ArchDataset.load(p, space, num_classes)
            self._appender = _JsonlAppender(p, _dataset_header(space, num_classes))
        self.calls = 0

    def __call__(self, genes: np.ndarray) -> np.ndarray:
        out = []
        for g in np.atleast_2d(genes):
            arch = self.space.decode(g)
            rec = self.cache.get(arch)
            if rec is None:
                rec = self._measure(arch, g)
            out.append(rec.accuracy)
        return np.array(out, dtype=np.float64)

    def _measure(self, arch: Arch, genes: np.ndarray) -> ArchRecord:
        self.calls += 1
        f, p = self._cost.flops_and_params(genes[None, :])
        rec = ArchRecord(arch, float(self.evaluate_fn(arch)), float(f[0]), float(p[0]) / 1e6)
        self.cache.add(rec)
        if self._appender is not None:
            self._appender.append(rec.to_dict())
        return rec


# =========================================================================== archive + problem
class _Archive:
    """Every evaluated gene vector with its accuracy and cost columns (first evaluation wins)."""

    def __init__(self, columns: Sequence[str]) -> None:
        self.columns = tuple(columns)
        self.index: dict[bytes, int] = {}
        self.genes: list[np.ndarray] = []
        self.values: dict[str, list[float]] = {c: [] for c in ("accuracy", *self.columns)}

    def __len__(self) -> int:
        return len(self.genes)

    def add(self, genes: np.ndarray, values: dict[str, np.ndarray]) -> None:
        for i, g in enumerate(genes):
            key = g.tobytes()
            if key in self.index:
                continue
            self.index[key] = len(self.genes)
            self.genes.append(g.copy())
            for c, vals in self.values.items():
                vals.append(float(values[c][i]))

    def arrays(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        genes = np.stack(self.genes) if self.genes else np.zeros((0, 0), np.int64)
        return genes, {c: np.asarray(v, dtype=np.float64) for c, v in self.values.items()}


def _feasible(values: dict[str, np.ndarray], limits: Sequence[tuple[str, str, float]]) -> np.ndarray:
    n = len(next(iter(values.values())))
    ok = np.ones(n, dtype=bool)
    for _, col, limit in limits:
        ok &= values[col] <= limit
    if "accuracy" in values:
        ok &= np.isfinite(values["accuracy"])
    return ok


def _make_problem(search: _Search) -> Any:
    from pymoo.core.problem import Problem

    class NASProblem(Problem):
        """Genes with more than one choice are the variables; F = [-accuracy, costs...]; G = cost - budget."""

        def __init__(self) -> None:
            sizes = search.space.gene_sizes[search.var_idx]
            super().__init__(n_var=len(sizes), n_obj=1 + len(search.obj_cols), n_ieq_constr=len(search.limits),
                             xl=np.zeros(len(sizes)), xu=(sizes - 1).astype(float), vtype=int)

        def _evaluate(self, x: np.ndarray, out: dict, *args: Any, **kwargs: Any) -> None:
            values = search.evaluate(search.to_genes(x))
            out["F"] = search.objectives_matrix(values)
            if search.limits:
                out["G"] = np.column_stack([values[col] - limit for _, col, limit in search.limits])

    return NASProblem()


def _make_mutation(sizes: np.ndarray, prob_var: float) -> Any:
    from pymoo.core.mutation import Mutation

    class ResetMutation(Mutation):
        """Each gene, with probability ``prob_var``, moves to another of its choices."""

        def _do(self, problem: Any, X: np.ndarray, *args: Any, random_state: Any = None, **kwargs: Any) -> np.ndarray:
            X = np.rint(np.asarray(X, dtype=np.float64)).astype(np.int64)
            hit = random_state.random(X.shape) < prob_var
            shift = (random_state.random(X.shape) * (sizes - 1)).astype(np.int64) + 1
            return np.where(hit, (X + shift) % sizes, X)

    return ResetMutation(prob=1.0)


# =========================================================================== search
@dataclass
class SearchResult:
    """The outcome of a search: Pareto entries (file contract), winners per budget point,
    hypervolume with its reference, per-generation history and settings."""

    pareto: list[dict[str, Any]]
    budget_winners: list[dict[str, Any]] = field(default_factory=list)
    hypervolume: float = 0.0
    hypervolume_reference: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    evaluated: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    n_evaluations: int = 0
    n_measured: int = 0
    settings: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary (written as ``summary.json``, printed by ``search --json``)."""
        return {
            "pareto_size": len(self.pareto),
            "hypervolume": self.hypervolume,
            "hypervolume_reference": self.hypervolume_reference,
            "budget_winners": self.budget_winners,
            "n_evaluations": self.n_evaluations,
            "n_measured": self.n_measured,
            "settings": self.settings,
        }


class _Search:
    """State of one search run (the pymoo problem calls back into it)."""

    def __init__(self, space: SearchSpace, accuracy_fn: GeneFn, costs: CostEvaluator, objectives: tuple[str, ...],
                 limits: list[tuple[str, str, float]]) -> None:
        self.space, self.accuracy_fn, self.costs = space, accuracy_fn, costs
        self.obj_cols = tuple(OBJECTIVES[o] for o in objectives)
        self.limits = limits
        self.var_idx = np.flatnonzero(space.gene_sizes > 1)
        self.archive = _Archive(costs.columns)
        self.bounds: dict[str, tuple[float, float]] = {}

    def to_genes(self, x: np.ndarray) -> np.ndarray:
        x = np.rint(np.atleast_2d(np.asarray(x, dtype=np.float64))).astype(np.int64)
        genes = np.zeros((len(x), self.space.num_genes), dtype=np.int64)
        genes[:, self.var_idx] = np.clip(x, 0, self.space.gene_sizes[self.var_idx] - 1)
        return genes

    def evaluate(self, genes: np.ndarray) -> dict[str, np.ndarray]:
        values = self.costs(genes)
        values["accuracy"] = _vector(self.accuracy_fn(genes), len(genes), "accuracy function")
        self.archive.add(genes, values)
        return values

    def objectives_matrix(self, values: dict[str, np.ndarray]) -> np.ndarray:
        return np.column_stack([-values["accuracy"]] + [values[c] for c in self.obj_cols])

    def normalised(self, values: dict[str, np.ndarray]) -> np.ndarray:
        err = (100.0 - values["accuracy"]) / 100.0
        cols = [normalise(values[c][:, None], [self.bounds[c][0]], [self.bounds[c][1]])[:, 0] for c in self.obj_cols]
        return np.column_stack([err] + cols)

    def front_hv(self, values: dict[str, np.ndarray]) -> float:
        if not len(values["accuracy"]):
            return 0.0
        F = self.normalised(values)
        return hypervolume(F[pareto_mask(F)], np.ones(F.shape[1]))


def check_feasible(space: SearchSpace, costs: CostEvaluator, limits: Sequence[tuple[str, str, float]],
                   rng: np.random.Generator, n_sample: int = 2000) -> None:
    """Raise :class:`UserError` when neither the smallest subnet nor any of ``n_sample`` random archs
    meets every budget, naming the budgets the smallest subnet breaks."""
    if not limits:
        return
    min_genes = np.zeros((1, space.num_genes), np.int64)
    pool = np.concatenate([min_genes, space.sample_genes(rng, n_sample)])
    values = costs(pool)
    if _feasible(values, limits).any():
        return
    parts = []
    for name, col, limit in limits:
        low = float(values[col].min())
        if values[col][0] > limit or low > limit:
            parts.append(f"{name}={limit:g} (the smallest subnet has {values[col][0]:.2f} {UNITS[col]}"
                         + (f", the lowest found {low:.2f})" if low < values[col][0] else ")"))
    detail = "; ".join(parts) or ", ".join(f"{n}={v:g}" for n, _, v in limits) + " together"
    raise UserError(f"no arch meets {detail}")


def _initial_population(search: _Search, pop_size: int, rng: np.random.Generator) -> np.ndarray:
    """Min and max archs plus a FLOPs-spread pool, feasible ones first (only variable genes)."""
    pool = spread_genes(search.space, pop_size * 10, rng, search.costs.model)
    values = search.costs(pool)
    ok = _feasible(values, search.limits)
    violation = np.zeros(len(pool))
    for _, col, lim in search.limits:
        violation += np.maximum(values[col] - lim, 0) / lim
    order = np.concatenate([np.flatnonzero(ok), np.flatnonzero(~ok)[np.argsort(violation[~ok], kind="stable")]])
    return pool[order[:pop_size]][:, search.var_idx]


def _cost_bounds(search: _Search, rng: np.random.Generator) -> dict[str, tuple[float, float]]:
    sample = np.concatenate([np.zeros((1, search.space.num_genes), np.int64), search.space.gene_sizes[None] - 1,
                             search.space.sample_genes(rng, 256)])
    values = search.costs(sample)
    limit = {col: lim for _, col, lim in search.limits}
    return {c: (float(values[c].min()), float(limit.get(c, values[c].max()))) for c in search.costs.columns}


def _check_sources(accuracy_source: str, accuracy_fn: GeneFn | None, evaluate_fn: Callable | None) -> None:
    if accuracy_source not in ACCURACY_SOURCES:
        raise ConfigError(f"unknown accuracy source {accuracy_source!r}; allowed: {list(ACCURACY_SOURCES)}")
    if accuracy_source == "measured" and evaluate_fn is None and accuracy_fn is None:
        raise ConfigError("accuracy source 'measured' needs an evaluate function (a supernet checkpoint)")
    if accuracy_source != "measured" and accuracy_fn is None:
        raise ConfigError(f"accuracy source '{accuracy_source}' needs an accuracy predictor")
    if accuracy_source == "predicted+remeasure" and evaluate_fn is None:
        raise ConfigError("accuracy source 'predicted+remeasure' needs an evaluate function (a supernet checkpoint)")


def _check_columns(costs: CostEvaluator, objectives: Sequence[str], limits: Sequence[tuple[str, str, float]],
                   budget_metric: str) -> None:
    need = [(f"objective '{o}'", OBJECTIVES[o]) for o in objectives]
    need += [(f"budget {n}", c) for n, c, _ in limits] + [(f"budget list of '{budget_metric}'", OBJECTIVES[budget_metric])]
    for what, col in need:
        if col not in costs.columns:
            src = "a latency table (latency_fn)" if col == "latency_ms" else "a memory model (memory_fn)"
            raise ConfigError(f"{what} needs {src}, which was not given")


def run_search(
    space: SearchSpace,
    accuracy_fn: GeneFn | None = None,
    *,
    objectives: Sequence[str] = ("mflops",),
    budgets: Budgets = Budgets(),
    budget_points: Sequence[float] = (),
    budget_metric: str = "mflops",
    accuracy_source: str = "predicted",
    evaluate_fn: Callable[[Arch], float] | None = None,
    measured_cache: str | Path | None = None,
    remeasure_top: int = 10,
    latency_fn: GeneFn | None = None,
    memory_fn: GeneFn | None = None,
    num_classes: int = 1000,
    pop_size: int = 50,
    generations: int = 30,
    mutation_prob: float = 0.1,
    seed: int = 0,
    progress: bool = False,
    out_dir: str | Path | None = None,
    show_published: bool = False,
) -> SearchResult:
    """NSGA-II search of ``space``: maximise accuracy, minimise ``objectives`` under ``budgets``.

    ``accuracy_fn`` maps a gene matrix to top-1 (%) (a :class:`Predictor` works); for
    ``accuracy_source="measured"`` pass ``evaluate_fn(arch)`` instead (wrapped in
    :class:`MeasuredAccuracy`). ``budget_points`` along ``budget_metric`` (an objective name) each get
    their best arch. With ``out_dir`` the files are written (see :func:`write_search_outputs`).
    """
    objectives = check_objectives(objectives)
    if budget_metric not in OBJECTIVES:
        raise ConfigError(f"unknown budget metric {budget_metric!r}; allowed: {list(OBJECTIVES)}")
    _check_sources(accuracy_source, accuracy_fn, evaluate_fn)
    if pop_size < 4 or generations < 1:
        raise ConfigError(f"pop_size must be >= 4 and generations >= 1, got {pop_size} and {generations}")
    if not 0.0 < mutation_prob <= 1.0:
        raise ConfigError(f"mutation_prob must be in (0, 1], got {mutation_prob}")
    limits = budgets.validate().items()
    costs = CostEvaluator(space, num_classes, latency_fn, memory_fn)
    _check_columns(costs, objectives, limits, budget_metric)
    points = parse_budget_points(budget_points)
    rng = np.random.default_rng(seed)
    check_feasible(space, costs, limits, rng)
    if points:
        col = OBJECTIVES[budget_metric]
        check_feasible(space, costs, list(limits) + [(f"max_{col} (budget list)", col, points[0])], rng)
    measured = None
    if evaluate_fn is not None and accuracy_source != "predicted":
        measured = MeasuredAccuracy(space, evaluate_fn, measured_cache, num_classes)
    search_fn = measured if accuracy_source == "measured" and accuracy_fn is None else accuracy_fn
    assert search_fn is not None
    search = _Search(space, search_fn, costs, objectives, limits)
    search.bounds = _cost_bounds(search, rng)
    history = _run_nsga2(search, pop_size, generations, mutation_prob, seed, rng, progress)
    result = _collect(search, accuracy_source, measured, remeasure_top, points, budget_metric)
    result.history = history
    result.settings = {
        "space": space.name, "objectives": list(objectives), "budgets": asdict(budgets),
        "budget_points": list(points), "budget_metric": budget_metric, "accuracy_source": accuracy_source,
        "remeasure_top": remeasure_top, "pop_size": pop_size, "generations": generations,
        "mutation_prob": mutation_prob, "seed": seed, "num_classes": num_classes,
    }
    if out_dir is not None:
        write_search_outputs(out_dir, result, show_published=show_published)
    return result


def _run_nsga2(search: _Search, pop_size: int, generations: int, mutation_prob: float, seed: int,
               rng: np.random.Generator, progress: bool) -> list[dict[str, Any]]:
    from pymoo.algorithms.moo.nsga2 import NSGA2
    from pymoo.core.callback import Callback
    from pymoo.operators.crossover.ux import UniformCrossover
    from pymoo.optimize import minimize
    from tqdm.auto import tqdm

    history: list[dict[str, Any]] = []
    bar = tqdm(total=generations, desc="search", disable=not progress, leave=False)

    class Track(Callback):
        def notify(self, algorithm: Any) -> None:
            history.append(_generation_stats(search, int(algorithm.n_gen)))
            bar.update(1)
            bar.set_postfix(front=history[-1]["front_size"], best=f"{history[-1]['best_accuracy']:.2f}")

    sizes = search.space.gene_sizes[search.var_idx]
    algorithm = NSGA2(
        pop_size=pop_size,
        sampling=_initial_population(search, pop_size, rng).astype(np.float64),
        crossover=UniformCrossover(prob=0.9),
        mutation=_make_mutation(sizes, mutation_prob),
        eliminate_duplicates=True,
    )
    try:
        minimize(_make_problem(search), algorithm, ("n_gen", generations), seed=seed, callback=Track(),
                 verbose=False)
    finally:
        bar.close()
    return history


def _generation_stats(search: _Search, gen: int) -> dict[str, Any]:
    _, values = search.archive.arrays()
    ok = _feasible(values, search.limits)
    feas = {c: v[ok] for c, v in values.items()}
    hv = search.front_hv(feas)
    front = int(pareto_mask(search.objectives_matrix(feas)).sum()) if ok.any() else 0
    best = float(feas["accuracy"].max()) if ok.any() else float("nan")
    return {"generation": gen, "evaluations": len(search.archive), "feasible": int(ok.sum()), "front_size": front,
            "best_accuracy": best, "hypervolume": hv}


# =========================================================================== results
def _entries(search: _Search, genes: np.ndarray, values: dict[str, np.ndarray], idx: np.ndarray, source: str,
             predicted: np.ndarray | None = None) -> list[dict[str, Any]]:
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
        out.append(e)
    return sorted(out, key=lambda e: (e["mflops"], -e["accuracy"]))


def _remeasure_candidates(search: _Search, values: dict[str, np.ndarray], top: int, points: Sequence[float],
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


def _with_known_measurements(search: _Search, measured: MeasuredAccuracy, genes: np.ndarray,
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
    ok = _feasible(extra_values, search.limits)
    if not ok.any():
        return genes, values, predicted
    extra, extra_values = extra[ok], {c: v[ok] for c, v in extra_values.items()}
    extra_pred = np.asarray(search.accuracy_fn(extra), dtype=np.float64)
    merged = {c: np.concatenate([values[c], extra_values[c]]) for c in values}
    return np.concatenate([genes, extra]), merged, np.concatenate([predicted, extra_pred])


def _collect(search: _Search, source: str, measured: MeasuredAccuracy | None, top: int,
             points: Sequence[float], metric: str) -> SearchResult:
    genes, values = search.archive.arrays()
    ok = _feasible(values, search.limits)  # every output honours every budget
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
        values["accuracy"] = measured(genes)
        genes, values, predicted = _with_known_measurements(search, measured, genes, values, predicted)
        label = "measured"
    front = np.flatnonzero(pareto_mask(search.objectives_matrix(values))) if len(genes) else np.zeros(0, np.int64)
    pareto = _entries(search, genes, values, front, label, predicted)
    winners = []
    for b in points:
        under = np.flatnonzero(values[col] <= b)
        best = under[np.argsort(-values["accuracy"][under], kind="stable")][:1]
        entry = _entries(search, genes, values, best, label, predicted)
        winners.append({"metric": metric, "budget": b, **(entry[0] if entry else {"arch": None})})
    hv = search.front_hv({c: v[front] for c, v in values.items()})
    reference = {
        "axes": ["error=(100-accuracy)/100"] + [f"{c} scaled: {lo:g} -> 0, {hi:g} -> 1"
                                                for c in search.obj_cols for lo, hi in [search.bounds[c]]],
        "reference_point": [1.0] * (1 + len(search.obj_cols)),
        "bounds": {c: list(search.bounds[c]) for c in search.obj_cols},
    }
    return SearchResult(pareto, winners, hv, reference, evaluated=evaluated, n_evaluations=len(search.archive),
                        n_measured=measured.calls if measured is not None else 0)


def search_with_predictor(space: SearchSpace, predictor: Predictor, **kwargs: Any) -> SearchResult:
    """:func:`run_search` with a predictor's accuracy (checks that it was fitted on ``space``)."""
    check_space(predictor, space)
    kwargs.setdefault("num_classes", predictor.num_classes)
    return run_search(space, predictor.predict_genes, **kwargs)


def search_measured(space: SearchSpace, evaluate_fn: Callable[[Arch], float], **kwargs: Any) -> SearchResult:
    """:func:`run_search` on measured accuracy, ``evaluate_fn(arch) -> top-1 (%)`` (e.g. a supernet
    checkpoint evaluated with BN recalibration), each arch measured once."""
    kwargs["accuracy_source"] = "measured"
    return run_search(space, None, evaluate_fn=evaluate_fn, **kwargs)


# =========================================================================== files
def write_search_outputs(out_dir: str | Path, result: SearchResult, show_published: bool = False) -> dict[str, Path]:
    """Write ``pareto.json``, ``pareto.csv``, ``pareto.png``, ``summary.json``, ``metrics.jsonl``
    (one line per generation) and ``config.yaml`` (the settings) into ``out_dir``, each atomically."""
    import json

    import yaml

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    settings = result.settings
    published = published_points() if show_published else ()
    title = f"{settings.get('space', '')} Pareto front ({'measured' if 'measure' in settings.get('accuracy_source', '') else 'predicted'} accuracy)"
    files = {
        "pareto.json": write_pareto_json(out / "pareto.json", result.pareto),
        "pareto.csv": write_pareto_csv(out / "pareto.csv", result.pareto),
        "pareto.png": plot_pareto(out / "pareto.png", result.pareto, result.evaluated, result.budget_winners,
                                  published, (settings.get("budgets") or {}).get("max_mflops"), title,
                                  "evaluated" if settings.get("accuracy_source") == "measured"
                                  else "evaluated (predicted accuracy)"),
        "summary.json": atomic_write_json(out / "summary.json", _json_safe(result.summary())),
        "metrics.jsonl": atomic_write_text(out / "metrics.jsonl",
                                           "".join(json.dumps(_json_safe(h)) + "\n" for h in result.history)),
        "config.yaml": atomic_write_text(out / "config.yaml", yaml.safe_dump({"search": settings}, sort_keys=False)),
    }
    return files


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, np.generic):
        return _json_safe(obj.item())
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj
