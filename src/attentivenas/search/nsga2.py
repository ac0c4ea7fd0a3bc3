"""Stage 2: multi-objective evolutionary search (pymoo NSGA-II) of a trained supernet.

:func:`run_search` takes a :class:`~attentivenas.config.SearchConfig` (objectives, budgets, accuracy
source, evolution, seed) and the callables the config cannot hold: accuracy of gene matrices (a
predictor), ``evaluate_fn(arch) -> top-1`` (measured accuracy), latency and memory of gene matrices.

Accuracy sources:

* ``predicted``: an accuracy predictor (:class:`attentivenas.accuracy.Predictor` is such a callable);
* ``measured``: :class:`MeasuredAccuracy` wraps ``evaluate_fn`` with a cache, optionally a dataset
  JSONL on disk;
* ``predicted+remeasure``: search with the predictor, then measure the best candidates (the first
  non-dominated fronts and the best arch under each budget point) and recompute the front on the
  measured values.

Everything random flows from ``config.seed``.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.callback import Callback
from pymoo.operators.crossover.ux import UniformCrossover
from tqdm.auto import tqdm

from ..accuracy import Predictor, check_space, spread_genes
from ..config import OBJECTIVES, SearchConfig
from ..distributed import is_main, world_size
from ..errors import ConfigError
from ..io import OutputLock
from ..space import Arch, SearchSpace
from .files import write_search_outputs
from .measured import MeasuredAccuracy
from .pareto import pareto_mask
from .problem import (
    CostEvaluator,
    GeneFn,
    SearchState,
    check_feasible,
    feasible,
    make_mutation,
    make_problem,
    make_repair,
    repair_to_budget,
)
from .results import SearchResult, collect
from .state import fingerprint, load_state, restore_algorithm, restore_archive, save_state


def resolve_source(source: str | None, accuracy_fn: GeneFn | None, evaluate_fn: Callable | None) -> str:
    """The accuracy source to use: the configured one, or the one the given callables allow
    (both: ``predicted+remeasure``; only ``evaluate_fn``: ``measured``; only a predictor: ``predicted``),
    checked against what it needs."""
    if source is None:
        if accuracy_fn is not None:
            source = "predicted+remeasure" if evaluate_fn is not None else "predicted"
        else:
            source = "measured"
    if source == "measured" and evaluate_fn is None and accuracy_fn is None:
        raise ConfigError("accuracy source 'measured' needs an evaluate function (a supernet checkpoint)")
    if source != "measured" and accuracy_fn is None:
        raise ConfigError(f"accuracy source '{source}' needs an accuracy predictor")
    if source == "predicted+remeasure" and evaluate_fn is None:
        raise ConfigError("accuracy source 'predicted+remeasure' needs an evaluate function (a supernet checkpoint)")
    return source


def _check_columns(costs: CostEvaluator, config: SearchConfig) -> None:
    need = [(f"objective '{o}'", OBJECTIVES[o]) for o in config.objectives]
    need += [(f"budget {n}", c) for n, c, _ in config.budgets.limits()]
    need += [(f"budget list of '{config.budgets.metric}'", OBJECTIVES[config.budgets.metric])]
    for what, col in need:
        if col not in costs.columns:
            src = "a latency table (latency_fn)" if col == "latency_ms" else "a memory model (memory_fn)"
            raise ConfigError(f"{what} needs {src}, which was not given")


def run_search(
    space: SearchSpace,
    config: SearchConfig,
    accuracy_fn: GeneFn | None = None,
    *,
    evaluate_fn: Callable[[Arch], float] | None = None,
    latency_fn: GeneFn | None = None,
    memory_fn: GeneFn | None = None,
    num_classes: int = 1000,
    measured_cache: str | Path | None = None,
    progress: bool = False,
    out_dir: str | Path | None = None,
    state_path: str | Path | None = None,
    measured: MeasuredAccuracy | None = None,
    log: Callable[[str], None] | None = None,
    int8: MeasuredAccuracy | None = None,
) -> SearchResult:
    """NSGA-II search of ``space`` as ``config`` says: maximise accuracy, minimise the objectives
    under the budgets. ``accuracy_fn`` maps a gene matrix to top-1 (%); ``evaluate_fn(arch)`` measures
    one arch (wrapped in :class:`MeasuredAccuracy`, cached in ``measured_cache`` when given; or pass
    ``measured`` itself). With ``out_dir`` the files are written (see :func:`write_search_outputs`;
    rank 0 only under a process group). With ``state_path`` the evolution is checkpointed there after
    every generation and continues from it (see :mod:`attentivenas.search.state`). ``log`` receives
    what will be measured and the time estimates. ``int8`` (the INT8 accuracy of a ``precision: int8``
    search) measures the best candidates and budget winners again quantized, and the front is built on
    it (see :func:`~attentivenas.search.results.collect`)."""
    with OutputLock(out_dir, "search folder") if out_dir is not None and is_main() else nullcontext():
        return _run_search(space, config, accuracy_fn, evaluate_fn, latency_fn, memory_fn, num_classes,
                           measured_cache, progress, out_dir, state_path, measured, log, int8)


def _run_search(space: SearchSpace, config: SearchConfig, accuracy_fn: GeneFn | None,
                evaluate_fn: Callable[[Arch], float] | None, latency_fn: GeneFn | None, memory_fn: GeneFn | None,
                num_classes: int, measured_cache: str | Path | None, progress: bool,
                out_dir: str | Path | None, state_path: str | Path | None = None,
                measured: MeasuredAccuracy | None = None, log: Callable[[str], None] | None = None,
                int8: MeasuredAccuracy | None = None) -> SearchResult:
    if measured is not None and evaluate_fn is None:
        evaluate_fn = measured.evaluate_fn
    source = resolve_source(config.accuracy.source, accuracy_fn, evaluate_fn)
    config = config.model_copy(update={"accuracy": config.accuracy.model_copy(update={"source": source})})
    limits = config.budgets.limits()
    costs = CostEvaluator(space, num_classes, latency_fn, memory_fn)
    _check_columns(costs, config)
    points = tuple(config.budgets.points)
    rng = np.random.default_rng(config.seed)
    check_feasible(space, costs, limits, rng)
    if points:
        col = OBJECTIVES[config.budgets.metric]
        check_feasible(space, costs, list(limits) + [(f"max_{col} (budget list)", col, points[0])], rng)
    if measured is None and evaluate_fn is not None and source != "predicted":
        measured = MeasuredAccuracy(space, evaluate_fn, measured_cache, num_classes, progress=progress, log=log)
    if source == "predicted":
        measured = None
    if int8 is not None and measured is None:
        raise ConfigError("precision int8 measures the best candidates again quantized: it needs measured accuracy "
                          "(a supernet checkpoint, accuracy source measured or predicted+remeasure)")
    exhaustive = source == "measured" and accuracy_fn is None
    search_fn = measured if exhaustive else accuracy_fn
    assert search_fn is not None
    if exhaustive and log is not None:
        evo = config.evolution
        log(f"measuring up to {evo.pop_size * evo.generations} subnets (population {evo.pop_size} x "
            f"{evo.generations} generations, each distinct arch once{f', on {world_size()} ranks' if world_size() > 1 else ''})")
    search = SearchState(space, search_fn, costs, config.objectives, limits)
    search.bounds = _cost_bounds(search, rng)
    history = _run_nsga2(search, config, rng, progress, Path(state_path) if state_path is not None else None,
                         measured if exhaustive else None, log)
    result = collect(search, source, measured, config.accuracy.remeasure_top, points, config.budgets.metric, int8)
    result.history = history
    result.config, result.space_name, result.num_classes = config, space.name, num_classes
    for m in (measured, int8):
        if m is not None:
            m.finish()
    if out_dir is not None and is_main():
        write_search_outputs(out_dir, result)
    return result


def _initial_population(search: SearchState, pop_size: int, rng: np.random.Generator) -> np.ndarray:
    """Min and max archs plus a FLOPs-spread pool, feasible ones first (only variable genes); under a
    tight budget the smallest subnet leads, and archs over a budget are repaired towards it
    (:func:`~.problem.repair_to_budget`), so the first population meets the budgets."""
    pool = spread_genes(search.space, pop_size * 10, rng, search.costs.model)
    values = search.costs(pool)
    ok = feasible(values, search.limits)
    violation = np.zeros(len(pool))
    for _, col, lim in search.limits:
        violation += np.maximum(values[col] - lim, 0) / lim
    order = np.concatenate([np.flatnonzero(ok), np.flatnonzero(~ok)[np.argsort(violation[~ok], kind="stable")]])
    chosen = pool[order[:pop_size]]
    if search.limits and not ok.all():
        chosen = np.concatenate([np.zeros((1, search.space.num_genes), np.int64), chosen[: pop_size - 1]])
        chosen = repair_to_budget(search, chosen, rng)
    return chosen[:, search.var_idx]


def _cost_bounds(search: SearchState, rng: np.random.Generator) -> dict[str, tuple[float, float]]:
    sample = np.concatenate([np.zeros((1, search.space.num_genes), np.int64), search.space.gene_sizes[None] - 1,
                             search.space.sample_genes(rng, 256)])
    values = search.costs(sample)
    limit = {col: lim for _, col, lim in search.limits}
    return {c: (float(values[c].min()), float(limit.get(c, values[c].max()))) for c in search.costs.columns}


def _run_nsga2(search: SearchState, config: SearchConfig, rng: np.random.Generator, progress: bool,
               state_path: Path | None = None, measured: MeasuredAccuracy | None = None,
               log: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    evo = config.evolution
    history: list[dict[str, Any]] = []
    fp = fingerprint(config, {"space": search.space.to_dict(), "columns": list(search.costs.columns)})
    bar = tqdm(total=evo.generations, desc="search", disable=not progress or not is_main(), leave=False)

    class Track(Callback):
        def notify(self, algorithm: Any) -> None:
            history.append(_generation_stats(search, int(algorithm.n_gen)))
            if state_path is not None:
                save_state(state_path, algorithm, search, rng, history, fp)
            bar.update(1)
            bar.set_postfix(front=history[-1]["front_size"], best=f"{history[-1]['best_accuracy']:.2f}")

    sizes = search.space.gene_sizes[search.var_idx]
    algorithm = NSGA2(
        pop_size=evo.pop_size,
        sampling=_initial_population(search, evo.pop_size, rng).astype(np.float64),
        crossover=UniformCrossover(prob=evo.crossover_prob),
        mutation=make_mutation(sizes, evo.mutation_prob),
        repair=make_repair(search, rng),
        eliminate_duplicates=True,
    )
    algorithm.setup(make_problem(search), termination=("n_gen", evo.generations), seed=config.seed, callback=Track(),
                    verbose=False)
    state = load_state(state_path, fp, log, widths=(len(search.var_idx), search.space.num_genes),
                       generations=evo.generations)
    if state is not None and not _matches(search, state):
        if log is not None:
            log(f"{state_path}: its population's accuracy differs from this run's (another predictor or "
                "checkpoint?); the evolution starts again")
        state = None
    if state is not None:
        restore_archive(search, state)
        if measured is not None:
            measured.mark_used(state["archive_genes"])
        history.extend(state["meta"]["history"])
        done = restore_algorithm(algorithm, state, rng)
        bar.update(min(done, evo.generations))
        if log is not None:
            log(f"continuing the search after generation {done} ({state_path})")
    try:
        while algorithm.has_next():
            algorithm.next()
    finally:
        bar.close()
    return history


def _matches(search: SearchState, state: dict[str, Any]) -> bool:
    """Whether the checkpoint's population has the accuracy this run gives it (measured archs come
    from the cache: nothing is measured again)."""
    x = state["pop_x"]
    if not len(x):
        return False
    genes = search.to_genes(x)
    values = search.costs(genes)
    values["accuracy"] = np.asarray(search.accuracy_fn(genes), dtype=np.float64)
    return bool(np.array_equal(search.objectives_matrix(values), state["pop_f"]))


def _generation_stats(search: SearchState, gen: int) -> dict[str, Any]:
    _, values = search.archive.arrays()
    ok = feasible(values, search.limits)
    feas = {c: v[ok] for c, v in values.items()}
    hv = search.front_hv(feas)
    front = int(pareto_mask(search.objectives_matrix(feas)).sum()) if ok.any() else 0
    best = float(feas["accuracy"].max()) if ok.any() else float("nan")
    return {"generation": gen, "evaluations": len(search.archive), "feasible": int(ok.sum()), "front_size": front,
            "best_accuracy": best, "hypervolume": hv}


def search_with_predictor(space: SearchSpace, predictor: Predictor, config: SearchConfig, **kwargs: Any) -> SearchResult:
    """:func:`run_search` with a predictor's accuracy (checks that it was fitted on ``space``)."""
    check_space(predictor, space)
    kwargs.setdefault("num_classes", predictor.num_classes)
    return run_search(space, config, predictor.predict_genes, **kwargs)


def search_measured(space: SearchSpace, evaluate_fn: Callable[[Arch], float], config: SearchConfig,
                    **kwargs: Any) -> SearchResult:
    """:func:`run_search` on measured accuracy, ``evaluate_fn(arch) -> top-1 (%)`` (e.g. a supernet
    checkpoint evaluated with BN recalibration), each arch measured once."""
    config = config.model_copy(update={"accuracy": config.accuracy.model_copy(update={"source": "measured"})})
    return run_search(space, config, None, evaluate_fn=evaluate_fn, **kwargs)
