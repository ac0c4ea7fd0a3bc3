"""Attentive sampling of the middle subnets of stage 1 (AttentiveNAS, sections 1 and 5 of the reference).

Per sampled subnet, BestUp-k / WorstUp-k

1. draws a target bin of the constraint (FLOPs by default, 25 MFLOPs wide) from a prior,
2. draws ``k`` candidate archs whose constraint value really lies in that bin,
3. scores them with an estimator (higher score is better: negative mini-batch loss, or predicted
   accuracy) and keeps the best (``bestup``) or the worst (``worstup``) one.

The pieces:

- :class:`attentivenas.cost.TableCost` (FLOPs or parameters as table look-ups) is the fast cost of
  the ``flops`` and ``params`` constraints.
- :class:`ConstraintPrior`: the prior over bins (``empirical``: histogram of the constraint over
  uniformly sampled archs, the paper's prior; ``uniform``: uniform over the reachable bins), built by
  the program itself, and candidates in a bin (vectorised rejection, then a directed random walk for
  bins that uniform sampling rarely reaches).
- :func:`build_constraint`: the prior's constraint for a ``sampler.constraint`` value: ``flops`` and
  ``params`` (table cost), ``latency`` (a latency table's vectorised prediction, ms) or ``memory``
  (:class:`attentivenas.memory.MemoryModel`, MB); a callable constraint without a bin width gets
  ``(max - min) / 40`` of its range over the space.
- Estimators (:class:`LossEstimator`, :class:`PredictorEstimator`).
- :class:`ArchSampler`: ``uniform`` / ``bestup`` / ``worstup``, with :meth:`ArchSampler.propose` and
  :meth:`ArchSampler.choose` split so that a distributed trainer can all-reduce the scores before
  choosing (every rank then trains the same subnets).
  ``ArchSampler.warmup`` makes BestUp / WorstUp sample uniformly until an estimator is ready (the
  online predictor of :mod:`attentivenas.train.online`).

All randomness flows from seeds through numpy Generators whose states are part of ``state_dict()``
(plain dicts, lists, numbers and strings), so a resumed run draws exactly the same future samples.
"""

from __future__ import annotations

import base64
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .cost import TableCost
from .errors import ConfigError
from .space import Arch, SearchSpace

METHODS = ("uniform", "bestup", "worstup")
PRIOR_KINDS = ("empirical", "uniform")
CONSTRAINTS = ("flops", "params")
#: Every constraint the training config accepts (``latency`` and ``memory`` are callables).
PRIOR_CONSTRAINTS = ("flops", "params", "latency", "memory")
#: Default bin width per named constraint (MFLOPs, millions of parameters).
DEFAULT_BIN_WIDTH = {"flops": 25.0, "params": 0.25}
#: A callable constraint without a bin width gets ``(max - min) / DEFAULT_NUM_BINS`` (2 significant digits).
DEFAULT_NUM_BINS = 40
UNITS = {"flops": " MFLOPs", "params": " M params", "latency": " ms", "memory": " MB"}

ConstraintFn = Callable[[np.ndarray], np.ndarray]


# --------------------------------------------------------------------------- rng state
def rng_state(rng: np.random.Generator) -> dict[str, Any]:
    """The state of a PCG64 generator as plain values (128-bit integers as decimal strings)."""
    st = rng.bit_generator.state
    if st.get("bit_generator") != "PCG64":
        raise TypeError(f"only PCG64 generators are supported, got {st.get('bit_generator')}")
    return {
        "bit_generator": "PCG64",
        "state": str(st["state"]["state"]),
        "inc": str(st["state"]["inc"]),
        "has_uint32": int(st["has_uint32"]),
        "uinteger": int(st["uinteger"]),
    }


def set_rng_state(rng: np.random.Generator, state: Mapping[str, Any]) -> None:
    """Restore a state written by :func:`rng_state`."""
    rng.bit_generator.state = {
        "bit_generator": "PCG64",
        "state": {"state": int(state["state"]), "inc": int(state["inc"])},
        "has_uint32": int(state["has_uint32"]),
        "uinteger": int(state["uinteger"]),
    }


def uniform_genes_f32(rng: np.random.Generator, sizes: np.ndarray, n: int) -> np.ndarray:
    """``n`` uniform gene vectors as a float32 matrix of integral values (fast path of sampling)."""
    szf = np.asarray(sizes, dtype=np.float32)
    g = np.floor(rng.random((n, len(szf)), dtype=np.float32) * szf)
    np.minimum(g, szf - 1, out=g)
    return g


