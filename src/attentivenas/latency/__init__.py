"""Latency on a device: direct measurement, per-op signatures from the block plan, latency tables.

Lives here (the runtimes themselves are one floor up, in :mod:`attentivenas.runtimes`): ``measure`` (:func:`measure_latency` of one
model in a runtime, whole subnets of a space), ``drift`` (times rescaled to the machine's typical
speed by a reference timed between them), ``exports`` (programs exported in worker processes),
``ops`` (:class:`OpSig`, the ops of an arch, the module that runs each op), ``table``
(:class:`LatencyTable`: the file format, scalar and vectorised prediction), ``build`` (a table
measured per runtime from a :class:`~attentivenas.config.LatencyTableConfig`) and ``fit`` (the
overhead and the per-group ``scaled`` model fitted, the MAPE reported, a table refitted), ``kit``
(a measurement kit: the table's programs, a manifest and ``kit_runner``, the runner copied into it
that needs only the runtime's package) ``device_import`` (a kit's timings checked and fitted
into a table), ``device_run`` (the kit timed by the user's command on a reachable device and
imported: ``build-table --runner``), ``whole`` (:class:`WholeModel`, a whole-model predictor learned from
whole subnets, and :func:`load_latency_predictor`, which reads a table or a model), ``whole_fit`` (its fit
and held-out errors beside the per-op table's) and ``commands`` (what the ``latency`` commands do and print).

May import: ``attentivenas.space``, ``costs``, ``nn``, ``runtimes``, ``config``, ``devices``, ``io``, ``progress``, ``errors``.
"""

from ..devices import device_name, resolve_device
from ..runtimes.runners import CPU_CLOCK_RUNTIMES, RUNTIMES, Runner, check_runtime, prepare, runtime_version
from .build import build_latency_table, build_table, check_jobs
from .fit import (
    MAX_REFIT_SUBNETS,
    MIN_SCALED_ARCHS,
    fit_models,
    fit_overhead,
    fit_scaled,
    holdout_errors,
    refit_table,
    stored_subnets,
    table_error,
)
from .measure import (
    LatencyResult,
    arch_runners,
    measure_arch,
    measure_archs,
    measure_latency,
    random_subnet,
    time_in_passes,
    time_runner,
)
from .ops import (
    OP_KINDS,
    OpSig,
    arch_ops,
    block_ops,
    first_ops,
    head_ops,
    measure_op,
    null_runner,
    op_module,
    op_runner,
    space_signatures,
    stage_ops,
)
from .table import (
    MIN_FRACTION,
    MODELS,
    OP_GROUPS,
    TABLE_FORMAT,
    TABLE_VERSION,
    LatencyTable,
    check_table_precision,
)
from .whole import MODEL_FORMAT, LatencyPredictor, WholeModel, load_latency_predictor, resolve_latency_budget

__all__ = [
    "device_name", "resolve_device", "LatencyResult", "measure_arch", "measure_archs", "measure_latency",
    "random_subnet", "OP_KINDS", "OpSig", "arch_ops", "block_ops", "first_ops", "head_ops", "measure_op", "op_module",
    "space_signatures", "stage_ops", "MIN_FRACTION", "TABLE_FORMAT", "TABLE_VERSION", "LatencyTable",
    "build_latency_table", "fit_overhead", "table_error", "time_runner", "op_runner", "null_runner", "CPU_CLOCK_RUNTIMES",
    "RUNTIMES", "Runner", "check_runtime", "prepare", "runtime_version", "MIN_SCALED_ARCHS", "MODELS", "OP_GROUPS",
    "fit_models", "fit_scaled", "holdout_errors", "arch_runners", "time_in_passes",
    "refit_table", "stored_subnets", "build_table", "check_jobs", "MAX_REFIT_SUBNETS", "check_table_precision",
    "resolve_latency_budget", "MODEL_FORMAT", "LatencyPredictor", "WholeModel", "load_latency_predictor",
]
