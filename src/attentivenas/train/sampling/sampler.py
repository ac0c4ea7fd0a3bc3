"""The middle subnets of the sandwich rule: ``uniform``, ``bestup`` (BestUp-k) or ``worstup`` (WorstUp-k).

One API, in genes until an :class:`~attentivenas.space.Arch` is needed::

    groups = sampler.propose(n)            # CandidateGroups: genes int64 [n, k, num_genes]
    scores = ...                           # [n, k], higher is better (e.g. -loss on this batch)
    chosen = sampler.choose(groups, scores)  # Chosen: genes, archs, MFLOPs, target bins

Only the chosen subnets are decoded. The split lets a distributed trainer all-reduce the scores
before choosing, so every rank trains the same subnets (all ranks share the seed).

All randomness flows from seeds through numpy Generators whose states are part of ``state_dict()``
(plain dicts, lists, numbers and strings), so a resumed run draws exactly the same future samples.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...config import SamplerConfig
from ...costs import TableCost
from ...errors import ConfigError
from ...rng import generator_state, set_generator_state
from ...space import Arch, SearchSpace
from .candidates import uniform_genes_f32
from .prior import ConstraintPrior

METHODS = ("uniform", "bestup", "worstup")
Target = tuple[float, float] | None


@dataclass(frozen=True)
class CandidateGroups:
    """``n`` groups of ``k`` candidates (``k = 1`` for uniform sampling) as gene rows, and the target
    interval of the constraint each group was drawn in (None: uniform)."""

    genes: np.ndarray  # int64 [n, k, num_genes]
    targets: tuple[Target, ...]

    def __len__(self) -> int:
        return int(self.genes.shape[0])

    @property
    def k(self) -> int:
        return int(self.genes.shape[1])

    def flat(self) -> np.ndarray:
        """All candidates as one gene matrix ``[n * k, num_genes]`` (group-major)."""
        return self.genes.reshape(-1, self.genes.shape[-1])

    def archs(self, space: SearchSpace) -> list[list[Arch]]:
        """Every candidate decoded (for estimators that need archs)."""
        return [[space.decode(g) for g in group] for group in self.genes]


@dataclass(frozen=True)
class Chosen:
    """The chosen subnet of every group: gene rows, archs, MFLOPs and target intervals."""

    genes: np.ndarray  # int64 [n, num_genes]
    archs: list[Arch]
    mflops: list[float]
    targets: list[Target]


def _sampler_seeds(seed: int) -> tuple[np.random.SeedSequence, int]:
    """The sampler's own seed sequence and its prior's seed, both derived from ``seed`` (one place, so
    the default prior and the one :meth:`ArchSampler.from_config` builds draw alike)."""
    own, prior = np.random.SeedSequence(seed).spawn(2)
    return own, int(prior.generate_state(1)[0])


class ArchSampler:
    """Middle subnets: uniform, or the best / worst by score of ``k`` candidates at a target drawn
    from the constraint prior (see the module doc).

    ``warmup = True`` makes a ``bestup`` / ``worstup`` sampler draw uniform archs (one per group)
    until its estimator is ready, e.g. before the first fit of an online predictor; it uses the
    sampler's own generator, so the prior's draws start where they would have.
    """

    def __init__(self, space: SearchSpace, method: str, k: int = 3, num_middle: int = 2, *,
                 prior: ConstraintPrior | None = None, seed: int = 0, num_classes: int = 1000) -> None:
        if method not in METHODS:
            raise ValueError(f"sampler method {method!r} is not one of {list(METHODS)}")
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
        #: the last real choice (groups, their scores ``[n, k]``, the picked index per group); None
        #: after a uniform step. Read by :func:`attentivenas.train.sampling.record.choice_record`.
        self.last_choice: tuple[CandidateGroups, np.ndarray, list[int]] | None = None

    @classmethod
    def from_config(cls, space: SearchSpace, cfg: SamplerConfig, *, seed: int = 0,
                    num_classes: int = 1000) -> ArchSampler:
        """The sampler of a ``sampler`` config section (its prior too, for bestup / worstup). The
        estimator keys (``estimator``, ``predictor``, ``online``) are the trainer's."""
        prior = None
        if cfg.method != "uniform":
            prior = ConstraintPrior.from_config(space, cfg, seed=_sampler_seeds(seed)[1], num_classes=num_classes)
        return cls(space, cfg.method, cfg.k, cfg.num_middle, prior=prior, seed=seed, num_classes=num_classes)

    @property
    def uniform(self) -> bool:
        """Whether groups hold one uniform arch each (``uniform``, or warming up)."""
        return self.method == "uniform" or self.warmup

    # ---------------------------------------------------------------- steps
    def propose(self, n: int | None = None) -> CandidateGroups:
        """``n`` candidate groups (default ``num_middle``): ``k`` archs at a drawn target each, or one
        uniform arch each for ``uniform``."""
        n = self.num_middle if n is None else n
        g = self.space.num_genes
        if self.uniform:
            genes = uniform_genes_f32(self.rng, self.space.gene_sizes, n).astype(np.int64)
            return CandidateGroups(genes.reshape(n, 1, g), (None,) * n)
        assert self.prior is not None
        cands = [self.prior.sample_candidates(self.k) for _ in range(n)]
        genes = np.stack([c.genes for c in cands]) if cands else np.zeros((0, self.k, g), np.int64)
        return CandidateGroups(genes, tuple((c.lo, c.hi) for c in cands))

    def _pick(self, scores: np.ndarray) -> int:
        if np.isnan(scores).all():
            return 0
        return int(np.nanargmax(scores) if self.method == "bestup" else np.nanargmin(scores))

    def choose(self, groups: CandidateGroups, scores: Any = None) -> Chosen:
        """The best (``bestup``) or worst (``worstup``) candidate of every group by score (higher is
        better; NaN scores are ignored): ``scores`` has one row of ``k`` per group. For uniform groups,
        or groups of one candidate, scores may be omitted (each group's first candidate)."""
        n = len(groups)
        if scores is None and not self.uniform and groups.k > 1:
            raise ValueError(f"sampler method {self.method!r} needs scores for its {groups.k} candidates "
                             "(an estimator)")
        self.last_choice = None
        if self.uniform or scores is None:
            idx = [0] * n
        else:
            if len(scores) != n:
                raise ValueError(f"got scores for {len(scores)} groups, expected {n}")
            idx = []
            for sc in scores:
                sc = np.asarray(sc, dtype=np.float64).reshape(-1)
                if len(sc) != groups.k:
                    raise ValueError(f"got {len(sc)} scores for a group of {groups.k} candidates")
                idx.append(self._pick(sc))
            self.last_choice = (groups, np.asarray(scores, dtype=np.float64).reshape(n, groups.k), idx)
        genes = groups.genes[np.arange(n), idx] if n else np.zeros((0, self.space.num_genes), np.int64)
        return Chosen(genes, [self.space.decode(g) for g in genes], self.mflops(genes), list(groups.targets))

    def mflops(self, genes: np.ndarray) -> list[float]:
        """MFLOPs of gene rows (table look-ups)."""
        return [float(x) for x in self._flops(genes)] if len(genes) else []

    # ---------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        return {
            "version": 1,
            "method": self.method,
            "k": self.k,
            "num_middle": self.num_middle,
            "warmup": bool(self.warmup),
            "rng": generator_state(self.rng),
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
        set_generator_state(self.rng, state["rng"])
        self.warmup = bool(state.get("warmup", False))
        if self.prior is not None and state.get("prior") is not None:
            self.prior.load_state_dict(state["prior"], strict=strict)
