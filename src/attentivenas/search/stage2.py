"""The stage-2 sequence, once its inputs are loaded (:func:`run_stage2`): measure subnets spread over
the budgeted range and fit a predictor when none is given, search on its predictions (or on
measurements), re-measure the best, report on a second split, write the files. ``search``
(:mod:`.runner`) and the quick start call it; the accuracy source is decided by :func:`default_source`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..accuracy import (
    ArchDataset,
    Int8SubnetEvaluator,
    Predictor,
    SubnetEvaluator,
    fit_best,
    format_metric,
    holdout_warning,
    predictor_from_json,
    split_of,
    spread_genes,
)
from ..config import OBJECTIVES, PredictorFitSettings, SearchConfig
from ..distributed import broadcast_bytes, is_main, max_float, world_size
from ..errors import ConfigError
from ..io import atomic_write_json
from ..rng import mix_seed
from ..space import Arch, SearchSpace
from .files import write_search_outputs
from .measured import MeasuredAccuracy
from .noise import annotate_noise
from .nsga2 import run_search
from .problem import CostEvaluator, GeneFn, check_feasible, feasible
from .results import SearchResult

PREDICTOR_FILE = "predictor.json"
INT8_SUFFIX = "_int8"
PLAN_FILE = "auto_predictor.json"

Log = Callable[[str], None]


def default_source(config: SearchConfig) -> str:
    """``predicted+remeasure`` with a checkpoint (a predictor given, or one the search fits itself:
    see ``auto_predictor``), ``predicted`` with a predictor only; ``measured`` only when asked."""
    if config.accuracy.source is not None:
        return config.accuracy.source
    if config.checkpoint is not None:
        return "predicted+remeasure"
    if config.predictor is not None:
        return "predicted"
    raise ConfigError("search needs --predictor PRED.json (predicted accuracy) and/or --checkpoint CKPT (measured)")


def fit_with_settings(data: ArchDataset, fit: PredictorFitSettings, seed: int, progress: bool = False
                  ) -> tuple[Predictor, dict[str, Any]]:
    """Cross-validate ``fit.kinds`` on ``data`` and refit the best (see :func:`~attentivenas.accuracy.fit_best`)."""
    return fit_best(data, fit.kinds, folds=fit.folds, seed=seed, feature_set=fit.feature_set, progress=progress)


def run_stage2(config: SearchConfig, out: Path, space: SearchSpace, *, predictor: Predictor | None = None,
               evaluator: Callable[[Arch], float] | None = None, num_classes: int = 1000,
               latency_fn: GeneFn | None = None, memory_fn: GeneFn | None = None, measured_path: Path | None = None,
               state_path: Path | None = None, progress: bool = False, warn: Log | None = None,
               log: Log | None = None, shared: Path | None = None) -> SearchResult:
    """Search ``space`` as ``config`` says and write the files into ``out`` (rank 0).

    Accuracy comes from ``predictor`` and/or ``evaluator`` (``arch -> top-1``, usually a
    :class:`~attentivenas.accuracy.SubnetEvaluator`; :func:`default_source`); measurements go
    to ``measured_path`` (a dataset JSONL, also resumed from). With the source predicted+remeasure and
    no predictor, subnets spread over the budgeted range are measured and a predictor fitted first
    (``config.auto_predictor``, ``out/predictor.json``). ``state_path`` checkpoints the evolution;
    ``accuracy.report_split`` measures the Pareto archs and budget winners again on that split.
    With ``precision: int8`` the best candidates and budget winners are measured again quantized
    (:class:`~attentivenas.accuracy.Int8SubnetEvaluator`), cached beside ``measured_path``
    (``measured_int8.jsonl``), and the front is built on their INT8 top-1. ``shared`` (the checkpoint's
    path) shares the measurements between searches of it (:class:`~.measured.MeasuredAccuracy`)."""
    source = default_source(config)
    _check_budgets(config, CostEvaluator(space, num_classes, latency_fn, memory_fn))  # before anything is measured
    config = config.model_copy(update={
        "accuracy": config.accuracy.model_copy(update={"source": source, **_measured_with(evaluator)})})
    measured = int8 = None
    if evaluator is not None and source != "predicted":
        measured = MeasuredAccuracy(space, evaluator, measured_path, num_classes, progress=progress, log=log,
                                    warn=warn, shared=shared)
    if config.precision == "int8":
        int8_eval = int8_evaluator(config, evaluator if source != "predicted" else None)
        config = config.model_copy(update={"int8": config.int8.model_copy(update={"calib_images":
                                                                                   int8_eval.calib_images})})
        int8 = MeasuredAccuracy(space, int8_eval, int8_path(measured_path), num_classes, progress=progress, log=log,
                                warn=warn, shared=shared)
    config, predictor, extra = _predictor_or_measured(config, predictor, space, num_classes,
                                                      CostEvaluator(space, num_classes, latency_fn, memory_fn),
                                                      measured, out, log)
    reporter = _reporter(config, evaluator, warn)
    result = run_search(
        space, config, predictor.predict_genes if predictor is not None else None, evaluate_fn=evaluator,
        latency_fn=latency_fn, memory_fn=memory_fn, num_classes=num_classes, measured=measured,
        progress=progress, out_dir=None, state_path=state_path, log=log, int8=int8,
    )
    result.extra.update(extra)
    if reporter is not None:
        report(result, reporter, progress, cache_dir=out, shared=shared)
        if int8 is not None:  # the INT8 top-1 on the report split too
            report(result, Int8SubnetEvaluator(reporter, config.int8, config.runtime.threads), progress,
                   key="report_top1_int8", cache_dir=out, shared=shared)
    images, split_images = _images(evaluator)
    annotate_noise(result, OBJECTIVES[config.objectives[0]], images, config.accuracy.split,
                   _images(reporter)[0], config.accuracy.report_split, split_images)
    if is_main():
        write_search_outputs(out, result)
    return result


def _predictor_or_measured(config: SearchConfig, predictor: Predictor | None, space: SearchSpace, num_classes: int,
                           costs: CostEvaluator, measured: MeasuredAccuracy | None, out: Path, log: Log | None
                           ) -> tuple[SearchConfig, Predictor | None, dict[str, Any]]:
    """The predictor of the search: with predicted+remeasure and none given, one fitted on measured
    subnets (:func:`_auto_predictor`), or, when only a few subnets meet the budgets, none and the source
    measured (each of them measured). Returns the config (its source updated), the predictor and what
    the fit reports; a source other than measured without a predictor is refused."""
    source = config.accuracy.source
    extra: dict[str, Any] = {}
    if source == "predicted+remeasure" and predictor is None:
        assert measured is not None
        predictor, extra = _auto_predictor(config, space, num_classes, costs, measured, out, log)
        if predictor is None:  # a budget only a few subnets meet: measure each of them
            source = "measured"
            config = config.model_copy(update={"accuracy": config.accuracy.model_copy(update={"source": source})})
    if source != "measured" and predictor is None:
        raise ConfigError(f"accuracy source '{source}' needs --predictor PRED.json")
    return config, predictor, extra


def _check_budgets(config: SearchConfig, costs: CostEvaluator) -> None:
    """One user error when no subnet meets the budgets (and the smallest budget point)."""
    rng = np.random.default_rng(mix_seed(config.seed, 11))
    limits = config.budgets.limits()
    if any(col not in costs.columns for _, col, _ in limits):
        return  # a latency budget without a table: refused by the search with its own message
    check_feasible(costs.space, costs, limits, rng)
    points = config.budgets.points
    col = OBJECTIVES[config.budgets.metric]
    if points and col in costs.columns:
        check_feasible(costs.space, costs, list(limits) + [(f"max_{col} (budget list)", col, min(points))], rng)


def _images(evaluator: Any) -> tuple[int | None, int | None]:
    """(images measured, images of the whole split) of a checkpoint's evaluator; (None, None) otherwise."""
    if not isinstance(evaluator, SubnetEvaluator):
        return None, None
    try:
        return len(evaluator.val_loader.dataset), len(split_of(evaluator.bundle, evaluator.split))  # type: ignore[arg-type]
    except TypeError:
        return None, None


