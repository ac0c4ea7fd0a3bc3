"""A search from its config alone (what ``attentivenas search`` runs): the predictor, the checkpoint
and its data, the latency table and the memory model are loaded from the config's paths, then
:func:`~attentivenas.search.run_search` runs and writes its files."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from ..accuracy import Predictor, Protocol, SubnetEvaluator, check_space, holdout_warning, load_predictor
from ..config import SearchConfig
from ..costs import MemoryModel
from ..devices import resolve_device
from ..errors import ConfigError
from ..io import OutputLock, remove_torn_writes
from ..latency import LatencyTable
from ..progress import progress_bar
from ..space import Arch, SearchSpace, get_space
from .files import write_search_outputs
from .nsga2 import run_search
from .problem import GeneFn
from .results import SearchResult


def default_source(config: SearchConfig) -> str:
    """``predicted+remeasure`` with a predictor and a checkpoint, ``measured`` with a checkpoint only,
    ``predicted`` with a predictor only."""
    if config.accuracy.source is not None:
        return config.accuracy.source
    if config.predictor is not None and config.checkpoint is not None:
        return "predicted+remeasure"
    if config.checkpoint is not None:
        return "measured"
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


def search_from_config(config: SearchConfig, out_dir: str | Path, progress: bool = True,
                       warn: Callable[[str], None] | None = None) -> SearchResult:
    """Run the search ``config`` describes and write its files into ``out_dir`` (locked meanwhile);
    ``warn`` receives warnings such as a measured split the checkpoint trained on."""
    with OutputLock(out_dir, "search folder"):
        remove_torn_writes(out_dir)
        return _search(config, Path(out_dir), progress, warn)


def _search(config: SearchConfig, out: Path, progress: bool, warn: Callable[[str], None] | None) -> SearchResult:
    source = default_source(config)
    pred: Predictor | None = load_predictor(config.predictor) if config.predictor is not None else None
    given_space = get_space(config.space) if config.space else None
    space = given_space or (pred.space if pred is not None else get_space(None))
    num_classes = pred.num_classes if pred is not None else 1000
    evaluator = None
    if source != "predicted":
        if config.checkpoint is None:
            raise ConfigError(f"accuracy source '{source}' needs --checkpoint CKPT")
        acc = config.accuracy
        protocol = Protocol(split=acc.split, pipeline=acc.pipeline, interpolation=acc.interpolation,
                            calib_batches=acc.calib_batches, calib_batch_size=acc.calib_batch_size,
                            batch_size=acc.batch_size, max_images=acc.max_images)
        evaluator = SubnetEvaluator.from_checkpoint(Path(config.checkpoint), given_space, acc.data, protocol,
                                                    device=resolve_device(acc.device), seed=config.seed, warn=warn)
        space, num_classes = evaluator.supernet.space, evaluator.supernet.num_classes
    if source != "measured" and pred is None:
        raise ConfigError(f"accuracy source '{source}' needs --predictor PRED.json")
    if pred is not None:
        check_space(pred, space)
    config = config.model_copy(update={"accuracy": config.accuracy.model_copy(update={"source": source})})
    reporter = _reporter(config, evaluator, warn)
    result = run_search(
        space, config, pred.predict_genes if pred is not None else None, evaluate_fn=evaluator,
        latency_fn=_latency_fn(config, space), memory_fn=_memory_fn(config, space, num_classes),
        num_classes=num_classes, measured_cache=out / "measured.jsonl" if evaluator is not None else None,
        progress=progress, out_dir=None if reporter is not None else out,
    )
    if reporter is not None:
        report(result, reporter, progress)
        write_search_outputs(out, result)
    return result


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
    ``report_split`` in their entries (each distinct arch measured once)."""
    entries = [e for e in (*result.pareto, *result.budget_winners) if isinstance(e.get("arch"), dict)]
    keys = sorted({json.dumps(e["arch"], sort_keys=True) for e in entries})
    top1 = {}
    for key in progress_bar(keys, f"report on {reporter.split}", enabled=progress):
        top1[key] = reporter(Arch.from_dict(json.loads(key)))
    for e in entries:
        e["report_top1"] = top1[json.dumps(e["arch"], sort_keys=True)]
        e["report_split"] = reporter.split
