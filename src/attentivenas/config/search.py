"""The stage-2 schemas: :class:`SearchConfig` (``attentivenas search --config FILE [key=value ...]``)
and :class:`PipelineConfig` (the stage-2 half of ``attentivenas quickstart``).

A search's ``DIR/config.yaml`` is its resolved :class:`SearchConfig`: ``attentivenas search --config
DIR/config.yaml`` runs it again.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, SerializerFunctionWrapHandler, field_validator, model_serializer, model_validator

from ..errors import ConfigError
from .base import Section, load_model
from .int8 import Int8Config, Precision
from .latency import parse_latency_budget
from .measure import (
    MAX_ARCHS,
    SEED_LIMIT,
    ArchCount,
    MeasureSettings,
    PredictorFitSettings,
    SplitName,
)

#: cost objective -> the column it minimises
OBJECTIVES: dict[str, str] = {"mflops": "mflops", "params": "params_m", "latency": "latency_ms", "memory": "memory_mb"}
ACCURACY_SOURCES = ("predicted", "measured", "predicted+remeasure")
BUDGET_FIELDS = {"max_mflops": "mflops", "max_params_m": "params_m", "max_latency_ms": "latency_ms",
                 "max_memory_mb": "memory_mb"}
ObjectiveName = Literal["mflops", "params", "latency", "memory"]
#: Bounds of the search's counts and seeds (a value outside is one config error naming the key, not a traceback
#: or hours of work): NSGA-II population and generations, subnets measured or re-measured, and seeds (numpy's
#: and torch's generators take 0 .. 2**32 - 1).
#: The population's bound is what runs on a 24 GB machine: the first population is drawn from a pool of
#: 200 archs per individual, about 0.4 MB of memory per individual on the attentivenas space
#: (benchmarks/results/search_memory.jsonl); 5,000 stay near 3 GB. The evaluations (population x
#: generations) are bounded too: the archive keeps every evaluated arch.
MAX_POP_SIZE = 5_000
MAX_GENERATIONS = 100_000
MAX_EVALUATIONS = 2_000_000
#: export formats of the quick start's Pareto models (those written without an extra; torchscript is deprecated)
ExportFormat = Literal["torch-export", "onnx", "safetensors", "torchscript"]

#: the keys of ``accuracy`` in the order a written config lists them
ACCURACY_KEY_ORDER = ("source", "remeasure_top", "data", "split", "report_split", "pipeline", "interpolation",
                      "calib_seed", "calib_batches", "calib_batch_size", "batch_size", "max_images", "device")


def parse_budget_points(text: str | Sequence[float] | None) -> tuple[float, ...]:
    """``"250,300,400"`` (or a list) -> (250.0, 300.0, 400.0), sorted and distinct; each must be a
    positive number."""
    if text is None:
        return ()
    items = text.split(",") if isinstance(text, str) else list(text)
    out = []
    for item in items:
        if isinstance(item, str) and not item.strip():
            continue
        try:
            v = float(item)
        except (TypeError, ValueError):
            raise ConfigError(f"budget list must hold numbers separated by commas, got {item!r}") from None
        if not math.isfinite(v) or v <= 0:
            raise ConfigError(f"budget list values must be positive numbers, got {item!r}")
        out.append(v)
    return tuple(sorted(set(out)))


def check_objectives(objectives: Sequence[str]) -> tuple[str, ...]:
    """Validated, de-duplicated cost objectives; raises :class:`ConfigError` listing the allowed ones."""
    out = tuple(str(o).strip().lower() for o in objectives if str(o).strip())
    bad = [o for o in out if o not in OBJECTIVES]
    if bad:
        raise ConfigError(f"unknown objective(s) {bad}; allowed: {list(OBJECTIVES)}")
    if not out:
        raise ConfigError(f"give at least one cost objective; allowed: {list(OBJECTIVES)}")
    return tuple(dict.fromkeys(out))


class BudgetsConfig(Section):
    """Hard upper limits (null: none), and a list of budgets along ``metric``, each getting its best arch."""

    max_mflops: float | None = None
    max_params_m: float | None = None
    max_latency_ms: float | None = None  # needs a latency table
    max_latency: str | None = None  # pNN: a percentile of the space's latency in the table (e.g. p50), or ms
    max_memory_mb: float | None = None  # weights + peak activations at batch 1, float32
    points: list[float] = Field(default_factory=list)  # e.g. [250, 300, 400], or "250,300,400"
    metric: ObjectiveName = "mflops"

    @field_validator("max_mflops", "max_params_m", "max_latency_ms", "max_memory_mb")
    @classmethod
    def _positive(cls, v: float | None, info: Any) -> float | None:
        if v is not None and (not math.isfinite(v) or v <= 0):
            raise ValueError(f"budget {info.field_name} must be a positive number, got {v:g}")
        return v

    @field_validator("max_latency", mode="before")
    @classmethod
    def _latency_budget(cls, v: Any) -> str | None:
        if v is None:
            return None
        try:
            parse_latency_budget(v)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return str(v).strip().lower()

    @field_validator("points", mode="before")
    @classmethod
    def _points(cls, v: Any) -> list[float]:
        try:
            return list(parse_budget_points(v))
        except ConfigError as exc:
            raise ValueError(str(exc)) from None

    def limits(self) -> list[tuple[str, str, float]]:
        """``(name, column, limit)`` of every set budget."""
        return [(name, col, float(getattr(self, name))) for name, col in BUDGET_FIELDS.items()
                if getattr(self, name) is not None]


class AccuracyConfig(MeasureSettings):
    """Where a subnet's accuracy comes from, and how measured accuracy is measured (the keys of
    :class:`~attentivenas.config.measure.MeasureSettings`, plus the ones below)."""

    # predicted (a predictor), measured (BN-recalibrated supernet on the validation split: every candidate of
    # every generation), or predicted+remeasure (search on predictions, re-measure the best); null: from what
    # is given (a checkpoint alone: predicted+remeasure with a predictor the search fits, see auto_predictor)
    source: str | None = None
    remeasure_top: int = Field(10, ge=0, le=MAX_ARCHS)  # predicted+remeasure: candidates re-measured (plus each budget's best)
    data: str | None = None  # digits, cifar10:PATH, cifar100:PATH or an ImageFolder PATH; null: the checkpoint's
    # after the search, also measure every Pareto arch and budget winner on this split (report_top1);
    # it must not overlap split (e.g. split val-search, report_split val-report)
    report_split: SplitName | None = None
    device: str | None = None  # cpu, cuda or cuda:N; null: cuda when present

    @field_validator("source")
    @classmethod
    def _source(cls, v: str | None) -> str | None:
        if v is not None and v not in ACCURACY_SOURCES:
            raise ValueError(f"unknown accuracy source {v!r}; allowed: {list(ACCURACY_SOURCES)}")
        return v

    @model_validator(mode="after")
    def _disjoint_report(self) -> AccuracyConfig:
        if self.split is not None:  # else checked once the checkpoint gives the split
            message = report_overlap(self.split, self.report_split)
            if message is not None:
                raise ValueError(message)
        return self

    @model_serializer(mode="wrap")
    def _ordered(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return _in_order(handler(self), ACCURACY_KEY_ORDER)


def _in_order(data: dict[str, Any], order: tuple[str, ...]) -> dict[str, Any]:
    """``data`` with its keys in ``order`` (a written config keeps its key order)."""
    return {**{k: data[k] for k in order if k in data}, **data}


def report_overlap(split: str, report_split: str | None) -> str | None:
    """Why ``report_split`` may not be reported on after searching on ``split``, or None when it may."""
    if report_split is None or not splits_overlap(split, report_split):
        return None
    return (f"accuracy.report_split={report_split} overlaps accuracy.split={split}: report on images the search did "
            "not choose on (e.g. split val-search, report_split val-report)")


def _split_family(split: str) -> tuple[str, str]:
    """(``holdout`` | ``test``, ``all`` | ``search`` | ``report``) of a split name."""
    if split == "holdout":
        return "holdout", "all"
    head, _, part = split.partition("-")
    return "test", part or "all"


def splits_overlap(a: str, b: str) -> bool:
    """Whether two split names share images (``val`` = ``test``; its halves are disjoint)."""
    (fa, pa), (fb, pb) = _split_family(a), _split_family(b)
    return fa == fb and (pa == pb or "all" in (pa, pb))


class EvolutionConfig(Section):
    """NSGA-II (pymoo) over the gene vectors."""

    pop_size: int = Field(50, ge=4, le=MAX_POP_SIZE)
    generations: int = Field(30, ge=1, le=MAX_GENERATIONS)
    mutation_prob: float = Field(0.1, gt=0.0, le=1.0)  # per gene: move to another of its choices
    crossover_prob: float = Field(0.9, gt=0.0, le=1.0)  # uniform crossover

    @model_validator(mode="after")
    def _evaluations(self) -> EvolutionConfig:
        if self.pop_size * self.generations > MAX_EVALUATIONS:
            raise ValueError(f"evolution.pop_size x evolution.generations = {self.pop_size * self.generations:,} "
                             f"evaluations; at most {MAX_EVALUATIONS:,} (every evaluated arch is kept in memory)")
        return self


class AutoPredictorConfig(PredictorFitSettings):
    """The accuracy predictor a search fits itself (a checkpoint and no ``--predictor``, accuracy source
    predicted+remeasure): subnets measured spread over the budgeted range, the best kind kept."""

    num_archs: ArchCount = 60  # evaluation budget: subnets measured to fit it
    # time budget instead (seconds of measuring, the re-measurement after the search included): as many
    # subnets as fit, from the time of the first measurements (then the number depends on the machine)
    time_budget_s: float | None = Field(None, gt=0)

    section: ClassVar[str] = "auto_predictor"

    @model_serializer(mode="wrap")
    def _ordered(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return _in_order(handler(self), ("num_archs", "time_budget_s"))


class SearchRuntimeConfig(Section):
    """Processes that measure subnets (each with its own device: NCCL on GPUs, gloo on CPU)."""

    # null: as launched (torchrun's WORLD_SIZE, else 1); a number without torchrun starts that many local
    # processes (one GPU each when there are GPUs)
    ranks: int | None = Field(None, ge=1)
    threads: int | None = Field(None, ge=1)  # torch threads per process; null: torch's default (local ranks: cores / ranks)
    dist_timeout_s: int | None = Field(None, ge=1)  # a collective waiting longer ends the job; null: gloo 600, NCCL 1800


class SearchConfig(Section):
    """The whole stage-2 search: inputs, objectives, budgets, accuracy source and the evolution."""

    space: str | None = None  # preset or YAML; null: the checkpoint's or the predictor's
    checkpoint: str | None = None  # trained supernet (measured accuracy)
    predictor: str | None = None  # accuracy predictor JSON (predicted accuracy)
    latency_table: str | None = None  # from `attentivenas latency build-table` (latency objective or budget)
    latency_runtime: str | None = None  # runtime the latency is for (torch, onnxruntime, ...): other tables refused
    latency_batch: int | None = Field(None, ge=1)  # batch the latency is for: a table of another batch is refused
    # int8: latency from an INT8 table (an fp32 one is refused), the best candidates and every budget winner
    # re-measured quantized (pareto.json: accuracy = INT8 top-1, with top1_fp32 / top1_int8); needs a checkpoint
    precision: Precision = "fp32"
    int8: Int8Config = Int8Config()
    objectives: list[str] = Field(default_factory=lambda: ["mflops"])  # minimised with -accuracy
    budgets: BudgetsConfig = BudgetsConfig()
    accuracy: AccuracyConfig = AccuracyConfig()
    evolution: EvolutionConfig = EvolutionConfig()
    auto_predictor: AutoPredictorConfig = AutoPredictorConfig()
    runtime: SearchRuntimeConfig = SearchRuntimeConfig()
    seed: int = Field(0, ge=0, lt=SEED_LIMIT)
    published: bool = False  # plot the authors' A0-A6 (ImageNet) beside the front

    @field_validator("objectives", mode="before")
    @classmethod
    def _objectives(cls, v: Any) -> list[str]:
        items = v.split(",") if isinstance(v, str) else v
        if not isinstance(items, (list, tuple)):
            raise ValueError(f"objectives must be a list of {list(OBJECTIVES)}, got {v!r}")
        try:
            return list(check_objectives([str(o) for o in items]))
        except ConfigError as exc:
            raise ValueError(str(exc)) from None


class PredictorConfig(PredictorFitSettings):
    """The accuracy predictor the pipeline fits before searching."""

    num_archs: ArchCount = 40  # subnets measured (BN recalibrated, validation split)


def _pipeline_search() -> SearchConfig:
    return SearchConfig(accuracy=AccuracyConfig(source="predicted+remeasure", remeasure_top=12),
                        evolution=EvolutionConfig(pop_size=40, generations=25))


class PipelineConfig(Section):
    """Stage 2 of ``attentivenas quickstart`` (stage 1 is the training config)."""

    predictor: PredictorConfig = PredictorConfig()
    search: SearchConfig = Field(default_factory=_pipeline_search)
    export_format: ExportFormat = "torch-export"
    seed: int = Field(0, ge=0, lt=SEED_LIMIT)  # of the measured archs and the calibration batches (the search has its own)


def load_search_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> SearchConfig:
    """Load a YAML search config (the defaults when ``path`` is None) and apply ``key=value`` overrides."""
    return load_model(SearchConfig, path, overrides)
