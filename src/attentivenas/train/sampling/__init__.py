"""Attentive sampling of the middle subnets of stage 1 (AttentiveNAS, sections 1 and 5 of the reference).

Per sampled subnet, BestUp-k / WorstUp-k

1. draws a target bin of the constraint (FLOPs by default, 25 MFLOPs wide) from a prior,
2. draws ``k`` candidate archs whose constraint value really lies in that bin,
3. scores them with an estimator (higher score is better: negative mini-batch loss, or predicted
   accuracy) and keeps the best (``bestup``) or the worst (``worstup``) one.

Lives here: ``constraints`` (what the bins measure), ``prior`` (:class:`ConstraintPrior`),
``candidates`` (archs inside a bin: rejection, caches, walk), ``estimators``, ``sampler``
(:class:`ArchSampler`: ``propose`` then ``choose``, in genes until the chosen archs) and ``record``
(the bounded record of its choices in ``metrics.jsonl``).

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
from .record import KIND as CHOICE_KIND
from .record import choice_record, read_choices, record_interval
from .sampler import METHODS, ArchSampler, CandidateGroups, Chosen

__all__ = [
    "CandidateFinder", "Candidates", "uniform_genes_f32", "DEFAULT_NUM_BINS", "PRIOR_CONSTRAINTS", "UNITS",
    "ConstraintFn", "NamedConstraint", "build_constraint", "derived_bin_width", "Estimator", "LossEstimator",
    "PredictorEstimator", "load_predictor_estimator", "PRIOR_KINDS", "TABLE_CONSTRAINTS", "ConstraintPrior",
    "METHODS", "ArchSampler", "CandidateGroups", "Chosen", "CHOICE_KIND", "choice_record", "read_choices",
    "record_interval",
]
