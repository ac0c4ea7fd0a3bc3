"""A search from its config alone (what ``attentivenas search`` runs): the predictor, the checkpoint
and its data, the latency table and the memory model are loaded from the config's paths, then
:func:`~attentivenas.search.run_search` runs and writes its files."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..accuracy import (
    ArchDataset,
    Predictor,
    Protocol,
    SubnetEvaluator,
    check_space,
    default_split,
    fit_best,
    holdout_warning,
    load_predictor,
    measure_missing,
    predictor_from_json,
    spread_genes,
)
from ..config import OBJECTIVES, SearchConfig
from ..config.search import report_overlap
from ..costs import CostModel, MemoryModel
from ..devices import resolve_device
from ..distributed import (
    DistInfo,
    broadcast_bytes,
    cleanup,
    default_threads,
    init_distributed,
    is_main,
    launched,
    local_group,
    max_float,
    world_size,
)
from ..errors import ConfigError, UserError
from ..io import OutputLock, atomic_write_json, remove_torn_writes
from ..latency import LatencyTable
from ..nn import load_supernet
from ..rng import mix_seed
from ..space import Arch, SearchSpace, get_space
from .files import write_search_outputs
from .measured import MeasuredAccuracy
from .nsga2 import run_search
from .problem import CostEvaluator, GeneFn, feasible
from .results import SearchResult


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


def _latency_fn(config: SearchConfig, space: SearchSpace) -> GeneFn | None:
    wants = set(config.objectives) | {config.budgets.metric}
    if "latency" not in wants and config.budgets.max_latency_ms is None and config.latency_table is None:
        return None
    if config.latency_table is None:
        raise ConfigError("latency objectives and budgets need --latency-table FILE (latency_table in a config)")
    table = LatencyTable.load(config.latency_table)
    table.check_setting(runtime=config.latency_runtime, batch=config.latency_batch)
    return table.gene_fn(space)


def _memory_fn(config: SearchConfig, space: SearchSpace, num_classes: int) -> GeneFn | None:
    wants = set(config.objectives) | {config.budgets.metric}
    if "memory" not in wants and config.budgets.max_memory_mb is None:
        return None
    return MemoryModel(space, num_classes).memory_mb  # weights + peak activations at batch 1, float32


STATE_FILE = "search_state.npz"
PREDICTOR_FILE = "predictor.json"
PLAN_FILE = "auto_predictor.json"
MEASURED_FILE = "measured.jsonl"


def search_from_config(config: SearchConfig, out_dir: str | Path, progress: bool = True,
                       warn: Callable[[str], None] | None = None,
                       log: Callable[[str], None] | None = None) -> SearchResult:
    """Run the search ``config`` describes and write its files into ``out_dir`` (locked meanwhile);
    ``warn`` receives warnings such as a measured split the checkpoint trained on, ``log`` what will
    be measured and how long it should take.

    Under torchrun (or with ``runtime.ranks`` > 1, which starts the other processes here) every rank
    measures its share of the subnets; rank 0 alone writes the files, the same as one process would.
    A search started again with the same settings continues after its last generation
    (``DIR/search_state.npz``) and measures nothing twice (``DIR/measured.jsonl``)."""
    rt = config.runtime
    if rt.ranks is not None and rt.ranks > 1 and not launched():
        threads = rt.threads or default_threads(rt.ranks)
        with local_group(rt.ranks, _search_rank, (config.to_dict(), str(out_dir)), threads,
                         _rank_device(config), rt.dist_timeout_s) as info:
            return _locked(config, Path(out_dir), progress, warn, log, info)
    if rt.threads is not None:
        torch.set_num_threads(rt.threads)
    info = init_distributed(_rank_device(config), rt.dist_timeout_s) if launched() else DistInfo()
    try:
        if rt.ranks is not None and rt.ranks != info.world_size:
            raise ConfigError(f"runtime.ranks={rt.ranks} but the job has {info.world_size} processes")
        return _locked(config, Path(out_dir), progress, warn, log, info)
    finally:
        cleanup(info)


def _search_rank(config: dict[str, Any], out_dir: str) -> None:
    """A local rank > 0 of :func:`search_from_config` (silent: rank 0 reports and writes)."""
    cfg = SearchConfig.model_validate(config)
    info = init_distributed(_rank_device(cfg), cfg.runtime.dist_timeout_s)
    try:
        _search(cfg, Path(out_dir), False, None, None, info)
    finally:
        cleanup(info)


def _rank_device(config: SearchConfig) -> str:
    dev = config.accuracy.device or "auto"
    return "cuda" if dev.startswith("cuda") else dev


def _locked(config: SearchConfig, out: Path, progress: bool, warn: Callable[[str], None] | None,
            log: Callable[[str], None] | None, info: DistInfo) -> SearchResult:
    main = info.is_main
    with OutputLock(out, "search folder") if main else nullcontext():
        if main:
            remove_torn_writes(out)
        return _search(config, out, progress and main, warn if main else None, log if main else None, info)


def _search(config: SearchConfig, out: Path, progress: bool, warn: Callable[[str], None] | None,
            log: Callable[[str], None] | None = None, info: DistInfo | None = None) -> SearchResult:
    info = info or DistInfo()
    source = default_source(config)
    pred: Predictor | None = load_predictor(config.predictor) if config.predictor is not None else None
    given_space = get_space(config.space) if config.space else None
    space = given_space or (pred.space if pred is not None else get_space(None))
    num_classes = pred.num_classes if pred is not None else 1000
    evaluator = None
    if source != "predicted":
        if config.checkpoint is None:
            raise ConfigError(f"accuracy source '{source}' needs --checkpoint CKPT")
        evaluator = _evaluator(config, given_space, info, warn)
        space, num_classes = evaluator.supernet.space, evaluator.supernet.num_classes
    if pred is not None:
        check_space(pred, space)
    config = config.model_copy(update={
        "accuracy": config.accuracy.model_copy(update={"source": source, **_measured_with(evaluator)}),
        "runtime": config.runtime.model_copy(update={"ranks": info.world_size}),
    })
    latency_fn, memory_fn = _latency_fn(config, space), _memory_fn(config, space, num_classes)
    measured = None
    if evaluator is not None:
        measured = MeasuredAccuracy(space, evaluator, out / MEASURED_FILE, num_classes, progress=progress, log=log)
    extra: dict[str, Any] = {}
    if source == "predicted+remeasure" and pred is None:
        assert measured is not None
        pred, extra = _auto_predictor(config, space, num_classes, CostEvaluator(space, num_classes, latency_fn,
                                                                              memory_fn), measured, out, log)
    if source != "measured" and pred is None:
        raise ConfigError(f"accuracy source '{source}' needs --predictor PRED.json")
    reporter = _reporter(config, evaluator, warn)
    result = run_search(
        space, config, pred.predict_genes if pred is not None else None, evaluate_fn=evaluator,
        latency_fn=latency_fn, memory_fn=memory_fn, num_classes=num_classes, measured=measured,
        progress=progress, out_dir=None, state_path=out / STATE_FILE, log=log,
    )
    result.extra.update(extra)
    if reporter is not None:
        report(result, reporter, progress)
    if info.is_main:
        write_search_outputs(out, result)
    return result


def _evaluator(config: SearchConfig, space: SearchSpace | None, info: DistInfo,
               warn: Callable[[str], None] | None) -> SubnetEvaluator:
    """The checkpoint's evaluator, measuring as ``config.accuracy`` says (unset settings: the checkpoint's)."""
    acc = config.accuracy
    protocol = Protocol(split=acc.split, pipeline=acc.pipeline, interpolation=acc.interpolation,
                        calib_batches=acc.calib_batches, calib_batch_size=acc.calib_batch_size,
                        batch_size=acc.batch_size, max_images=acc.max_images, calib_seed=acc.calib_seed)
    device = info.device if info.distributed else resolve_device(acc.device)
    net, meta = load_supernet(Path(str(config.checkpoint)), space, device=device)
    _check_report(acc.split or default_split(meta), acc.report_split)  # before the calibration batches are drawn
    return SubnetEvaluator.for_supernet(net, meta, acc.data, protocol, device, config.seed, warn)


def _check_report(split: str, report_split: str | None) -> None:
    message = report_overlap(split, report_split)
    if message is not None:
        raise ConfigError(message)


def _measured_with(evaluator: SubnetEvaluator | None) -> dict[str, Any]:
    """The accuracy settings the evaluator resolved for its checkpoint (recorded in ``config.yaml``)."""
    p = evaluator.protocol if evaluator is not None else None
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
                    measured: MeasuredAccuracy, out: Path, log: Callable[[str], None] | None
                    ) -> tuple[Predictor, dict[str, Any]]:
    """Measure subnets spread over the budgeted range (as many as the evaluation or time budget says),
    fit the best predictor kind on them (rank 0; every rank gets its file) and write ``DIR/predictor.json``."""
    ap = config.auto_predictor
    cap = max(ap.num_archs, 1000) if ap.time_budget_s is not None else ap.num_archs
    rng = np.random.default_rng(mix_seed(config.seed, 7))
    genes = spread_genes(space, cap, rng, costs.model, keep=_budget_keep(config, costs))
    archs = [space.decode(g) for g in genes]
    if len(archs) < ap.folds:
        raise UserError(f"only {len(archs)} distinct subnets meet the budgets: too few to fit a predictor with "
                        f"{ap.folds} folds; search with --accuracy measured")
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
        data = measured.cache.subset(archs)
        pred, rep = fit_best(data, ap.kinds, folds=ap.folds, seed=config.seed, feature_set=ap.feature_set)
        pred.save(out / PREDICTOR_FILE)
        text = (out / PREDICTOR_FILE).read_text()
    pred = predictor_from_json(broadcast_bytes(text.encode() if text is not None else None).decode())
    best = pred.metrics
    if log is not None:
        log(f"accuracy predictor: {pred.kind} (Kendall tau {best.get('kendall_tau', float('nan')):.3f} on held-out "
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


def _reporter(config: SearchConfig, evaluator: SubnetEvaluator | None,
              warn: Callable[[str], None] | None) -> SubnetEvaluator | None:
    split = config.accuracy.report_split
    if split is None:
        return None
    if evaluator is None:
        raise ConfigError("accuracy.report_split measures on the supernet: it needs --checkpoint CKPT")
    message = holdout_warning(evaluator.meta, evaluator.bundle, split)
    if message is not None and warn is not None:
        warn(message)
    return evaluator.on_split(split)


def report(result: SearchResult, reporter: SubnetEvaluator, progress: bool = True) -> None:
    """Measure every Pareto arch and budget winner on the report split: ``report_top1`` and
    ``report_split`` in their entries (each distinct arch measured once, shared over ranks)."""
    entries = [e for e in (*result.pareto, *result.budget_winners) if isinstance(e.get("arch"), dict)]
    keys = sorted({json.dumps(e["arch"], sort_keys=True) for e in entries})
    space = reporter.supernet.space
    archs = [space.arch_from_dict(json.loads(k)) for k in keys]
    cache = ArchDataset(space, num_classes=reporter.supernet.num_classes)
    measure_missing(cache, archs, reporter, CostModel(space, cache.num_classes), progress=progress,
                    desc=f"report on {reporter.split}")
    top1 = {k: cache.get(a).accuracy for k, a in zip(keys, archs, strict=True)}  # type: ignore[union-attr]
    for e in entries:
        e["report_top1"] = top1[json.dumps(e["arch"], sort_keys=True)]
        e["report_split"] = reporter.split