def int8_evaluator(config: SearchConfig, evaluator: Callable[[Arch], float] | None) -> Int8SubnetEvaluator:
    """The INT8 evaluator of a ``precision: int8`` search, beside its float ``evaluator`` (a checkpoint's)."""
    if not isinstance(evaluator, SubnetEvaluator):
        raise ConfigError("--precision int8 measures the best subnets again quantized: it needs --checkpoint CKPT "
                          "(and an accuracy source other than predicted)")
    return Int8SubnetEvaluator(evaluator, config.int8, config.runtime.threads)


def int8_path(measured_path: Path | None) -> Path | None:
    """Where INT8 measurements are cached: ``measured_int8.jsonl`` beside ``measured.jsonl``."""
    if measured_path is None:
        return None
    return measured_path.with_name(f"{measured_path.stem}{INT8_SUFFIX}{measured_path.suffix}")


def _measured_with(evaluator: Callable[[Arch], float] | None) -> dict[str, Any]:
    """The accuracy settings the evaluator measures with (recorded in ``config.yaml``); none for a plain function."""
    p = evaluator.settings if isinstance(evaluator, SubnetEvaluator) else None
    if p is None:
        return {}
    return {"split": p.split, "interpolation": p.interpolation, "calib_seed": p.calib_seed}



