"""FLOPs or parameters as table look-ups: the fast cost of attentive sampling.

A subnet's cost is a sum of additive terms: the first conv (resolution, first width), each stage
(resolution, input and output width, depth, kernel, expand ratio: depths are >= 1, so a stage's
input width is the previous stage's width) and the head (resolution, last stage width, last conv
width). Each term is tabulated once from :func:`~attentivenas.costs.layers.layer_specs` (the
reference counter) over all its knob combinations; a batch of gene rows then costs one small
matrix product (gene -> table offset of every term) and one gather.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass

import numpy as np

from ..space import SearchSpace, net_plan
from .layers import LayerSpec, block_layers, layer_specs
from .model import CostModel

TABLE_METRICS = ("flops", "params")


@dataclass(frozen=True)
class _Tables:
    index: np.ndarray  # float32 [num_genes, num_terms]: gene -> offset of each term's table
    offset: np.ndarray  # float32 [num_terms]
    macs: np.ndarray  # float64 flat table of all terms (integral values)
    params: np.ndarray


@dataclass(frozen=True)
class _Term:
    """One additive term: its gene columns and, for a stage, the stage index (depth column inside)."""

    name: str
    cols: tuple[int, ...]
    stage: int | None = None


def _terms(space: SearchSpace) -> list[_Term]:
    lay = space.layout
    n_s = space.num_stages
    terms = [_Term("first_conv", (lay.resolution, lay.width(0)))]
    for s in range(n_s):
        cols = (lay.resolution, lay.width(s), lay.width(s + 1), lay.depth(s), lay.kernel(s), lay.expand(s))
        terms.append(_Term(f"stage{s + 1}", cols, s))
    terms.append(_Term("head", (lay.resolution, lay.width(n_s), lay.width(n_s + 1))))
    return terms


def _sum(layers: list[LayerSpec]) -> tuple[int, int]:
    return sum(ls.macs for ls in layers), sum(ls.params for ls in layers)


def _fill_term(space: SearchSpace, num_classes: int, term: _Term, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tables (macs, params) of one term over its knob combinations. A stage is evaluated once at
    its maximum depth; smaller depths are prefix sums over its blocks."""
    shape = [int(sizes[c]) for c in term.cols]
    tm = np.zeros(shape, dtype=np.float64)
    tp = np.zeros(shape, dtype=np.float64)
    depth_pos = 3 if term.stage is not None else None
    loop = [i for i in range(len(shape)) if i != depth_pos]
    base = np.zeros(len(sizes), dtype=np.int64)
    for combo in itertools.product(*[range(shape[i]) for i in loop]):
        genes = base.copy()
        for i, v in zip(loop, combo, strict=True):
            genes[term.cols[i]] = v
        if term.stage is None:
            specs = layer_specs(space, space.decode(genes), num_classes)
            keep = ("first_conv",) if term.name == "first_conv" else ("head.", "classifier")
            tm[combo], tp[combo] = _sum([ls for ls in specs if ls.name.startswith(keep)])
            continue
        genes[term.cols[depth_pos]] = shape[depth_pos] - 1
        blocks = [b for b in net_plan(space, space.decode(genes)).blocks if b.stage == term.stage]
        per = np.array([_sum(block_layers(b)) for b in blocks], dtype=np.float64)
        cum = np.cumsum(per, axis=0)
        for di, dv in enumerate(space.stages[term.stage].depths):
            full = list(combo)
            full.insert(depth_pos, di)
            tm[tuple(full)], tp[tuple(full)] = cum[dv - 1]
    return tm, tp


@functools.lru_cache(maxsize=16)
def _build_tables(space: SearchSpace, num_classes: int) -> _Tables:
    """Tables of every additive term (see the module doc), checked against :class:`CostModel`."""
    sizes = space.gene_sizes
    terms = _terms(space)
    entries = sum(int(np.prod([int(sizes[c]) for c in t.cols])) for t in terms)
    if entries >= 2**24:
        raise ValueError(f"space {space.name!r} is too large for the table cost ({entries} entries)")
    index = np.zeros((len(sizes), len(terms)), dtype=np.float64)
    offsets, tables_m, tables_p = [], [], []
    off = 0
    for t, term in enumerate(terms):
        shape = [int(sizes[c]) for c in term.cols]
        strides = np.cumprod([1] + shape[::-1][:-1])[::-1]
        for c, st in zip(term.cols, strides, strict=True):
            index[c, t] += st
        offsets.append(off)
        off += int(np.prod(shape))
        tm, tp = _fill_term(space, num_classes, term, sizes)
        tables_m.append(tm.ravel())
        tables_p.append(tp.ravel())
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

    Equal to :class:`~attentivenas.costs.CostModel` (``flops``; ``params`` / 1e6), but a batch costs
    one small matrix product and one gather. Callable as ``cost(genes) -> float64[n]``.
    """

    def __init__(self, space: SearchSpace, metric: str = "flops", num_classes: int = 1000) -> None:
        if metric not in TABLE_METRICS:
            raise ValueError(f"table cost metric {metric!r} is not one of {list(TABLE_METRICS)}")
        self.space = space
        self.metric = metric
        self.num_classes = num_classes
        self._tables = _build_tables(space, num_classes)

    def from_float(self, gf: np.ndarray) -> np.ndarray:
        """Costs of a float32 gene matrix of integral values (e.g. ``uniform_genes_f32``)."""
        return _table_totals(self._tables, gf, self.metric) / 1e6

    def __call__(self, genes: np.ndarray) -> np.ndarray:
        gf = np.atleast_2d(np.asarray(genes)).astype(np.float32)
        return self.from_float(gf)
