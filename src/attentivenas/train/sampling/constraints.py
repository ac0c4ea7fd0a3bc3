"""The constraint a prior's bins measure: FLOPs or parameters (table look-ups), or latency (a
latency table's vectorised prediction, ms) and memory (the analytic memory model, MB) as callables
``genes int64[n, num_genes] -> float[n]``."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ...costs import MemoryModel
from ...errors import ConfigError, UserError
from ...latency import load_latency_predictor
from ...space import SearchSpace

#: Every constraint the training config accepts (``latency`` and ``memory`` are callables).
PRIOR_CONSTRAINTS = ("flops", "params", "latency", "memory")
#: A callable constraint without a bin width gets ``(max - min) / DEFAULT_NUM_BINS`` (2 significant digits).
DEFAULT_NUM_BINS = 40
UNITS = {"flops": " MFLOPs", "params": " M params", "latency": " ms", "memory": " MB"}

ConstraintFn = Callable[[np.ndarray], np.ndarray]


def derived_bin_width(vmin: float, vmax: float, num_bins: int = DEFAULT_NUM_BINS) -> float:
    """``(vmax - vmin) / num_bins`` rounded to 2 significant digits (1.0 for an empty range)."""
    span = float(vmax) - float(vmin)
    if not math.isfinite(span) or span <= 0:
        return 1.0
    return float(f"{span / num_bins:.2g}")


class NamedConstraint:
    """A vectorised constraint ``genes int64[n, num_genes] -> float[n]`` with a name and a unit
    (the name is what the prior's state and messages show)."""

    def __init__(self, fn: ConstraintFn, name: str, unit: str = "") -> None:
        self.fn = fn
        self.__name__ = name
        self.unit = unit

    def __call__(self, genes: np.ndarray) -> np.ndarray:
        return np.asarray(self.fn(genes), dtype=np.float64)


def build_constraint(space: SearchSpace, name: str, num_classes: int = 1000,
                     latency_table: str | Path | None = None) -> str | NamedConstraint:
    """The prior's constraint for a ``sampler.constraint`` value.

    ``flops`` / ``params`` are returned as names (the fast table cost); ``latency`` is the
    vectorised prediction of a latency table (``sampler.latency_table``, from ``attentivenas
    latency build-table``; its space and class count are checked), in ms; ``memory`` is
    :class:`attentivenas.costs.MemoryModel` (peak activations + weights at batch 1, float32), in MB.
    """
    if name in ("flops", "params"):
        return name
    if name == "latency":
        if latency_table is None:
            raise ConfigError("sampler.latency_table (a table from `attentivenas latency build-table`) is required "
                              "when sampler.constraint=latency")
        p = Path(latency_table)
        if not p.is_file():
            raise ConfigError(f"sampler.latency_table={p}: file not found (build one with "
                              f"`attentivenas latency build-table --space {space.name} --out {p}`)")
        try:
            table = load_latency_predictor(p)  # a per-op table or a whole model
            predict = table.gene_fn(space)
        except UserError as exc:
            raise ConfigError(f"sampler.latency_table={p}: {exc}") from None
        if table.num_classes != num_classes:
            raise ConfigError(f"sampler.latency_table={p} was built for {table.num_classes} classes, the supernet "
                              f"has {num_classes}; build it with --num-classes {num_classes}")

        def latency_ms(genes: np.ndarray) -> np.ndarray:
            try:
                return predict(genes)
            except UserError as exc:  # a table built from a few archs misses ops of others
                raise ConfigError(f"sampler.latency_table={p} does not cover the space: {exc}") from None

        return NamedConstraint(latency_ms, "latency", UNITS["latency"])
    if name == "memory":
        return NamedConstraint(MemoryModel(space, num_classes), "memory", UNITS["memory"])
    raise ConfigError(f"sampler.constraint = {name!r} is not allowed; allowed: {list(PRIOR_CONSTRAINTS)}")
