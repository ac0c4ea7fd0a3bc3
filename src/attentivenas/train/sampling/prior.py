"""The prior over constraint bins (FLOPs by default, 25 MFLOPs wide) and candidates inside a bin.

``empirical`` is the paper's prior: the histogram of the constraint over uniformly sampled archs;
``uniform`` weighs every reachable bin alike. Bin ``b`` is ``[b * bin_width, (b + 1) * bin_width)``,
clipped to the target range. Candidates of a bin come from :class:`CandidateFinder`; a bin where
nothing is found is reported once and the nearest reachable bin is used instead.

Settings are validated by the config schema (:class:`~attentivenas.config.SamplerConfig`); here
only what depends on the space is checked (a target range no arch reaches, a prior without mass).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ...config import DEFAULT_BIN_WIDTH, SamplerConfig
from ...costs import TableCost
from ...errors import ConfigError
from ...rng import generator_state, set_generator_state
from ...space import SearchSpace
from .candidates import CandidateFinder, Candidates, uniform_genes_f32
from .constraints import UNITS, ConstraintFn, build_constraint, derived_bin_width

PRIOR_KINDS = ("empirical", "uniform")
#: Constraints the prior evaluates itself (as table look-ups); others come as callables.
TABLE_CONSTRAINTS = ("flops", "params")
HISTOGRAM_CHUNK = 65_536


def _fmt(v: float) -> str:
    return "-inf" if v == -math.inf else "inf" if v == math.inf else f"{v:g}"


class ConstraintPrior:
    """Prior over constraint bins and candidate archs inside a bin.

    Args:
        space: the search space.
        constraint: ``"flops"`` (MFLOPs), ``"params"`` (millions) or any callable
            ``genes int64[n, num_genes] -> float[n]`` (latency, memory, ...; see :func:`build_constraint`).
        kind: ``"empirical"`` or ``"uniform"`` (see the module doc).
        bin_width: in the constraint's unit (default 25 MFLOPs, 0.25 M params; for a callable, the
            range over the histogram's archs / 40, rounded to 2 significant digits).
        target_range: optional ``(min, max)`` of the constraint to train in (either may be None).
        num_samples: uniform archs used to build the histogram.
        seed: seeds both the histogram and the generator of all later draws.
        max_draws, walk_steps, cache_size: see :class:`CandidateFinder`.
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
        self.space = space
        self.kind = kind
        self._fast: TableCost | None = None
        if isinstance(constraint, str):
            if constraint not in TABLE_CONSTRAINTS:
                raise ConfigError(
                    f"sampler.constraint = {constraint!r} is not allowed; allowed: {list(TABLE_CONSTRAINTS)} "
                    "(or a callable genes -> values from the library)"
                )
            self.constraint_name = constraint
            self._fast = TableCost(space, constraint, num_classes)
            self.cost: ConstraintFn = self._fast
            bin_width = DEFAULT_BIN_WIDTH[constraint] if bin_width is None else bin_width
        else:
            self.constraint_name = getattr(constraint, "__name__", type(constraint).__name__)
            self.cost = constraint
        lo, hi = target_range if target_range is not None else (None, None)
        self.lo = float(lo) if lo is not None else -math.inf
        self.hi = float(hi) if hi is not None else math.inf
        self.num_samples = int(num_samples)
        self._sizes = space.gene_sizes
        build_ss, draw_ss = np.random.SeedSequence(seed).spawn(2)
        self.rng = np.random.default_rng(draw_ss)
        self._unreachable: set[int] = set()

        values = self._histogram_values(np.random.default_rng(build_ss))
        self.space_range = self._range(values)
        self.bin_width = float(bin_width) if bin_width is not None else derived_bin_width(*self.space_range)
        self._set_bins(*self._reachable_bins(values))
        self.finder = CandidateFinder(self._sizes, self._eval_f32, self.rng, self.bin_width, self.lo, self.hi,
                                      max_draws=max_draws, walk_steps=walk_steps, cache_size=cache_size)

    @classmethod
    def from_config(cls, space: SearchSpace, cfg: SamplerConfig, *, seed: int = 0,
                    num_classes: int = 1000) -> ConstraintPrior:
        """The prior of a ``sampler`` config section (its constraint built by :func:`build_constraint`)."""
        return cls(space, build_constraint(space, cfg.constraint, num_classes, cfg.latency_table), kind=cfg.prior,
                   bin_width=cfg.bin_width, target_range=(cfg.target_min, cfg.target_max),
                   num_samples=cfg.prior_samples, seed=seed, num_classes=num_classes)

    # ---------------------------------------------------------------- construction
    def _histogram_values(self, rng: np.random.Generator) -> np.ndarray:
        """The constraint of ``num_samples`` uniformly drawn archs."""
        n = self.num_samples
        return np.concatenate([self._eval_f32(uniform_genes_f32(rng, self._sizes, min(HISTOGRAM_CHUNK, n - i)))
                               for i in range(0, n, HISTOGRAM_CHUNK)])

    def _range(self, values: np.ndarray) -> tuple[float, float]:
        """The constraint's range over the space: the min and max archs for the monotone table costs,
        else also the histogram's extremes."""
        szf = self._sizes.astype(np.float32)
        ext = self._eval_f32(np.stack([np.zeros_like(szf), szf - 1]))
        if self._fast is not None:
            return float(ext[0]), float(ext[1])
        return float(min(ext.min(), values.min())), float(max(ext.max(), values.max()))

    def _reachable_bins(self, values: np.ndarray) -> tuple[list[int], list[int]]:
        """The prior's bins inside the target range and their histogram counts (space-dependent errors)."""
        vmin, vmax = self.space_range
        unit = UNITS.get(self.constraint_name, "")
        where = f"[{_fmt(self.lo)}, {_fmt(self.hi)}]{unit}"
        if self.lo > vmax or self.hi <= vmin:
            raise ConfigError(
                f"sampler target range {where} lies outside the range of space '{self.space.name}' "
                f"[{vmin:.2f}, {vmax:.2f}]{unit}: no arch reaches it; set sampler.target_min / "
                "sampler.target_max inside that range"
            )
        w = self.bin_width
        b0 = math.floor(max(vmin, self.lo) / w)
        b1 = math.floor(min(vmax, self.hi) / w)
        all_bins = [b for b in range(b0, b1 + 1) if self.bin_edges(b)[0] < self.bin_edges(b)[1]]
        inside = values[(values >= self.lo) & (values < self.hi)]
        counted = np.floor(inside / w).astype(np.int64)
        counts = {b: int(c) for b, c in zip(*np.unique(counted, return_counts=True), strict=True)}
        bins = all_bins
        if self.kind == "empirical":
            bins = [b for b in all_bins if counts.get(b, 0) > 0]
            if not bins:
                raise ConfigError(
                    f"sampler.prior = 'empirical' has no mass in {where}: none of {self.num_samples} uniform archs "
                    f"of space '{self.space.name}' falls there (they range {values.min():.2f}-{values.max():.2f}); "
                    "widen the range or use sampler.prior = 'uniform'"
                )
        if not bins:
            raise ConfigError(f"sampler target range {where} holds no bin of width {w:g}; "
                              "widen sampler.target_min / sampler.target_max")
        return bins, [counts.get(b, 0) for b in bins]

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

        A bin where nothing is found is reported once with a ``RuntimeWarning`` and the nearest
        reachable bin of the prior is used instead. If a bin holds fewer distinct archs than ``k``,
        some candidates repeat.
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
            lo, hi = self.bin_edges(b)
            genes = self.finder.fill(b, lo, hi, self.hit_rate(b), k)
            if genes is not None:
                return Candidates(b, lo, hi, genes.astype(np.int64), self._eval_f32(genes))
            self._unreachable.add(b)
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
        """Plain-value state: settings, histogram, unreachable bins, cached draws and the generator state."""
        return {
            "version": 1,
            **self._settings(),
            "num_samples": int(self.num_samples),
            "bins": [int(b) for b in self.bins],
            "counts": [int(c) for c in self.counts],
            "unreachable": sorted(int(b) for b in self._unreachable),
            "cache": self.finder.cache_state(),
            "rng": generator_state(self.rng),
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
            self.finder.load_cache_state(state.get("cache", {}), self.space.num_genes)
        else:
            self.finder.cache = {}
        set_generator_state(self.rng, state["rng"])
