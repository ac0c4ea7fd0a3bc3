"""Analytic cost model: FLOPs and parameters of a subnet, one at a time or vectorised.

FLOPs follow the authors' convention (multiply-accumulates of conv and linear layers only):
first conv, every expand / depthwise / project conv at its output size, SE as
``2 * C_mid * se_mid`` at 1x1, the shortcut 1x1 conv where channels differ, the head's two convs
(feature mix at 1x1) and the classifier. BN, activations, pooling, the SE multiply, residual adds,
biases and the input resize are not counted.

Parameters are those of the static subnet: shortcut convs of identity shortcuts, which never run,
are not counted (the authors' static model keeps them as dead weights).

:func:`layer_specs` lists every conv/linear layer of one arch (used by the latency table and the
memory model); :func:`flops_batch` and :func:`params_batch` compute the same totals for many gene
vectors at once with numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .space import Arch, SearchSpace, make_divisible

SE_REDUCTION = 4
HEAD_EXPAND = 6


def conv_out_size(size: int, stride: int) -> int:
    """Spatial size after a 'same'-padded conv (or the shortcut's avg-pool) of ``stride``."""
    return -(-size // stride)


def mid_channels(c_in: int, expand: float) -> int:
    """Middle width of an MBConv block with an expand conv: make_divisible(round(c_in * t), 8).
    (A stage without expand conv, whose only ratio is 1, keeps the input width.)"""
    return make_divisible(round(c_in * expand), 8)


def se_channels(c_mid: int) -> int:
    return make_divisible(c_mid // SE_REDUCTION, 8)


@dataclass(frozen=True)
class LayerSpec:
    """One conv or linear layer of a static subnet.

    ``kind`` is one of ``first_conv``, ``expand``, ``depthwise``, ``se_reduce``, ``se_expand``,
    ``project``, ``shortcut``, ``final_expand``, ``feature_mix``, ``classifier``.
    """

    name: str
    kind: str
    c_in: int
    c_out: int
    kernel: int
    stride: int
    size_in: int
    size_out: int
    groups: int = 1
    bias: bool = False
    bn: bool = True

    @property
    def macs(self) -> int:
        return self.c_in // self.groups * self.c_out * self.kernel**2 * self.size_out**2

    @property
    def params(self) -> int:
        n = self.c_in // self.groups * self.c_out * self.kernel**2
        if self.bias:
            n += self.c_out
        if self.bn:
            n += 2 * self.c_out
        return n


def layer_specs(space: SearchSpace, arch: Arch, num_classes: int = 1000) -> list[LayerSpec]:
    """Every conv/linear layer that runs in the subnet ``arch``, in execution order."""
    r = arch.resolution
    size = conv_out_size(r, space.first_stride)
    c_in = arch.width[0]
    layers = [LayerSpec("first_conv", "first_conv", 3, c_in, 3, space.first_stride, r, size)]
    for s, stage in enumerate(space.stages):
        c_out = arch.width[s + 1]
        k, t = arch.kernel_size[s], arch.expand_ratio[s]
        for j in range(arch.depth[s]):
            stride = stage.stride if j == 0 else 1
            size_out = conv_out_size(size, stride)
            mid = mid_channels(c_in, t) if stage.has_expand_conv else c_in
            p = f"stage{s + 1}.block{j}"
            if stage.has_expand_conv:
                layers.append(LayerSpec(f"{p}.expand", "expand", c_in, mid, 1, 1, size, size))
            layers.append(LayerSpec(f"{p}.depthwise", "depthwise", mid, mid, k, stride, size, size_out, groups=mid))
            if stage.se:
                se = se_channels(mid)
                layers.append(LayerSpec(f"{p}.se_reduce", "se_reduce", mid, se, 1, 1, 1, 1, bias=True, bn=False))
                layers.append(LayerSpec(f"{p}.se_expand", "se_expand", se, mid, 1, 1, 1, 1, bias=True, bn=False))
            layers.append(LayerSpec(f"{p}.project", "project", mid, c_out, 1, 1, size_out, size_out))
            if c_in != c_out:
                layers.append(LayerSpec(f"{p}.shortcut", "shortcut", c_in, c_out, 1, 1, size_out, size_out, bn=False))
            c_in, size = c_out, size_out
    c_exp = HEAD_EXPAND * c_in
    c_last = arch.width[-1]
    layers.append(LayerSpec("head.final_expand", "final_expand", c_in, c_exp, 1, 1, size, size))
    layers.append(LayerSpec("head.feature_mix", "feature_mix", c_exp, c_last, 1, 1, 1, 1, bn=False))
    layers.append(LayerSpec("classifier", "classifier", c_last, num_classes, 1, 1, 1, 1, bias=True, bn=False))
    return layers


def count_flops(space: SearchSpace, arch: Arch, num_classes: int = 1000) -> float:
    """MFLOPs (million multiply-accumulates) of ``arch`` under the authors' convention."""
    return sum(layer.macs for layer in layer_specs(space, arch, num_classes)) / 1e6


def count_params(space: SearchSpace, arch: Arch, num_classes: int = 1000) -> int:
    """Parameters of the static subnet (BN affine included, dead shortcut convs excluded)."""
    return sum(layer.params for layer in layer_specs(space, arch, num_classes))


# --------------------------------------------------------------------------- vectorised
def _make_divisible_vec(v: np.ndarray, divisor: int = 8) -> np.ndarray:
    new_v = np.maximum(1, np.floor(v + divisor / 2).astype(np.int64) // divisor * divisor)
    return np.where(new_v < 0.9 * v, new_v + divisor, new_v)


class CostModel:
    """Vectorised FLOPs and parameters for gene matrices of one space.

    Built once per (space, num_classes); :meth:`flops` and :meth:`params` take an integer array of
    shape (n, num_genes) (see :meth:`SearchSpace.sample_genes`) and return float arrays of length n
    (MFLOPs and parameter counts).
    """

    def __init__(self, space: SearchSpace, num_classes: int = 1000) -> None:
        self.space = space
        self.num_classes = num_classes
        ch = space.choices
        self._res = np.asarray(ch["resolution"][0], dtype=np.int64)
        self._width = [np.asarray(c, dtype=np.int64) for c in ch["width"]]
        self._depth = [np.asarray(c, dtype=np.int64) for c in ch["depth"]]
        self._kernel = [np.asarray(c, dtype=np.int64) for c in ch["kernel_size"]]
        self._expand = [np.asarray(c, dtype=np.float64) for c in ch["expand_ratio"]]
        n_w, n_s = len(ch["width"]), space.num_stages
        self._off_w, self._off_d = 1, 1 + n_w
        self._off_k, self._off_e = 1 + n_w + n_s, 1 + n_w + 2 * n_s

    def _columns(self, genes: np.ndarray):
        g = np.atleast_2d(np.asarray(genes, dtype=np.int64))
        res = self._res[g[:, 0]]
        widths = [self._width[i][g[:, self._off_w + i]] for i in range(len(self._width))]
        depths = [self._depth[i][g[:, self._off_d + i]] for i in range(len(self._depth))]
        kernels = [self._kernel[i][g[:, self._off_k + i]] for i in range(len(self._kernel))]
        expands = [self._expand[i][g[:, self._off_e + i]] for i in range(len(self._expand))]
        return res, widths, depths, kernels, expands

    def _totals(self, genes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        space = self.space
        res, widths, depths, kernels, expands = self._columns(genes)
        size = -(-res // space.first_stride)
        c_in = widths[0]
        macs = 27 * c_in * size**2
        params = 27 * c_in + 2 * c_in
        for s, stage in enumerate(space.stages):
            c_out, k, t, d = widths[s + 1], kernels[s], expands[s], depths[s]
            for j in range(stage.max_depth):
                on = (j < d).astype(np.int64)
                stride = stage.stride if j == 0 else 1
                size_out = -(-size // stride)
                mid = _make_divisible_vec(np.round(c_in * t)) if stage.has_expand_conv else c_in
                m = 0
                p = 0
                if stage.has_expand_conv:
                    m = m + c_in * mid * size**2
                    p = p + c_in * mid + 2 * mid
                m = m + mid * k * k * size_out**2
                p = p + mid * k * k + 2 * mid
                if stage.se:
                    se = _make_divisible_vec(mid // SE_REDUCTION)
                    m = m + 2 * mid * se
                    p = p + 2 * mid * se + se + mid
                m = m + mid * c_out * size_out**2
                p = p + mid * c_out + 2 * c_out
                diff = (c_in != c_out).astype(np.int64)
                m = m + diff * c_in * c_out * size_out**2
                p = p + diff * c_in * c_out
                macs = macs + on * m
                params = params + on * p
                # blocks past the depth leave channels and size unchanged
                c_in = np.where(on == 1, c_out, c_in)
                size = np.where(on == 1, size_out, size)
        c_exp = HEAD_EXPAND * c_in
        c_last = widths[-1]
        macs = macs + c_in * c_exp * size**2 + c_exp * c_last + c_last * self.num_classes
        params = params + c_in * c_exp + 2 * c_exp + c_exp * c_last + c_last * self.num_classes + self.num_classes
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