# --------------------------------------------------------------------------- prior
@dataclass(frozen=True)
class Candidates:
    """``k`` candidates of one target bin: gene matrix (int64 [k, num_genes]) and constraint values."""

    bin: int
    lo: float
    hi: float
    genes: np.ndarray
    values: np.ndarray


class ConstraintPrior:
    """Prior over constraint bins and candidate archs inside a bin.

    Args:
        space: the search space.
        constraint: ``"flops"`` (MFLOPs), ``"params"`` (millions) or any callable
            ``genes int64[n, num_genes] -> float[n]`` (latency, memory, ...).
        kind: ``"empirical"`` (histogram of the constraint over ``num_samples`` uniformly sampled
            archs, the paper's prior) or ``"uniform"`` (every bin of the reachable range alike).
        bin_width: bin width in the constraint's unit (default 25 MFLOPs, 0.25 M params; for a
            callable, the range over the histogram's archs / 40, rounded to 2 significant digits).
            Bin ``b`` is ``[b * bin_width, (b + 1) * bin_width)``.
        target_range: optional ``(min, max)`` of the constraint to train in (either may be None);
            bins are clipped to it.
        num_samples: uniform archs used to build the histogram.
        seed: seeds both the histogram and the generator of all later draws.
        max_draws: cap of uniform draws per candidate request before the walk fallback.
        walk_steps: steps of the directed random walk used for bins that uniform draws rarely reach.
        cache_size: uniform draws kept per bin for later requests (part of the state).
    """

    def __init__(
        self,
        space: SearchSpace,
        constraint: str | ConstraintFn = "flops",
        *,
        kind: str = "empirical",
        bin_width: float | None = None,
        target_range: tuple[float | None, float | None] | None = None,
        num_samples: int = 100_000,
        seed: int = 0,
        num_classes: int = 1000,
        max_draws: int = 16_384,
        walk_steps: int = 200,
        cache_size: int = 128,
    ) -> None:
        if kind not in PRIOR_KINDS:
            raise ConfigError(f"sampler.prior = {kind!r} is not allowed; allowed: {list(PRIOR_KINDS)}")
        if isinstance(constraint, str):
            if constraint not in CONSTRAINTS:
                raise ConfigError(
                    f"sampler.constraint = {constraint!r} is not allowed; allowed: {list(CONSTRAINTS)} "
                    "(or a callable genes -> values from the library)"
                )
            self.constraint_name = constraint
            self._fast: TableCost | None = TableCost(space, constraint, num_classes)
            self.cost: ConstraintFn = self._fast
            monotone = True
            if bin_width is None:
                bin_width = DEFAULT_BIN_WIDTH[constraint]
        elif callable(constraint):
            self.constraint_name = getattr(constraint, "__name__", type(constraint).__name__)
            self._fast = None
            self.cost = constraint
            monotone = False
        else:
            raise ConfigError(f"sampler.constraint must be one of {list(CONSTRAINTS)} or a callable, got {constraint!r}")
        if bin_width is not None and (
                isinstance(bin_width, bool) or not isinstance(bin_width, (int, float)) or not bin_width > 0):
            raise ConfigError(f"sampler.bin_width = {bin_width!r}; must be a positive number")
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise ConfigError(f"sampler.prior_samples = {num_samples!r}; must be an integer >= 1")
        lo, hi = target_range if target_range is not None else (None, None)
        for key, v in (("sampler.target_min", lo), ("sampler.target_max", hi)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v)):
                raise ConfigError(f"{key} = {v!r}; must be a number or null")
        if lo is not None and hi is not None and not lo < hi:
            raise ConfigError(f"sampler.target_min = {lo} must be below sampler.target_max = {hi}")

        self.space = space
        self.kind = kind
        self.bin_width = float(bin_width) if bin_width is not None else math.nan  # derived below when None
        self.lo = float(lo) if lo is not None else -math.inf
        self.hi = float(hi) if hi is not None else math.inf
        self.num_samples = num_samples
        self.max_draws = int(max_draws)
        self.walk_steps = int(walk_steps)
        self.cache_size = int(cache_size) if int(space.gene_sizes.max()) <= 256 else 0
        self._cache: dict[int, np.ndarray] = {}
        self._sizes = space.gene_sizes
        self._szf = self._sizes.astype(np.float32)
        build_ss, draw_ss = np.random.SeedSequence(seed).spawn(2)
        self.rng = np.random.default_rng(draw_ss)
        self._unreachable: set[int] = set()

        # ---- histogram of the constraint over uniformly sampled archs
        build_rng = np.random.default_rng(build_ss)
        values = np.concatenate(
            [self._eval_f32(uniform_genes_f32(build_rng, self._sizes, min(65_536, num_samples - i)))
             for i in range(0, num_samples, 65_536)]
        )
        ext = self._eval_f32(np.stack([np.zeros_like(self._szf), self._szf - 1]))
        if monotone:
            vmin, vmax = float(ext[0]), float(ext[1])
        else:
            vmin, vmax = float(min(ext.min(), values.min())), float(max(ext.max(), values.max()))
        self.space_range = (vmin, vmax)
        if math.isnan(self.bin_width):
            self.bin_width = derived_bin_width(vmin, vmax)
        unit = UNITS.get(self.constraint_name, "")
        if self.lo > vmax or self.hi <= vmin:
            raise ConfigError(
                f"sampler target range [{_fmt(self.lo)}, {_fmt(self.hi)}]{unit} lies outside the range of space "
                f"'{space.name}' [{vmin:.2f}, {vmax:.2f}]{unit}: no arch reaches it; set sampler.target_min / "
                "sampler.target_max inside that range"
            )
        w = self.bin_width
        b0 = math.floor(max(vmin, self.lo) / w)
        b1 = math.floor(min(vmax, self.hi) / w)
        all_bins = [b for b in range(b0, b1 + 1) if self.bin_edges(b)[0] < self.bin_edges(b)[1]]
        inside = values[(values >= self.lo) & (values < self.hi)]
        counted = np.floor(inside / w).astype(np.int64)
        counts = {b: int(c) for b, c in zip(*np.unique(counted, return_counts=True), strict=True)}
        if kind == "empirical":
            bins = [b for b in all_bins if counts.get(b, 0) > 0]
            if not bins:
                raise ConfigError(
                    f"sampler.prior = 'empirical' has no mass in [{_fmt(self.lo)}, {_fmt(self.hi)}]{unit}: none of "
                    f"{num_samples} uniform archs of space '{space.name}' falls there (they range "
                    f"{values.min():.2f}-{values.max():.2f}); widen the range or use sampler.prior = 'uniform'"
                )
        else:
            bins = all_bins
        if not bins:
            raise ConfigError(
                f"sampler target range [{_fmt(self.lo)}, {_fmt(self.hi)}]{unit} holds no bin of width {w:g}; "
                "widen sampler.target_min / sampler.target_max"
            )
        self._set_bins(bins, [counts.get(b, 0) for b in bins])

    # ---------------------------------------------------------------- bins
    def _set_bins(self, bins: Sequence[int], counts: Sequence[int]) -> None:
        self.bins = np.asarray(bins, dtype=np.int64)
        self.counts = np.asarray(counts, dtype=np.int64)
        if self.kind == "empirical":
            self.probs = self.counts / self.counts.sum()
        else:
            self.probs = np.full(len(self.bins), 1.0 / len(self.bins))
        self._cdf = np.cumsum(self.probs)
        self._cdf[-1] = 1.0
        self._bin_pos = {int(b): i for i, b in enumerate(self.bins)}

    def bin_edges(self, b: int) -> tuple[float, float]:
        """``[lo, hi)`` of bin ``b``, clipped to the target range."""
        return max(b * self.bin_width, self.lo), min((b + 1) * self.bin_width, self.hi)

    def bin_of(self, value: float) -> int:
        return int(math.floor(value / self.bin_width))

    def hit_rate(self, b: int) -> float:
        """Estimated probability that a uniformly sampled arch lands in bin ``b``."""
        i = self._bin_pos.get(int(b))
        return float(self.counts[i]) / self.num_samples if i is not None else 0.0

    def sample_bin(self) -> int:
        """A target bin drawn from the prior."""
        i = int(np.searchsorted(self._cdf, self.rng.random(), side="right"))
        return int(self.bins[min(i, len(self.bins) - 1)])

    # ---------------------------------------------------------------- candidates
    def _eval_f32(self, gf: np.ndarray) -> np.ndarray:
        if self._fast is not None:
            return self._fast.from_float(gf)
        return np.asarray(self.cost(gf.astype(np.int64)), dtype=np.float64)

    def sample_candidates(self, k: int, bin: int | None = None) -> Candidates:
        """``k`` archs whose constraint value lies in ``bin`` (drawn from the prior when None).

        Uniform draws in the bin (vectorised rejection); for bins that uniform draws rarely reach, a
        directed random walk completes them. A bin where nothing is found is reported once with a
        ``RuntimeWarning`` and the nearest reachable bin of the prior is used instead. If a bin holds
        fewer distinct archs than ``k``, some candidates repeat.
        """
        if k < 1:
            raise ValueError("k must be >= 1")
        b = self.sample_bin() if bin is None else int(bin)
        lo_b, hi_b = self.bin_edges(b)
        if not lo_b < hi_b or hi_b <= self.space_range[0] or lo_b > self.space_range[1]:
            raise ValueError(f"bin {b} lies outside the target range of the prior")
        while True:
            if b in self._unreachable:
                b = self._nearest_reachable(b)
                continue
            genes = self._fill(b, k)
            if genes is not None:
                lo, hi = self.bin_edges(b)
                gi = genes.astype(np.int64)
                return Candidates(b, lo, hi, gi, self._eval_f32(genes))
            self._unreachable.add(b)
            lo, hi = self.bin_edges(b)
            nb = self._nearest_reachable(b)
            warnings.warn(
                f"no arch of space '{self.space.name}' found with {self.constraint_name} in [{lo:g}, {hi:g}) "
                f"(bin {b}); using the nearest bin {nb} instead",
                RuntimeWarning,
                stacklevel=2,
            )
            b = nb

    def _nearest_reachable(self, b: int) -> int:
        options = [int(x) for x in self.bins if int(x) not in self._unreachable and int(x) != b]
        if not options:
            raise ConfigError(
                f"no arch of space '{self.space.name}' reaches any bin of the sampler's target range; "
                "widen sampler.target_min / sampler.target_max or the bin width"
            )
        return min(options, key=lambda x: (abs(x - b), x))

    def _fill(self, b: int, k: int) -> np.ndarray | None:
        """Float32 gene rows of ``k`` archs in bin ``b``, or None if none was found.

        Uniform draws that land in other bins are kept (up to ``cache_size`` per bin, first in first
        out) and served to later requests: each is still a uniform draw of its bin, and under the
        empirical prior almost no draw is wasted.
        """
        lo, hi = self.bin_edges(b)
        p = self.hit_rate(b)
        found: list[np.ndarray] = []
        cached = self._cache.get(b)
        if cached is not None and len(cached):
            found.append(cached[:k].astype(np.float32))
            rest = cached[k:]
            if len(rest):
                self._cache[b] = rest
            else:
                del self._cache[b]
        nfound = len(found[0]) if found else 0
        draws = 0
        last_g = last_v = None
        while nfound < k and draws < self.max_draws:
            need = k - nfound
            if p <= 0 or need / p > self.max_draws - draws:
                break  # hopeless by rejection: walk
            m = int(min(self.max_draws - draws, 8192, max(1024, 1.25 * need / p + 64)))
            g = uniform_genes_f32(self.rng, self._sizes, m)
            v = self._eval_f32(g)
            draws += m
            hit = (v >= lo) & (v < hi)
            if hit.any():
                found.append(g[hit][:need])
                nfound += len(found[-1])
            self._deposit(g[~hit], v[~hit])
            last_g, last_v = g, v
        if nfound < k:
            short = k - nfound
            walkers = max(2 * short, 16)
            if last_g is None or len(last_g) < walkers:
                last_g = uniform_genes_f32(self.rng, self._sizes, max(8 * walkers, 256))
                last_v = self._eval_f32(last_g)
            dist = np.maximum(lo - last_v, 0) + np.maximum(last_v - hi + 1e-12, 0)
            start = last_g[np.argsort(dist, kind="stable")[:walkers]]
            walked = self._walk(start, lo, hi, short)
            if len(walked):
                found.append(walked)
                nfound += len(walked)
        if nfound == 0:
            return None
        rows = np.concatenate(found)
        if len(rows) < k:
            extra = self.rng.integers(0, len(rows), k - len(rows))
            rows = np.concatenate([rows, rows[extra]])
        return rows[:k]

    def _deposit(self, g: np.ndarray, v: np.ndarray) -> None:
        """Keep uniform draws for the caches of the bins they fall in."""
        if self.cache_size <= 0 or not len(v):
            return
        w = self.bin_width
        bins = np.floor(v / w).astype(np.int64)
        bins -= v < bins * w  # float guard: make b * w <= v < (b + 1) * w hold exactly
        bins += v >= (bins + 1) * w
        ok = (v >= self.lo) & (v < self.hi)
        if not ok.all():
            g, bins = g[ok], bins[ok]
        order = np.argsort(bins, kind="stable")
        ub, starts = np.unique(bins[order], return_index=True)
        ends = list(starts[1:]) + [len(order)]
        for b, s0, s1 in zip(ub.tolist(), starts.tolist(), ends, strict=True):
            have = self._cache.get(b)
            room = self.cache_size - (0 if have is None else len(have))
            if room <= 0:
                continue
            rows = g[order[s0 : min(s1, s0 + room)]].astype(np.uint8)
            self._cache[b] = rows if have is None else np.concatenate([have, rows])

    def _walk(self, pop: np.ndarray, lo: float, hi: float, need: int) -> np.ndarray:
        """Directed random walk of a population of gene rows into ``[lo, hi)``.

        Outside the bin a walker steps one knob up (below) or down (above), chosen at random; inside
        it makes Metropolis moves of one knob that stay in the bin (uniform target within the bin).
        Returns up to ``need`` distinct rows visited inside the bin (it stops early once 30 steps in a
        row find nothing new).
        """
        pop = pop.copy()
        n, g = pop.shape
        rows = np.arange(n)
        top = self._szf - 1
        movable = self._sizes > 1
        found: dict[bytes, np.ndarray] = {}
        v = self._eval_f32(pop)
        stale = 0
        for _ in range(self.walk_steps):
            inside = (v >= lo) & (v < hi)
            before = len(found)
            for r in pop[inside]:
                found.setdefault(r.tobytes(), r.copy())
            stale = stale + 1 if found and len(found) == before else 0
            if len(found) >= need or stale >= 30:  # done, or the bin holds few distinct archs
                break
            step = np.where(v < lo, 1.0, -1.0).astype(np.float32)
            step[inside] = np.where(self.rng.random(int(inside.sum())) < 0.5, 1.0, -1.0)
            valid = np.where(step[:, None] > 0, pop < top, pop > 0) & movable
            r = self.rng.random((n, g), dtype=np.float32)
            r[~valid] = -1.0
            j = r.argmax(axis=1)
            ok = valid[rows, j]
            new = pop.copy()
            new[rows, j] += step * ok
            nv = self._eval_f32(new)
            stay = inside & ~((nv >= lo) & (nv < hi))  # Metropolis: reject moves leaving the bin
            new[stay] = pop[stay]
            nv[stay] = v[stay]
            pop, v = new, nv
        else:
            inside = (v >= lo) & (v < hi)
            for r in pop[inside]:
                found.setdefault(r.tobytes(), r.copy())
        if not found:
            return np.zeros((0, g), dtype=np.float32)
        return np.stack(list(found.values())[:need])

    # ---------------------------------------------------------------- state
    def _settings(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "constraint": self.constraint_name,
            "bin_width": self.bin_width,
            "target_min": None if math.isinf(self.lo) else self.lo,
            "target_max": None if math.isinf(self.hi) else self.hi,
        }

    def state_dict(self) -> dict[str, Any]:
        """Plain-value state: settings, histogram, unreachable bins, cached draws (base64 of uint8 gene
        rows) and the generator state."""
        return {
            "version": 1,
            **self._settings(),
            "num_samples": int(self.num_samples),
            "bins": [int(b) for b in self.bins],
            "counts": [int(c) for c in self.counts],
            "unreachable": sorted(int(b) for b in self._unreachable),
            "cache": {str(b): base64.b64encode(rows.tobytes()).decode("ascii") for b, rows in self._cache.items()},
            "rng": rng_state(self.rng),
        }

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> None:
        """Restore :meth:`state_dict`. With ``strict``, settings that differ raise :class:`ConfigError`;
        otherwise only the generator state is restored and the current histogram kept."""
        mine = self._settings()
        diff = {k: (state.get(k), v) for k, v in mine.items() if state.get(k) != v}
        if diff and strict:
            what = ", ".join(f"{k}: checkpoint {a!r} vs config {b!r}" for k, (a, b) in diff.items())
            raise ConfigError(f"sampler settings differ from the checkpoint's ({what}); resume with the same settings")
        if not diff:
            self.num_samples = int(state["num_samples"])
            self._set_bins(list(state["bins"]), list(state["counts"]))
            self._unreachable = {int(b) for b in state.get("unreachable", [])}
            g = self.space.num_genes
            self._cache = {
                int(b): np.frombuffer(base64.b64decode(text), dtype=np.uint8).reshape(-1, g).copy()
                for b, text in state.get("cache", {}).items()
            }
        else:
            self._cache = {}
        set_rng_state(self.rng, state["rng"])


