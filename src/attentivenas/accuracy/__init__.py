"""Accuracy: evaluation of subnets, and accuracy predictors learnt from measured (arch, top-1) pairs.

Lives here: ``protocol`` (how stage 2 measures: splits, image pipeline, calibration; the
published evaluation by default), ``evaluate`` (BN-recalibrated top-1 / top-5 of a subnet,
:class:`SubnetEvaluator`),
``dataset`` (:class:`ArchDataset` JSONL files, archs spread over the FLOPs range, measured over
ranks), ``build`` (``predictor build``: a checkpoint's subnets into a dataset), ``models`` (the
regressors, pickle-free), ``predictor`` (features, fitting, cross-validation, files), ``metrics`` and
``published`` (the published models evaluated on a checkpoint).

May import: ``attentivenas.space``, ``costs``, ``nn``, ``config``, ``data``, ``devices``, ``distributed``, ``io``,
``progress``, ``errors``.
"""

from .build import build_from_checkpoint
from .dataset import (
    DATASET_FORMAT,
    SPREADS,
    ArchDataset,
    ArchRecord,
    JsonlAppender,
    MeasureStats,
    build_arch_dataset,
    dataset_header,
    finish_part_file,
    format_seconds,
    measure_missing,
    open_shared_cache,
    part_file,
    spread_genes,
)
from .evaluate import SubnetEvaluator, evaluate_arch, evaluate_subnet
from .metrics import kendall_tau, rank_metrics, rmse, spearman_rho
from .models import DEFAULT_HYPERPARAMS, KINDS, MODEL_CLASSES, GPModel, LGBMModel, LinearModel, TreeEnsemble
from .predictor import (
    DEFAULT_KINDS,
    FEATURE_SETS,
    FORMAT,
    Predictor,
    check_kinds,
    check_space,
    cross_validate,
    evaluate_predictor,
    feature_names,
    fit_best,
    fit_predictor,
    load_predictor,
    make_features,
    predictor_from_json,
)
from .protocol import (
    KIND_DEFAULTS,
    PIPELINES,
    SPLITS,
    Protocol,
    capped,
    checkpoint_kind,
    default_split,
    held_nothing_out,
    holdout_warning,
    resolve_data,
    split_of,
    stage2_data_config,
)
from .published import published_reference, published_table

__all__ = [
    "build_from_checkpoint",
    "DATASET_FORMAT", "SPREADS", "ArchDataset", "ArchRecord", "JsonlAppender", "build_arch_dataset",
    "dataset_header", "spread_genes", "MeasureStats", "finish_part_file", "format_seconds", "measure_missing",
    "open_shared_cache", "part_file", "SubnetEvaluator", "evaluate_arch", "evaluate_subnet", "resolve_data",
    "kendall_tau", "rank_metrics", "rmse", "spearman_rho", "PIPELINES", "SPLITS", "Protocol", "capped", "holdout_warning", "stage2_data_config",
    "published_table", "published_reference", "split_of", "KIND_DEFAULTS", "checkpoint_kind", "default_split",
    "held_nothing_out", "DEFAULT_HYPERPARAMS", "KINDS", "MODEL_CLASSES",
    "GPModel", "LGBMModel", "LinearModel", "TreeEnsemble", "DEFAULT_KINDS", "FEATURE_SETS", "FORMAT", "Predictor",
    "check_kinds", "check_space", "cross_validate", "evaluate_predictor", "feature_names", "fit_best",
    "fit_predictor", "load_predictor", "make_features", "predictor_from_json",
]
