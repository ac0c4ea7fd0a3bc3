"""Typed configuration: the stage-1 schema (:class:`TrainConfig`), the stage-2 schemas
(:class:`SearchConfig`, :class:`PipelineConfig`), YAML files and ``key=value`` overrides.

Lives here: ``base`` (strict sections, one-line errors naming the dotted key, YAML, overrides),
``train`` (stage 1), ``measure`` (how stage 2 measures a subnet and fits a predictor: one typed
definition each, and :func:`measure_from_flags` for the CLI), ``int8`` (the one INT8 recipe: runtime,
calibration images and their seed, accuracy check), ``finetune`` (``attentivenas finetune``), ``bundle``
(a bundle's ``config.json``, read as hostile input) and ``search`` (stage 2). Builders take
these objects as they are (the trainer, the sampler, the search): a setting is defined, defaulted and
validated here only.

May import: ``attentivenas.errors`` and ``attentivenas.io`` (pydantic and PyYAML outside).
"""

from .base import (
    Section,
    apply_overrides,
    load_model,
    model_to_yaml,
    override_model,
    parse_model,
    parse_override,
    read_yaml,
    save_model,
)
from .finetune import FinetuneSettings, load_finetune_settings
from .int8 import (
    DEFAULT_CALIB_IMAGES,
    DEFAULT_CHECK_IMAGES,
    DEFAULT_MAX_INT8_DROP,
    INT8_CALIB_SEED_OFFSET,
    Int8Config,
    Int8Recipe,
)
from .latency import MAX_REFIT_SUBNETS, LatencyTableConfig
from .measure import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_CALIB_BATCH_SIZE,
    DEFAULT_CALIB_BATCHES,
    DEFAULT_FOLDS,
    DEFAULT_PIPELINE,
    DEFAULT_PREDICTOR_KINDS,
    KIND_DEFAULTS,
    MeasureSettings,
    PredictorBuildSettings,
    PredictorFitSettings,
    checkpoint_kind,
    default_split,
    held_nothing_out,
    measure_from_flags,
)
from .search import (
    ACCURACY_SOURCES,
    OBJECTIVES,
    AccuracyConfig,
    AutoPredictorConfig,
    BudgetsConfig,
    EvolutionConfig,
    PipelineConfig,
    PredictorConfig,
    SearchConfig,
    SearchRuntimeConfig,
    check_objectives,
    load_search_config,
    parse_budget_points,
)
from .train import (
    DEFAULT_BIN_WIDTH,
    CheckpointConfig,
    DataConfig,
    EvalConfig,
    LogConfig,
    LossConfig,
    ModelConfig,
    OnlinePredictorConfig,
    OptimConfig,
    RuntimeConfig,
    SamplerConfig,
    TrainConfig,
    config_to_yaml,
    load_config,
    override_config,
    parse_config,
    save_config,
)

__all__ = [
    "Section", "apply_overrides", "load_model", "model_to_yaml", "override_model", "parse_model", "parse_override",
    "read_yaml", "save_model", "LatencyTableConfig", "MAX_REFIT_SUBNETS",
    "DEFAULT_CALIB_IMAGES", "DEFAULT_CHECK_IMAGES", "DEFAULT_MAX_INT8_DROP", "INT8_CALIB_SEED_OFFSET", "Int8Config",
    "Int8Recipe", "FinetuneSettings", "load_finetune_settings",
    "DEFAULT_BATCH_SIZE", "DEFAULT_CALIB_BATCH_SIZE", "DEFAULT_CALIB_BATCHES", "DEFAULT_FOLDS", "DEFAULT_PIPELINE",
    "KIND_DEFAULTS", "MeasureSettings", "PredictorBuildSettings", "PredictorFitSettings", "checkpoint_kind", "default_split", "held_nothing_out",
    "measure_from_flags",
    "ACCURACY_SOURCES", "DEFAULT_PREDICTOR_KINDS", "OBJECTIVES", "AccuracyConfig", "BudgetsConfig", "EvolutionConfig", "PipelineConfig",
    "PredictorConfig", "SearchConfig", "AutoPredictorConfig", "SearchRuntimeConfig", "check_objectives", "load_search_config", "parse_budget_points",
    "DEFAULT_BIN_WIDTH", "CheckpointConfig", "DataConfig", "EvalConfig", "LogConfig", "LossConfig", "ModelConfig",
    "OnlinePredictorConfig", "OptimConfig", "RuntimeConfig", "SamplerConfig", "TrainConfig", "config_to_yaml",
    "load_config", "override_config", "parse_config", "save_config",
]