def _fmt(v: float) -> str:
    return "-inf" if v == -math.inf else "inf" if v == math.inf else f"{v:g}"


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
    :class:`attentivenas.memory.MemoryModel` (peak activations + weights at batch 1, float32), in MB.
    """
    if name in CONSTRAINTS:
        return name
    if name == "latency":
        if latency_table is None:
            raise ConfigError("sampler.latency_table (a table from `attentivenas latency build-table`) is required "
                              "when sampler.constraint=latency")
        from .errors import UserError
        from .latency import LatencyTable

        p = Path(latency_table)
        if not p.is_file():
            raise ConfigError(f"sampler.latency_table={p}: file not found (build one with "
                              f"`attentivenas latency build-table --space {space.name} --out {p}`)")
        try:
            table = LatencyTable.load(p)
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
        from .memory import MemoryModel

        return NamedConstraint(MemoryModel(space, num_classes), "memory", UNITS["memory"])
    raise ConfigError(f"sampler.constraint = {name!r} is not allowed; allowed: {list(PRIOR_CONSTRAINTS)}")


# --------------------------------------------------------------------------- estimators
@runtime_checkable
class Estimator(Protocol):
    """Scores candidate archs; HIGHER IS BETTER (negative loss, predicted accuracy)."""

    def score(self, archs: Sequence[Arch]) -> np.ndarray: ...


class LossEstimator:
    """Score = minus the mini-batch loss of each arch.

    ``loss_fn(arch) -> float`` is supplied by the trainer for the current step (a no-grad forward of the
    supernet set to ``arch`` on the current batch); tensors are converted with ``float``.
    """

    def __init__(self, loss_fn: Callable[[Arch], Any]) -> None:
        self.loss_fn = loss_fn

    def score(self, archs: Sequence[Arch]) -> np.ndarray:
        return -np.array([float(self.loss_fn(a)) for a in archs], dtype=np.float64)


class PredictorEstimator:
    """Score = predicted accuracy, ``predict_fn(features float[n, d]) -> float[n]``.

    Features are ``featurize(genes)`` when given (e.g. a fitted predictor's own feature set), else
    :meth:`SearchSpace.features_from_genes`. All candidates are scored in one call.
    """

    def __init__(
        self,
        predict_fn: Callable[[np.ndarray], Any],
        space: SearchSpace,
        featurize: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        self.predict_fn = predict_fn
        self.space = space
        self.featurize = featurize
        tables = [np.asarray(c, dtype=np.float64) for c in space.gene_choices]
        self._flat = np.concatenate(tables)
        self._off = np.cumsum([0] + [len(t) for t in tables[:-1]]).astype(np.int64)

    def features(self, genes: np.ndarray) -> np.ndarray:
        """Features of a gene matrix (``space.features_from_genes`` as one gather by default)."""
        g = np.atleast_2d(np.asarray(genes)).astype(np.int64)
        if self.featurize is not None:
            return self.featurize(g)
        return self._flat[g + self._off]

    def score_genes(self, genes: np.ndarray) -> np.ndarray:
        return np.asarray(self.predict_fn(self.features(genes)), dtype=np.float64).reshape(-1)

    def score(self, archs: Sequence[Arch]) -> np.ndarray:
        if not archs:
            return np.zeros(0)
        return self.score_genes(np.stack([self.space.encode(a) for a in archs]))


def load_predictor_estimator(path: str | Path | None, space: SearchSpace) -> PredictorEstimator:
    """A :class:`PredictorEstimator` from an accuracy predictor file (``attentivenas predictor fit``)."""
    if path is None or not Path(path).is_file():
        where = "" if path is None else f" ({path} not found)"
        raise ConfigError(
            "predictor estimator needs an accuracy predictor file: set sampler.predictor=PATH "
            f"(fit one with `attentivenas predictor fit`){where}"
        )
    from .predictor import load_predictor  # lazy: the predictor module is optional here

    predictor = load_predictor(path)
    name = getattr(predictor, "space_name", space.name)
    pspace = getattr(predictor, "space", None)
    if pspace is None:
        from .space import SPACES

        pspace = SPACES.get(str(name).lower())
    same = name == space.name if pspace is None else pspace.to_supernet_config() == space.to_supernet_config()
    if not same:
        raise ConfigError(
            f"accuracy predictor {path} was fitted on space '{name}', but the sampler uses space "
            f"'{space.name}'; fit a predictor on this space"
        )
    return PredictorEstimator(predictor.predict, space, featurize=getattr(predictor, "featurize", None))


# --------------------------------------------------------------------------- sampler
def _sampler_seeds(seed: int) -> tuple[np.random.SeedSequence, int]:
    """The sampler's own seed sequence and its prior's seed, both derived from ``seed`` (one place, so
    the default prior and the one :meth:`ArchSampler.from_config` builds draw alike)."""
    own, prior = np.random.SeedSequence(seed).spawn(2)
    return own, int(prior.generate_state(1)[0])


class ArchSampler:
    """Middle subnets of the sandwich rule: ``uniform``, ``bestup`` (BestUp-k) or ``worstup`` (WorstUp-k).

    Single process: :meth:`sample_middle`. Distributed (same seed on every rank): ``groups =
    propose(n)``; each rank scores the candidates on its batch; the scores are all-reduced; then
    ``choose(groups, scores)`` returns the same subnets on every rank. After a call, ``last_mflops``
    and ``last_targets`` hold the MFLOPs and target bins ``(lo, hi)`` of the chosen subnets.

    ``warmup = True`` makes a ``bestup`` / ``worstup`` sampler draw uniform archs (one per group)
    until its estimator is ready, e.g. before the first fit of an online predictor; it uses the
    sampler's own generator, so the prior's draws start where they would have.
    """

    def __init__(
        self,
        space: SearchSpace,
        method: str = "uniform",
        k: int = 3,
        num_middle: int = 2,
        *,
        prior: ConstraintPrior | None = None,
        seed: int = 0,
        num_classes: int = 1000,
    ) -> None:
        if method not in METHODS:
            raise ConfigError(f"sampler.method = {method!r} is not allowed; allowed: {list(METHODS)}")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ConfigError(f"sampler.k = {k!r}; must be an integer >= 1")
        if isinstance(num_middle, bool) or not isinstance(num_middle, (int, np.integer)) or num_middle < 0:
            raise ConfigError(f"sampler.num_middle = {num_middle!r}; must be an integer >= 0")
        self.space = space
        self.method = method
        self.k = int(k)
        self.num_middle = int(num_middle)
        own_ss, prior_seed = _sampler_seeds(seed)
        self.rng = np.random.default_rng(own_ss)
        if prior is None and method != "uniform":
            prior = ConstraintPrior(space, seed=prior_seed, num_classes=num_classes)
        self.prior = prior
        self.warmup = False
        self._flops = TableCost(space, "flops", num_classes)
        self.last_mflops: list[float] = []
        self.last_targets: list[tuple[float, float] | None] = []
        self._proposed_targets: list[tuple[float, float] | None] = []

    @classmethod
    def from_config(
        cls, space: SearchSpace, cfg: Mapping[str, Any] | Any, *, seed: int = 0, num_classes: int = 1000
    ) -> ArchSampler:
        """From the ``sampler`` config section: ``method``, ``k``, ``num_middle``, ``constraint``,
        ``prior`` (empirical|uniform), ``bin_width``, ``target_min``, ``target_max``, ``prior_samples``,
        ``latency_table`` (see :func:`build_constraint`). Other keys (``estimator``, ``predictor``,
        ``online``) are the trainer's; key names are checked by the config schema. A pydantic section
        (``model_dump``) works too."""
        if hasattr(cfg, "model_dump"):
            cfg = cfg.model_dump()
        method = cfg.get("method", "uniform")
        prior = None
        if method in ("bestup", "worstup"):
            prior = ConstraintPrior(
                space,
                build_constraint(space, cfg.get("constraint", "flops"), num_classes, cfg.get("latency_table")),
                kind=cfg.get("prior", "empirical"),
                bin_width=cfg.get("bin_width"),
                target_range=(cfg.get("target_min"), cfg.get("target_max")),
                num_samples=cfg.get("prior_samples", 100_000),
                seed=_sampler_seeds(seed)[1],
                num_classes=num_classes,
            )
        return cls(space, method, cfg.get("k", 3), cfg.get("num_middle", 2), prior=prior, seed=seed,
                   num_classes=num_classes)

    # ---------------------------------------------------------------- steps
    def _uniform(self, n: int) -> np.ndarray:
        return uniform_genes_f32(self.rng, self.space.gene_sizes, n).astype(np.int64)

    def _propose_genes(self, n: int) -> list[Candidates]:
        assert self.prior is not None
        return [self.prior.sample_candidates(self.k) for _ in range(n)]

    def propose(self, n: int | None = None) -> list[list[Arch]]:
        """``n`` candidate groups (``k`` archs each; one uniform arch each for ``uniform``)."""
        n = self.num_middle if n is None else n
        if self.method == "uniform" or self.warmup:
            self._proposed_targets = [None] * n
            return [[self.space.decode(g)] for g in self._uniform(n)]
        cands = self._propose_genes(n)
        self._proposed_targets = [(c.lo, c.hi) for c in cands]
        return [[self.space.decode(g) for g in c.genes] for c in cands]

    def _pick(self, scores: np.ndarray) -> int:
        s = np.asarray(scores, dtype=np.float64).reshape(-1)
        if np.isnan(s).all():
            return 0
        return int(np.nanargmax(s) if self.method == "bestup" else np.nanargmin(s))

    def choose(self, groups: Sequence[Sequence[Arch]], scores: Any) -> list[Arch]:
        """Best (``bestup``) or worst (``worstup``) arch of every group by score (higher is better;
        NaN scores are ignored). ``scores``: one sequence per group, or an array of shape (n, k)."""
        if len(scores) != len(groups):
            raise ValueError(f"got scores for {len(scores)} groups, expected {len(groups)}")
        chosen = []
        for grp, sc in zip(groups, scores, strict=True):
            sc = np.asarray(sc, dtype=np.float64).reshape(-1)
            if len(sc) != len(grp):
                raise ValueError(f"got {len(sc)} scores for a group of {len(grp)} candidates")
            chosen.append(grp[0] if self.method == "uniform" or self.warmup else grp[self._pick(sc)])
        genes = np.stack([self.space.encode(a) for a in chosen]) if chosen else np.zeros((0, self.space.num_genes))
        self.last_mflops = [float(x) for x in self._flops(genes)] if chosen else []
        targets = self._proposed_targets
        self.last_targets = list(targets) if len(targets) == len(chosen) else [None] * len(chosen)
        return chosen

    def sample_middle(self, n: int | None = None, estimator: Estimator | None = None) -> list[Arch]:
        """``n`` middle subnets (default ``num_middle``). ``bestup``/``worstup`` need an estimator; all
        ``n * k`` candidates are scored in one call (``score_genes`` when the estimator has it)."""
        n = self.num_middle if n is None else n
        if self.method == "uniform" or self.warmup:
            genes = self._uniform(n)
            self.last_targets = [None] * n
        else:
            if estimator is None:
                raise ValueError(f"sampler method {self.method!r} needs an estimator")
            cands = self._propose_genes(n)
            if n == 0:
                genes = np.zeros((0, self.space.num_genes), np.int64)
            else:
                allg = np.concatenate([c.genes for c in cands])
                if hasattr(estimator, "score_genes"):
                    scores = estimator.score_genes(allg)
                else:
                    scores = estimator.score([self.space.decode(g) for g in allg])
                scores = np.asarray(scores, dtype=np.float64).reshape(n, self.k)
                genes = np.stack([c.genes[self._pick(s)] for c, s in zip(cands, scores, strict=True)])
            self.last_targets = [(c.lo, c.hi) for c in cands]
        self.last_mflops = [float(x) for x in self._flops(genes)] if n else []
        return [self.space.decode(g) for g in genes]

    # ---------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        return {
            "version": 1,
            "method": self.method,
            "k": self.k,
            "num_middle": self.num_middle,
            "warmup": bool(self.warmup),
            "rng": rng_state(self.rng),
            "prior": self.prior.state_dict() if self.prior is not None else None,
        }

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> None:
        """Restore :meth:`state_dict` (see :meth:`ConstraintPrior.load_state_dict` for ``strict``)."""
        if strict:
            for key in ("method", "k"):
                if state.get(key) != getattr(self, key):
                    raise ConfigError(
                        f"sampler.{key} = {getattr(self, key)!r} differs from the checkpoint's {state.get(key)!r}; "
                        "resume with the same settings"
                    )
        set_rng_state(self.rng, state["rng"])
        self.warmup = bool(state.get("warmup", False))
        if self.prior is not None and state.get("prior") is not None:
            self.prior.load_state_dict(state["prior"], strict=strict)
