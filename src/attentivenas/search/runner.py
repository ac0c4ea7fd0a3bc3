"""A search from its config alone (what ``attentivenas search`` runs): the predictor, the checkpoint
and its data, the latency table and the memory model are loaded from the config's paths, then
:func:`~attentivenas.search.stage2.run_stage2` runs and writes its files, on every rank of the job."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

from ..accuracy import Predictor, SubnetEvaluator, check_space, load_predictor
from ..config import SearchConfig, default_split
from ..config.search import report_overlap
from ..costs import MemoryModel
from ..devices import resolve_device
from ..distributed import DistInfo, run_on_ranks
from ..errors import ConfigError
from ..io import OutputLock, remove_torn_writes
from ..latency import check_table_precision, load_latency_predictor, resolve_latency_budget
from ..nn import load_supernet
from ..runtimes.quantize import int8_runtime
from ..space import SearchSpace, get_space
from .problem import GeneFn
from .results import SearchResult
from .stage2 import default_source, run_stage2


def _latency_fn(config: SearchConfig, space: SearchSpace, num_classes: int) -> GeneFn | None:
    wants = set(config.objectives) | {config.budgets.metric}
    if ("latency" not in wants and config.budgets.max_latency_ms is None and config.budgets.max_latency is None
            and config.latency_table is None):
        return None
    if config.latency_table is None:
        raise ConfigError("latency objectives and budgets need --latency-table FILE (latency_table in a config)")
    table = load_latency_predictor(config.latency_table)  # a per-op table or a whole model
    check_table_precision(table, config.precision)  # an INT8 search ranks on INT8 latency, an fp32 one on fp32
    table.check_setting(runtime=config.latency_runtime, batch=config.latency_batch)
    table.check_covers(space, num_classes, config.checkpoint, config.latency_table)  # before any work
    return table.gene_fn(space)


def _memory_fn(config: SearchConfig, space: SearchSpace, num_classes: int) -> GeneFn | None:
    wants = set(config.objectives) | {config.budgets.metric}
    if "memory" not in wants and config.budgets.max_memory_mb is None:
        return None
    return MemoryModel(space, num_classes).memory_mb  # weights + peak activations at batch 1, float32


STATE_FILE = "search_state.npz"
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
    int8_runtime(config.int8.runtime, "config key 'int8.runtime'")  # one line now, before any process starts
    rt = config.runtime
    return run_on_ranks(_locked, (config, str(out_dir)), rt.ranks, rt.threads, _rank_device(config), rt.dist_timeout_s,
                        lambda n: ConfigError(f"runtime.ranks={rt.ranks} but the job has {n} processes"),
                        progress=progress, warn=warn, log=log)


def _rank_device(config: SearchConfig) -> str:
    dev = config.accuracy.device or "auto"
    return "cuda" if dev.startswith("cuda") else dev


def _locked(info: DistInfo, config: SearchConfig, out_dir: str, progress: bool = False,
            warn: Callable[[str], None] | None = None, log: Callable[[str], None] | None = None) -> SearchResult:
    """The search on one rank (rank 0 locks the folder, reports and writes)."""
    main, out = info.is_main, Path(out_dir)
    with OutputLock(out, "search folder") if main else nullcontext():
        if main:
            remove_torn_writes(out)
        return _search(config, out, progress and main, warn if main else None, log if main else None, info)


def _search(config: SearchConfig, out: Path, progress: bool, warn: Callable[[str], None] | None,
            log: Callable[[str], None] | None = None, info: DistInfo | None = None) -> SearchResult:
    """Load what ``config`` names (predictor, checkpoint, latency table, memory model), then :func:`run_stage2`."""
    info = info or DistInfo()
    source = default_source(config)
    if config.latency_table is not None:  # before the checkpoint loads: a table of another precision is refused
        check_table_precision(load_latency_predictor(config.latency_table), config.precision)
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
        "accuracy": config.accuracy.model_copy(update={"source": source}),
        "runtime": config.runtime.model_copy(update={"ranks": info.world_size}),
    })
    latency_fn = _latency_fn(config, space, num_classes)
    if config.budgets.max_latency is not None:  # pNN: a percentile of the space's latency, as the table predicts it
        config = config.model_copy(update={"budgets": resolve_latency_budget(config.budgets, config.latency_table,
                                                                              space, log)})
    return run_stage2(config, out, space, predictor=pred, evaluator=evaluator, num_classes=num_classes,
                      latency_fn=latency_fn, memory_fn=_memory_fn(config, space, num_classes),
                      measured_path=out / MEASURED_FILE if evaluator is not None else None,
                      state_path=out / STATE_FILE, progress=progress, warn=warn, log=log,
                      shared=Path(str(config.checkpoint)) if evaluator is not None else None)


def _evaluator(config: SearchConfig, space: SearchSpace | None, info: DistInfo,
               warn: Callable[[str], None] | None) -> SubnetEvaluator:
    """The checkpoint's evaluator, measuring as ``config.accuracy`` says (unset settings: the checkpoint's)."""
    acc = config.accuracy
    device = info.device if info.distributed else resolve_device(acc.device)
    net, meta = load_supernet(Path(str(config.checkpoint)), space, device=device)
    _check_report(acc.split or default_split(meta), acc.report_split)  # before the calibration batches are drawn
    return SubnetEvaluator.for_supernet(net, meta, acc.data, acc.measurement(), device, config.seed, warn)


def _check_report(split: str, report_split: str | None) -> None:
    message = report_overlap(split, report_split)
    if message is not None:
        raise ConfigError(message)


