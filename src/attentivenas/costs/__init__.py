"""Analytic costs of subnets: FLOPs and parameters (scalar, vectorised, table look-ups) and memory.

Lives here: ``layers`` (per-layer specs of one subnet, :func:`count_flops`, :func:`count_params`),
``model`` (:class:`CostModel`, vectorised over gene matrices), ``table`` (:class:`TableCost`, the
same numbers as table look-ups for the sampler's hot path) and ``memory`` (weight bytes and the
peak activation bytes of eager inference, with a tracer that measures them).

May import: ``attentivenas.space``, ``attentivenas.errors`` (numpy and torch outside).
"""

from .layers import LayerSpec, block_layers, count_flops, count_params, layer_specs
from .memory import (
    MB,
    MemoryModel,
    activation_steps,
    measure_peak_activation_bytes,
    measure_weight_bytes,
    memory_mb,
    peak_activation_bytes,
    weight_bytes,
)
from .model import CostModel, flops_batch, params_batch
from .table import TABLE_METRICS, TableCost

__all__ = [
    "LayerSpec", "block_layers", "count_flops", "count_params", "layer_specs",
    "MB", "MemoryModel", "activation_steps", "measure_peak_activation_bytes", "measure_weight_bytes", "memory_mb",
    "peak_activation_bytes", "weight_bytes", "CostModel", "flops_batch", "params_batch", "TABLE_METRICS", "TableCost",
]
