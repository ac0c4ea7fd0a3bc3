"""The stage-2 problem: cost columns of gene matrices, the archive of evaluated archs, budgets as
constraints, and the pymoo problem and mutation of NSGA-II.

Maximise accuracy and minimise one or more costs (``mflops``, ``params``, ``latency``, ``memory``)
over the gene vectors of a space, under hard budgets that are pymoo constraints (``G <= 0``) and
are checked again on output. Hypervolume is computed on normalised objectives: accuracy as the
error ``(100 - top1) / 100`` and each cost scaled so that 0 is its smallest value in the space and
1 its budget (or its largest value without a budget); the reference point is 1 on every axis.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from pymoo.core.mutation import Mutation
from pymoo.core.problem import Problem
from pymoo.core.repair import Repair

from ..config import OBJECTIVES
from ..costs import CostModel
from ..errors import UserError
from ..space import SearchSpace
from .pareto import front_hypervolume, normalised_objectives

UNITS: dict[str, str] = {"mflops": "MFLOPs", "params_m": "M params", "latency_ms": "ms", "memory_mb": "MB"}

GeneFn = Callable[[np.ndarray], np.ndarray]


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
            out["latency_ms"] = as_vector(self.latency_fn(genes), len(genes), "latency_fn")
        if self.memory_fn is not None:
            out["memory_mb"] = as_vector(self.memory_fn(genes), len(genes), "memory_fn")
        return out


def as_vector(values: Any, n: int, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.size != n:
        raise ValueError(f"{name} returned {arr.size} values for {n} archs")
    return arr


class Archive:
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


def feasible(values: dict[str, np.ndarray], limits: Sequence[tuple[str, str, float]]) -> np.ndarray:
    n = len(next(iter(values.values())))
    ok = np.ones(n, dtype=bool)
    for _, col, limit in limits:
        ok &= values[col] <= limit
    if "accuracy" in values:
        ok &= np.isfinite(values["accuracy"])
    return ok


def make_problem(search: SearchState) -> Problem:
    """The pymoo problem of a search (it calls back into ``search`` to evaluate and archive)."""

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


def make_mutation(sizes: np.ndarray, prob_var: float) -> Mutation:
    """Each gene, with probability ``prob_var``, moves to another of its choices."""

    class ResetMutation(Mutation):
        """Each gene, with probability ``prob_var``, moves to another of its choices."""

        def _do(self, problem: Any, X: np.ndarray, *args: Any, random_state: Any = None, **kwargs: Any) -> np.ndarray:
            X = np.rint(np.asarray(X, dtype=np.float64)).astype(np.int64)
            hit = random_state.random(X.shape) < prob_var
            shift = (random_state.random(X.shape) * (sizes - 1)).astype(np.int64) + 1
            return np.where(hit, (X + shift) % sizes, X)

    return ResetMutation(prob=1.0)


def repair_to_budget(search: SearchState, genes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``genes`` with every arch over a budget moved towards the smallest subnet until it meets them all:
    one variable gene above its smallest choice, drawn with ``rng``, drops to its smallest choice at a time
    (archs that meet every budget are returned unchanged, and nothing is drawn for them). Under a tight
    budget the population then holds feasible archs (pymoo gives infeasible individuals no rank)."""
    genes = np.array(genes, dtype=np.int64, copy=True)
    if not search.limits or not len(genes):
        return genes
    bad = np.flatnonzero(~_meets(search, genes))
    while len(bad):
        sub = genes[bad][:, search.var_idx]
        movable = sub > 0
        stuck = ~movable.any(axis=1)  # the smallest subnet: nothing left to move
        bad, sub, movable = bad[~stuck], sub[~stuck], movable[~stuck]
        if not len(bad):
            break
        pick = np.argmax(rng.random(movable.shape) * movable, axis=1)  # a random gene above its smallest choice
        genes[bad, search.var_idx[pick]] = 0
        bad = bad[~_meets(search, genes[bad])]
    return genes


