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

import functools
import itertools
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


# --------------------------------------------------------------------------- table cost
TABLE_METRICS = ("flops", "params")


@dataclass(frozen=True)
class _Tables:
    index: np.ndarray  # float32 [num_genes, num_terms]: gene -> offset of each term's table
    offset: np.ndarray  # float32 [num_terms]
    macs: np.ndarray  # float64 flat table of all terms (integral values)
    params: np.ndarray


def _terms(space: SearchSpace) -> list[tuple[str, list[int], list[str]]]:
    """Additive terms of the cost: (name, gene columns, layer-name prefixes). Gene 0 is the resolution."""
    n_w, n_s = len(space.choices["width"]), space.num_stages
    w = [1 + i for i in range(n_w)]
    d = [1 + n_w + s for s in range(n_s)]
    k = [1 + n_w + n_s + s for s in range(n_s)]
    e = [1 + n_w + 2 * n_s + s for s in range(n_s)]
    terms = [("first_conv", [0, w[0]], ["first_conv"])]
    for s in range(n_s):
        terms.append((f"stage{s + 1}", [0, w[s], w[s + 1], d[s], k[s], e[s]], [f"stage{s + 1}."]))
    terms.append(("head", [0, w[n_s], w[n_s + 1]], ["head.", "classifier"]))
    return terms


@functools.lru_cache(maxsize=16)
def _build_tables(space: SearchSpace, num_classes: int) -> _Tables:
    """Tables of every additive term, filled from :func:`layer_specs` (the reference counter).

    A stage's cost depends only on the resolution, its input and output widths, depth, kernel and
    expand ratio (depths are >= 1, so a stage's input width is the previous stage's width). Each
    stage is evaluated at its maximum depth; the values for smaller depths are prefix sums over its
    blocks.
    """
    sizes = space.gene_sizes
    n_w = len(space.choices["width"])
    n_s = space.num_stages
    terms = _terms(space)
    index = np.zeros((len(sizes), len(terms)), dtype=np.float64)
    offsets, tables_m, tables_p = [], [], []
    off = 0
    base = np.zeros(len(sizes), dtype=np.int64)
    for t, (_, cols, prefixes) in enumerate(terms):
        shape = [int(sizes[c]) for c in cols]
        strides = np.cumprod([1] + shape[::-1][:-1])[::-1]
        for c, st in zip(cols, strides, strict=True):
            index[c, t] += st
        offsets.append(off)
        off += int(np.prod(shape))
        tm = np.zeros(shape, dtype=np.float64)
        tp = np.zeros(shape, dtype=np.float64)
        # a depth column (stages) is filled from one evaluation at maximum depth
        depth_pos = next((i for i, c in enumerate(cols) if 1 + n_w <= c < 1 + n_w + n_s), None)
        loop_cols = [i for i in range(len(cols)) if i != depth_pos]
        for combo in itertools.product(*[range(shape[i]) for i in loop_cols]):
            genes = base.copy()
            for i, v in zip(loop_cols, combo, strict=True):
                genes[cols[i]] = v
            if depth_pos is not None:
                genes[cols[depth_pos]] = shape[depth_pos] - 1
            arch = space.decode(genes)
            specs = [ls for ls in layer_specs(space, arch, num_classes) if ls.name.startswith(tuple(prefixes))]
            if depth_pos is None:
                tm[combo] = sum(ls.macs for ls in specs)
                tp[combo] = sum(ls.params for ls in specs)
                continue
            s = cols[depth_pos] - 1 - n_w
            depths = space.stages[s].depths
            per_m = np.zeros(max(depths))
            per_p = np.zeros(max(depths))
            for ls in specs:
                j = int(ls.name.split(".")[1][len("block") :])
                per_m[j] += ls.macs
                per_p[j] += ls.params
            cm, cp = np.cumsum(per_m), np.cumsum(per_p)
            for di, dv in enumerate(depths):
                full = list(combo)
                full.insert(depth_pos, di)
                tm[tuple(full)] = cm[dv - 1]
                tp[tuple(full)] = cp[dv - 1]
        tables_m.append(tm.ravel())
        tables_p.append(tp.ravel())
    if off >= 2**24:
        raise ValueError(f"space {space.name!r} is too large for the table cost ({off} entries)")
    tables = _Tables(
        index=index.astype(np.float32),
        offset=np.asarray(offsets, dtype=np.float32),
        macs=np.concatenate(tables_m),
        params=np.concatenate(tables_p),
    )
    _check_tables(space, num_classes, tables)
    return tables


def _table_totals(tables: _Tables, gf: np.ndarray, which: str) -> np.ndarray:
    idx = gf @ tables.index
    idx += tables.offset
    table = tables.macs if which == "flops" else tables.params
    return table[idx.astype(np.intp)].sum(axis=1)


def _check_tables(space: SearchSpace, num_classes: int, tables: _Tables) -> None:
    """The tables must reproduce :class:`CostModel` exactly (random archs, min and max)."""
    rng = np.random.default_rng(12345)
    genes = np.concatenate(
        [space.sample_genes(rng, 64), np.zeros((1, space.num_genes), np.int64), (space.gene_sizes - 1)[None, :]]
    )
    ref_m, ref_p = CostModel(space, num_classes).flops_and_params(genes)
    gf = genes.astype(np.float32)
    got_m = _table_totals(tables, gf, "flops") / 1e6
    got_p = _table_totals(tables, gf, "params")
    if not (np.array_equal(got_m, ref_m) and np.array_equal(got_p, ref_p)):
        raise RuntimeError(f"table cost disagrees with CostModel on space {space.name!r}")


class TableCost:
    """FLOPs (MFLOPs) or parameters (millions) of gene matrices, as table look-ups.

    Equal to :class:`attentivenas.cost.CostModel` (``flops``; ``params`` / 1e6), but a batch costs one
    small matrix product and one gather. Callable as ``cost(genes) -> float64[n]``.
    """

    def __init__(self, space: SearchSpace, metric: str = "flops", num_classes: int = 1000) -> None:
        if metric not in TABLE_METRICS:
            raise ValueError(f"table cost metric {metric!r} is not one of {list(TABLE_METRICS)}")
        self.space = space
        self.metric = metric
        self.num_classes = num_classes
        self._tables = _build_tables(space, num_classes)

    def from_float(self, gf: np.ndarray) -> np.ndarray:
        """Costs of a float32 gene matrix of integral values (e.g. :func:`attentivenas.sampling.uniform_genes_f32`)."""
        return _table_totals(self._tables, gf, self.metric) / 1e6

    def __call__(self, genes: np.ndarray) -> np.ndarray:
        gf = np.atleast_2d(np.asarray(genes)).astype(np.float32)
        return self.from_float(gf)
