"""Analytic costs of subnets: FLOPs and parameters (scalar, vectorised, table look-ups) and memory.

Lives here: ``layers`` (per-layer specs of one subnet, :func:`count_flops`, :func:`count_params`),
``model`` (:class:`CostModel`, vectorised over gene matrices), ``table`` (:class:`TableCost`, the
same numbers as table look-ups for the sampler's hot path) and ``memory`` (weight bytes and the
peak activation bytes of eager inference; :mod:`attentivenas.nn.memory` measures them) and ``commands``
(what ``attentivenas space`` and ``flops`` compute).

May import: ``attentivenas.space``, ``attentivenas.errors``, ``attentivenas.io`` (numpy outside; no torch,
so the cost model loads in a fraction of a second).
"""

from .layers import LayerSpec, block_layers, count_flops, count_params, layer_specs
from .memory import (
    ITEMSIZE,
    MB,
    MemoryModel,
    activation_steps,
    itemsize,
    memory_mb,
    peak_activation_bytes,
    weight_bytes,
)
from .model import CostModel, flops_batch, params_batch
from .table import TABLE_METRICS, TableCost

__all__ = [
    "LayerSpec", "block_layers", "count_flops", "count_params", "layer_specs",
    "ITEMSIZE", "MB", "MemoryModel", "activation_steps", "itemsize", "memory_mb",
    "peak_activation_bytes", "weight_bytes", "CostModel", "flops_batch", "params_batch", "TABLE_METRICS", "TableCost",
]