def _meets(search: SearchState, genes: np.ndarray) -> np.ndarray:
    """Whether each arch meets every cost budget."""
    values = search.costs(genes)
    ok = np.ones(len(genes), dtype=bool)
    for _, col, limit in search.limits:
        ok &= values[col] <= limit
    return ok


def make_repair(search: SearchState, rng: np.random.Generator) -> Repair:
    """The pymoo repair of a search: offspring over a budget moved towards the smallest subnet
    (:func:`repair_to_budget`)."""

    class BudgetRepair(Repair):
        """Archs over a budget drop one gene at a time to its smallest choice until they meet every budget."""

        def _do(self, problem: Any, X: np.ndarray, **kwargs: Any) -> np.ndarray:
            genes = repair_to_budget(search, search.to_genes(X), rng)
            return genes[:, search.var_idx].astype(np.float64)

    return BudgetRepair()


class SearchState:
    """State of one search run (the pymoo problem calls back into it)."""

    def __init__(self, space: SearchSpace, accuracy_fn: GeneFn, costs: CostEvaluator, objectives: Sequence[str],
                 limits: list[tuple[str, str, float]]) -> None:
        self.space, self.accuracy_fn, self.costs = space, accuracy_fn, costs
        self.obj_cols = tuple(OBJECTIVES[o] for o in objectives)
        self.limits = limits
        self.var_idx = np.flatnonzero(space.gene_sizes > 1)
        self.archive = Archive(costs.columns)
        self.bounds: dict[str, tuple[float, float]] = {}

    def to_genes(self, x: np.ndarray) -> np.ndarray:
        x = np.rint(np.atleast_2d(np.asarray(x, dtype=np.float64))).astype(np.int64)
        genes = np.zeros((len(x), self.space.num_genes), dtype=np.int64)
        genes[:, self.var_idx] = np.clip(x, 0, self.space.gene_sizes[self.var_idx] - 1)
        return genes

    def evaluate(self, genes: np.ndarray) -> dict[str, np.ndarray]:
        values = self.costs(genes)
        values["accuracy"] = as_vector(self.accuracy_fn(genes), len(genes), "accuracy function")
        self.archive.add(genes, values)
        return values

    def objectives_matrix(self, values: dict[str, np.ndarray]) -> np.ndarray:
        return np.column_stack([-values["accuracy"]] + [values[c] for c in self.obj_cols])

    def normalised(self, values: dict[str, np.ndarray]) -> np.ndarray:
        return normalised_objectives(values["accuracy"], [values[c] for c in self.obj_cols],
                                     [self.bounds[c] for c in self.obj_cols])

    def front_hv(self, values: dict[str, np.ndarray]) -> float:
        return front_hypervolume(values["accuracy"], [values[c] for c in self.obj_cols],
                                 [self.bounds[c] for c in self.obj_cols])


def check_feasible(space: SearchSpace, costs: CostEvaluator, limits: Sequence[tuple[str, str, float]],
                   rng: np.random.Generator, n_sample: int = 2000) -> None:
    """Raise :class:`UserError` when neither the smallest subnet nor any of ``n_sample`` random archs
    meets every budget, naming the budgets the smallest subnet breaks."""
    if not limits:
        return
    min_genes = np.zeros((1, space.num_genes), np.int64)
    pool = np.concatenate([min_genes, space.sample_genes(rng, n_sample)])
    values = costs(pool)
    if feasible(values, limits).any():
        return
    parts = []
    for name, col, limit in limits:
        low = float(values[col].min())
        if values[col][0] > limit or low > limit:
            parts.append(f"{name}={limit:g} (the smallest subnet has {values[col][0]:.2f} {UNITS[col]}"
                         + (f", the lowest found {low:.2f})" if low < values[col][0] else ")"))
    detail = "; ".join(parts) or ", ".join(f"{n}={v:g}" for n, _, v in limits) + " together"
    raise UserError(f"no arch meets {detail}")
