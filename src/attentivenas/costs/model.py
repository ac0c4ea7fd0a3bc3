"""Vectorised FLOPs and parameters of gene matrices, from the vectorised block plan."""

from __future__ import annotations

import numpy as np

from ..space import Arch, SearchSpace, SlotColumns, plan_columns


def _block_costs(b: SlotColumns) -> tuple[np.ndarray, np.ndarray]:
    """Multiply-adds and parameters of one block slot (as if on; the caller masks by ``on``)."""
    c_in, mid, c_out, k = b.c_in, b.c_mid, b.c_out, b.kernel
    size, size_out = b.size_in, b.size_out
    m = mid * k * k * size_out**2 + mid * c_out * size_out**2
    p = mid * k * k + 2 * mid + mid * c_out + 2 * c_out
    if b.has_expand:
        m = m + c_in * mid * size**2
        p = p + c_in * mid + 2 * mid
    if b.se:
        m = m + 2 * mid * b.se_mid
        p = p + 2 * mid * b.se_mid + b.se_mid + mid
    diff = (c_in != c_out).astype(np.int64)
    m = m + diff * c_in * c_out * size_out**2
    p = p + diff * c_in * c_out
    return m, p


class CostModel:
    """Vectorised FLOPs and parameters for gene matrices of one space.

    Built once per (space, num_classes); :meth:`flops` and :meth:`params` take an integer array of
    shape (n, num_genes) (see :meth:`SearchSpace.sample_genes`) and return float arrays of length n
    (MFLOPs and parameter counts).
    """

    def __init__(self, space: SearchSpace, num_classes: int = 1000) -> None:
        self.space = space
        self.num_classes = num_classes

    def _totals(self, genes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        plan = plan_columns(self.space, genes)
        c0, size = plan.first_out, plan.first_size
        macs = 27 * c0 * size**2
        params = 27 * c0 + 2 * c0
        for b in plan.slots:
            m, p = _block_costs(b)
            on = b.on.astype(np.int64)
            macs = macs + on * m
            params = params + on * p
        c_in, c_exp, c_last, n = plan.head_in, plan.head_expand, plan.last, self.num_classes
        macs = macs + c_in * c_exp * plan.head_size**2 + c_exp * c_last + c_last * n
        params = params + c_in * c_exp + 2 * c_exp + c_exp * c_last + c_last * n + n
        return macs.astype(np.float64) / 1e6, params.astype(np.float64)

    def flops(self, genes: np.ndarray) -> np.ndarray:
        """MFLOPs of every row of ``genes``."""
        return self._totals(genes)[0]

    def params(self, genes: np.ndarray) -> np.ndarray:
        """Parameter counts of every row of ``genes``."""
        return self._totals(genes)[1]

    def flops_and_params(self, genes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._totals(genes)

    def arch_flops(self, arch: Arch) -> float:
        return float(self.flops(self.space.encode(arch)[None, :])[0])


def flops_batch(space: SearchSpace, genes: np.ndarray, num_classes: int = 1000) -> np.ndarray:
    """MFLOPs of many gene vectors (builds a :class:`CostModel`; keep one for repeated calls)."""
    return CostModel(space, num_classes).flops(genes)


def params_batch(space: SearchSpace, genes: np.ndarray, num_classes: int = 1000) -> np.ndarray:
    return CostModel(space, num_classes).params(genes)
