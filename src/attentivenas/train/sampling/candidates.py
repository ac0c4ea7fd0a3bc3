"""Candidate archs inside a constraint interval: rejection from uniform draws, a per-bin cache of the
draws that landed in other bins, and a directed random walk for intervals uniform draws rarely reach.

Everything stays in genes: rows are float32 matrices of integral values (the table cost's fast
input); nothing is decoded into an :class:`~attentivenas.space.Arch` here.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

GeneCost = Callable[[np.ndarray], np.ndarray]  # float32 gene rows -> constraint values


def uniform_genes_f32(rng: np.random.Generator, sizes: np.ndarray, n: int) -> np.ndarray:
    """``n`` uniform gene vectors as a float32 matrix of integral values (fast path of sampling)."""
    szf = np.asarray(sizes, dtype=np.float32)
    g = np.floor(rng.random((n, len(szf)), dtype=np.float32) * szf)
    np.minimum(g, szf - 1, out=g)
    return g


@dataclass(frozen=True)
class Candidates:
    """``k`` candidates of one target bin: gene matrix (int64 [k, num_genes]) and constraint values."""

    bin: int
    lo: float
    hi: float
    genes: np.ndarray
    values: np.ndarray


class CandidateFinder:
    """Finds ``k`` gene rows whose constraint value lies in ``[lo, hi)`` (see the module doc).

    ``cost`` evaluates float32 gene rows; ``rng`` is the owner's generator (its state is saved by the
    owner). ``bin_width`` and the target range ``[target_lo, target_hi)`` place uniform draws in the
    per-bin cache (at most ``cache_size`` rows a bin; 0 disables it).
    """

    def __init__(self, sizes: np.ndarray, cost: GeneCost, rng: np.random.Generator, bin_width: float,
                 target_lo: float, target_hi: float, *, max_draws: int = 16_384, walk_steps: int = 200,
                 cache_size: int = 128) -> None:
        self.sizes = np.asarray(sizes, dtype=np.int64)
        self._szf = self.sizes.astype(np.float32)
        self.cost = cost
        self.rng = rng
        self.bin_width = float(bin_width)
        self.lo, self.hi = float(target_lo), float(target_hi)
        self.max_draws = int(max_draws)
        self.walk_steps = int(walk_steps)
        self.cache_size = int(cache_size) if int(self.sizes.max()) <= 256 else 0  # rows are cached as uint8
        self.cache: dict[int, np.ndarray] = {}

    # ---------------------------------------------------------------- search
    def fill(self, b: int, lo: float, hi: float, hit_rate: float, k: int) -> np.ndarray | None:
        """Float32 gene rows of ``k`` archs in bin ``b`` = ``[lo, hi)``, or None if none was found.

        Cached draws of the bin come first; then uniform draws (the ones landing in other bins go to
        their caches: each is still a uniform draw of its bin, so under the empirical prior almost no
        draw is wasted); a bin that rejection would take too long to fill is completed by the walk.
        If fewer than ``k`` distinct archs are found, some repeat.
        """
        found: list[np.ndarray] = []
        cached = self.cache.get(b)
        if cached is not None and len(cached):
            found.append(cached[:k].astype(np.float32))
            rest = cached[k:]
            if len(rest):
                self.cache[b] = rest
            else:
                del self.cache[b]
        nfound = len(found[0]) if found else 0
        draws = 0
        last_g = last_v = None
        while nfound < k and draws < self.max_draws:
            need = k - nfound
            if hit_rate <= 0 or need / hit_rate > self.max_draws - draws:
                break  # hopeless by rejection: walk
            m = int(min(self.max_draws - draws, 8192, max(1024, 1.25 * need / hit_rate + 64)))
            g = uniform_genes_f32(self.rng, self.sizes, m)
            v = self.cost(g)
            draws += m
            hit = (v >= lo) & (v < hi)
            if hit.any():
                found.append(g[hit][:need])
                nfound += len(found[-1])
            self._deposit(g[~hit], v[~hit])
            last_g, last_v = g, v
        if nfound < k:
            walked = self._walk_from(last_g, last_v, lo, hi, k - nfound)
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

    def _walk_from(self, last_g: np.ndarray | None, last_v: np.ndarray | None, lo: float, hi: float,
                   short: int) -> np.ndarray:
        """Walk the draws nearest to ``[lo, hi)`` into it (fresh draws if there were too few)."""
        walkers = max(2 * short, 16)
        if last_g is None or last_v is None or len(last_g) < walkers:
            last_g = uniform_genes_f32(self.rng, self.sizes, max(8 * walkers, 256))
            last_v = self.cost(last_g)
        dist = np.maximum(lo - last_v, 0) + np.maximum(last_v - hi + 1e-12, 0)
        start = last_g[np.argsort(dist, kind="stable")[:walkers]]
        return self._walk(start, lo, hi, short)

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
            have = self.cache.get(b)
            room = self.cache_size - (0 if have is None else len(have))
            if room <= 0:
                continue
            rows = g[order[s0 : min(s1, s0 + room)]].astype(np.uint8)
            self.cache[b] = rows if have is None else np.concatenate([have, rows])

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
        movable = self.sizes > 1
        found: dict[bytes, np.ndarray] = {}
        v = self.cost(pop)
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
            nv = self.cost(new)
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
    def cache_state(self) -> dict[str, str]:
        """The cache as plain values: base64 of the uint8 gene rows of every bin."""
        return {str(b): base64.b64encode(rows.tobytes()).decode("ascii") for b, rows in self.cache.items()}

    def load_cache_state(self, state: Mapping[str, Any], num_genes: int) -> None:
        self.cache = {int(b): np.frombuffer(base64.b64decode(text), dtype=np.uint8).reshape(-1, num_genes).copy()
                      for b, text in state.items()}
