"""Attentive sampling of the middle subnets of stage 1 (AttentiveNAS, sections 1 and 5 of the reference).

Per sampled subnet, BestUp-k / WorstUp-k

1. draws a target bin of the constraint (FLOPs by default, 25 MFLOPs wide) from a prior,
2. draws ``k`` candidate archs whose constraint value really lies in that bin,
3. scores them with an estimator (higher score is better: negative mini-batch loss, or predicted
   accuracy) and keeps the best (``bestup``) or the worst (``worstup``) one.

Lives here: ``constraints`` (what the bins measure), ``prior`` (:class:`ConstraintPrior`),
``candidates`` (archs inside a bin: rejection, caches, walk), ``estimators`` and ``sampler``
(:class:`ArchSampler`: ``propose`` then ``choose``, in genes until the chosen archs).

May import: ``attentivenas.config``, ``space``, ``costs``, ``latency``, ``accuracy``, ``rng``, ``errors``.
"""

from .candidates import CandidateFinder, Candidates, uniform_genes_f32
from .constraints import (
    DEFAULT_NUM_BINS,
    PRIOR_CONSTRAINTS,
    UNITS,
    ConstraintFn,
    NamedConstraint,
    build_constraint,
    derived_bin_width,
)
from .estimators import Estimator, LossEstimator, PredictorEstimator, load_predictor_estimator
from .prior import PRIOR_KINDS, TABLE_CONSTRAINTS, ConstraintPrior
from .sampler import METHODS, ArchSampler, CandidateGroups, Chosen

__all__ = [
    "CandidateFinder", "Candidates", "uniform_genes_f32", "DEFAULT_NUM_BINS", "PRIOR_CONSTRAINTS", "UNITS",
    "ConstraintFn", "NamedConstraint", "build_constraint", "derived_bin_width", "Estimator", "LossEstimator",
    "PredictorEstimator", "load_predictor_estimator", "PRIOR_KINDS", "TABLE_CONSTRAINTS", "ConstraintPrior",
    "METHODS", "ArchSampler", "CandidateGroups", "Chosen",
]