def _budget_keep(config: SearchConfig, costs: CostEvaluator) -> Callable[[np.ndarray], np.ndarray]:
    """Genes -> whether the arch meets every budget (and is under the largest budget point)."""
    limits = list(config.budgets.limits())
    if config.budgets.points:
        col = OBJECTIVES[config.budgets.metric]
        if all(c != col for _, c, _ in limits):
            limits.append(("budget list", col, max(config.budgets.points)))

    def keep(genes: np.ndarray) -> np.ndarray:
        return feasible(costs(genes), limits)

    return keep


def _auto_predictor(config: SearchConfig, space: SearchSpace, num_classes: int, costs: CostEvaluator,
                    measured: MeasuredAccuracy, out: Path, log: Log | None
                    ) -> tuple[Predictor | None, dict[str, Any]]:
    """Measure subnets spread over the budgeted range (as many as the evaluation or time budget says),
    fit the best predictor kind on them (rank 0; every rank gets its file) and write ``DIR/predictor.json``.
    None when fewer subnets meet the budgets than the fit needs (the search then measures them all)."""
    ap = config.auto_predictor
    cap = max(ap.num_archs, 1000) if ap.time_budget_s is not None else ap.num_archs
    rng = np.random.default_rng(mix_seed(config.seed, 7))
    genes = spread_genes(space, cap, rng, costs.model, keep=_budget_keep(config, costs))
    archs = [space.decode(g) for g in genes]
    if len(archs) < 2 * ap.folds:  # before measuring: the fit needs 2 subnets per fold
        if log is not None:
            log(f"only {len(archs)} distinct subnets found under the budgets: too few to fit a predictor with "
                f"{ap.folds} folds (2 per fold); the search measures every subnet it evaluates instead")
        return None, {"auto_predictor": {"skipped": f"{len(archs)} subnets under the budgets", "num_archs": 0}}
    again = config.accuracy.remeasure_top + 3 * len(config.budgets.points)
    n = min(ap.num_archs, len(archs)) if ap.time_budget_s is None else _timed_count(config, archs, again, measured,
                                                                                   out, log)
    archs = archs[:n]
    if log is not None:
        f = costs.model.flops(genes[:n])
        ranks = f" on {world_size()} ranks" if world_size() > 1 else ""
        log(f"accuracy predictor: {n} subnets spread over {f.min():.4g}-{f.max():.4g} MFLOPs{ranks}, then about "
            f"{again} best candidates measured again after the search")
    measured.measure(archs, what="for the accuracy predictor")
    text = None
    if is_main():
        pred, rep = fit_with_settings(measured.cache.subset(archs), ap, config.seed)
        pred.save(out / PREDICTOR_FILE)
        text = (out / PREDICTOR_FILE).read_text()
    pred = predictor_from_json(broadcast_bytes(text.encode() if text is not None else None).decode())
    best = pred.metrics
    if log is not None:
        log(f"accuracy predictor: {pred.kind} (Kendall tau {format_metric(best.get('kendall_tau'))} on held-out "
            f"archs, {ap.folds}-fold CV) -> {out / PREDICTOR_FILE}")
    return pred, {"auto_predictor": {"file": PREDICTOR_FILE, "num_archs": n, "kind": pred.kind,
                                     "kendall_tau": best.get("kendall_tau"), "spearman_rho": best.get("spearman_rho"),
                                     "rmse": best.get("rmse")}}


