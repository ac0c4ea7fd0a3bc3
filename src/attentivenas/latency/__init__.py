"""Latency on a device: direct measurement, per-op signatures from the block plan, latency tables.

Lives here: ``measure`` (:func:`measure_latency` of one model, whole subnets of a space), ``ops``
(:class:`OpSig`, the ops of an arch, the module that runs each op) and ``table``
(:class:`LatencyTable`: build, predict scalar and vectorised, fit the overhead, report the MAPE).

May import: ``attentivenas.space``, ``costs``, ``nn``, ``devices``, ``io``, ``errors``.
"""

from ..devices import device_name, resolve_device
from .measure import LatencyResult, measure_arch, measure_archs, measure_latency, random_subnet
from .ops import (
    OP_KINDS,
    OpSig,
    arch_ops,
    block_ops,
    first_ops,
    head_ops,
    measure_op,
    op_module,
    space_signatures,
    stage_ops,
)
from .table import (
    MIN_FRACTION,
    TABLE_FORMAT,
    TABLE_VERSION,
    LatencyTable,
    build_latency_table,
    fit_overhead,
    table_error,
)

__all__ = [
    "device_name", "resolve_device", "LatencyResult", "measure_arch", "measure_archs", "measure_latency",
    "random_subnet", "OP_KINDS", "OpSig", "arch_ops", "block_ops", "first_ops", "head_ops", "measure_op", "op_module",
    "space_signatures", "stage_ops", "MIN_FRACTION", "TABLE_FORMAT", "TABLE_VERSION", "LatencyTable",
    "build_latency_table", "fit_overhead", "table_error",
]
