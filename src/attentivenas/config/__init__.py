"""Typed configuration: the stage-1 schema (:class:`TrainConfig`), the stage-2 schemas
(:class:`SearchConfig`, :class:`PipelineConfig`), YAML files and ``key=value`` overrides.

Lives here: ``base`` (strict sections, one-line errors naming the dotted key, YAML, overrides),
``train`` (stage 1) and ``search`` (stage 2). Builders take these objects as they are (the trainer,
the sampler, the search): a setting is defined, defaulted and validated here only.

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
from .search import (
    ACCURACY_SOURCES,
    DEFAULT_PREDICTOR_KINDS,
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
    "read_yaml", "save_model",
    "ACCURACY_SOURCES", "DEFAULT_PREDICTOR_KINDS", "OBJECTIVES", "AccuracyConfig", "BudgetsConfig", "EvolutionConfig", "PipelineConfig",
    "PredictorConfig", "SearchConfig", "AutoPredictorConfig", "SearchRuntimeConfig", "check_objectives", "load_search_config", "parse_budget_points",
    "DEFAULT_BIN_WIDTH", "CheckpointConfig", "DataConfig", "EvalConfig", "LogConfig", "LossConfig", "ModelConfig",
    "OnlinePredictorConfig", "OptimConfig", "RuntimeConfig", "SamplerConfig", "TrainConfig", "config_to_yaml",
    "load_config", "override_config", "parse_config", "save_config",
]