def _timed_count(config: SearchConfig, archs: list[Arch], again: int, measured: MeasuredAccuracy, out: Path,
                 log: Callable[[str], None] | None) -> int:
    """Subnets to measure for the predictor within ``auto_predictor.time_budget_s``: the first ones are
    timed, the count is recorded in ``DIR/auto_predictor.json`` (a resumed search reuses it)."""
    ap = config.auto_predictor
    plan_path = out / PLAN_FILE
    text = None
    if is_main():
        text = plan_path.read_text() if plan_path.is_file() else ""
    plan = broadcast_bytes(text.encode() if text is not None else None).decode()
    if plan:
        try:
            saved = json.loads(plan)
            if saved.get("time_budget_s") == ap.time_budget_s and saved.get("ranks") == world_size():
                return int(saved["num_archs"])
        except (ValueError, KeyError, TypeError):
            pass
    world = world_size()
    probe = archs[: max(2, world)]
    if log is not None:
        log(f"timing the first {len(probe)} subnets to fit a {ap.time_budget_s:g} s budget")
    t0 = time.perf_counter()
    measured.measure(probe)
    per_rank = max_float(time.perf_counter() - t0) / -(-len(probe) // world)
    fits = int(ap.time_budget_s * world / max(per_rank, 1e-6)) - again
    n = int(min(len(archs), max(fits, ap.folds * 2, len(probe))))
    if is_main():
        atomic_write_json(plan_path, {"time_budget_s": ap.time_budget_s, "ranks": world, "seconds_per_subnet":
                                      per_rank, "num_archs": n})
    n = int(broadcast_bytes(str(n).encode() if is_main() else None).decode())
    if log is not None:
        log(f"about {per_rank:.2f} s per subnet on each of {world} rank(s): {n} subnets for the predictor "
            f"fit in {ap.time_budget_s:g} s")
    return n


def _reporter(config: SearchConfig, evaluator: Callable[[Arch], float] | None,
              warn: Callable[[str], None] | None) -> SubnetEvaluator | None:
    split = config.accuracy.report_split
    if split is None:
        return None
    if not isinstance(evaluator, SubnetEvaluator):
        raise ConfigError("accuracy.report_split measures on the supernet: it needs --checkpoint CKPT")
    message = holdout_warning(evaluator.meta, evaluator.bundle, split)
    if message is not None and warn is not None:
        warn(message)
    return evaluator.on_split(split)


def report(result: SearchResult, reporter: SubnetEvaluator | Int8SubnetEvaluator, progress: bool = True,
           key: str = "report_top1", cache_dir: Path | None = None, shared: Path | None = None) -> None:
    """Measure every Pareto arch and budget winner on the report split: ``report_top1`` (or ``key``: the
    INT8 evaluator's ``report_top1_int8``) and ``report_split`` in their entries (each distinct arch
    measured once, shared over ranks). With ``cache_dir`` the measurements are kept in
    ``DIR/measured_<split>.jsonl`` (``_int8``: quantized) and reused by a search started again; with
    ``shared`` (the checkpoint) also by every search of that checkpoint, split and settings."""
    entries = [e for e in (*result.pareto, *result.budget_winners) if isinstance(e.get("arch"), dict)]
    keys = sorted({json.dumps(e["arch"], sort_keys=True) for e in entries})
    base = reporter.base if isinstance(reporter, Int8SubnetEvaluator) else reporter
    space = base.supernet.space
    archs = [space.arch_from_dict(json.loads(k)) for k in keys]
    int8 = isinstance(reporter, Int8SubnetEvaluator)
    path = None if cache_dir is None else cache_dir / f"measured_{reporter.split}{INT8_SUFFIX if int8 else ''}.jsonl"
    measured = MeasuredAccuracy(space, reporter, path, base.supernet.num_classes, progress=progress, shared=shared)
    measured.measure(archs, what=f"for the report on {reporter.split}{' in INT8' if int8 else ''}")
    measured.finish()
    top1 = {k: measured.cache.get(a).accuracy for k, a in zip(keys, archs, strict=True)}  # type: ignore[union-attr]
    for e in entries:
        e[key] = top1[json.dumps(e["arch"], sort_keys=True)]
        e["report_split"] = reporter.split
