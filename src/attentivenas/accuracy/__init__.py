"""Accuracy: evaluation of subnets, and accuracy predictors learnt from measured (arch, top-1) pairs.

Lives here: ``protocol`` (where stage 2 measures: the data of ``--data``, its splits, hold-out
warnings; the settings are :class:`~attentivenas.config.MeasureSettings`), ``evaluate``
(BN-recalibrated top-1 / top-5 of a subnet, :class:`SubnetEvaluator`; quantized: :class:`Int8SubnetEvaluator`),
``dataset`` (:class:`ArchDataset` JSONL files), ``measure`` (archs spread over the FLOPs range, measured
over ranks), ``provenance`` (what measured a file: reused only when it is what measures now), ``noise`` (Wilson
intervals of a measured top-1), ``build`` (``predictor build``: a checkpoint's subnets into a dataset), ``models`` (the
regressors, pickle-free), ``predictor`` (features, fitting, cross-validation, files), ``metrics`` and
``published`` (the published models evaluated on a checkpoint); ``commands`` (what ``evaluate`` and ``ranking`` do and print).

May import: ``attentivenas.space``, ``costs``, ``nn``, ``runtimes``, ``config``, ``data``, ``devices``, ``host_memory``,
``distributed``, ``io``, ``progress``, ``errors``.
"""

from .build import build_from_checkpoint
from .dataset import DATASET_FORMAT, ArchDataset, ArchRecord, JsonlAppender, dataset_header
from .evaluate import Int8SubnetEvaluator, SubnetEvaluator, evaluate_arch, evaluate_subnet, score_predictions
from .measure import (
    SPREADS,
    MeasureStats,
    build_arch_dataset,
    finish_part_file,
    format_seconds,
    measure_missing,
    open_shared_cache,
    part_file,
    spread_genes,
)
from .metrics import format_metric, kendall_tau, rank_metrics, rmse, spearman_rho
from .models import DEFAULT_HYPERPARAMS, KINDS, MODEL_CLASSES, GPModel, LGBMModel, LinearModel, TreeEnsemble
from .noise import Z95, images_to_resolve, intervals_overlap, split_label, wilson_interval
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
    INTERPOLATIONS,
    PIPELINES,
    SPLITS,
    capped,
    holdout_warning,
    resolve_data,
    split_of,
    stage2_data_config,
)
from .provenance import StaleMeasurements, checked_text, provenance_of, weights_fingerprint
from .published import published_reference, published_table
from .ranking import arch_key

__all__ = [
    "build_from_checkpoint",
    "DATASET_FORMAT", "SPREADS", "ArchDataset", "ArchRecord", "JsonlAppender", "build_arch_dataset",
    "dataset_header", "spread_genes", "MeasureStats", "finish_part_file", "format_seconds", "measure_missing",
    "open_shared_cache", "part_file", "SubnetEvaluator", "Int8SubnetEvaluator", "evaluate_arch", "evaluate_subnet",
    "score_predictions", "resolve_data",
    "format_metric", "kendall_tau", "rank_metrics", "rmse", "spearman_rho", "INTERPOLATIONS", "PIPELINES", "SPLITS", "capped", "holdout_warning", "stage2_data_config",
    "published_table", "published_reference", "split_of", "DEFAULT_HYPERPARAMS", "KINDS", "MODEL_CLASSES",
    "GPModel", "LGBMModel", "LinearModel", "TreeEnsemble", "DEFAULT_KINDS", "FEATURE_SETS", "FORMAT", "Predictor",
    "check_kinds", "check_space", "cross_validate", "evaluate_predictor", "feature_names", "fit_best",
    "fit_predictor", "load_predictor", "make_features", "predictor_from_json",
    "StaleMeasurements", "checked_text", "provenance_of", "weights_fingerprint",
    "Z95", "images_to_resolve", "intervals_overlap", "split_label", "wilson_interval", "arch_key",
]
