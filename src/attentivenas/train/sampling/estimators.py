"""Cheap estimators that rank candidate archs: HIGHER IS BETTER (negative loss, predicted accuracy).

An estimator scores a gene matrix (``int64 [m, num_genes]``): a predictor scores genes directly;
the mini-batch loss needs each candidate as an :class:`~attentivenas.space.Arch`, so it decodes them.
The training step's own loss scorer (:func:`attentivenas.train.sandwich.loss_scorer`) forwards the
candidates on the step's batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ...accuracy import load_predictor
from ...errors import ConfigError
from ...space import Arch, SearchSpace


@runtime_checkable
class Estimator(Protocol):
    """Scores candidate archs given as gene rows; HIGHER IS BETTER."""

    def score(self, genes: np.ndarray) -> np.ndarray: ...


class LossEstimator:
    """Score = minus ``loss_fn(arch)`` (tensors are converted with ``float``), one arch at a time."""

    def __init__(self, space: SearchSpace, loss_fn: Callable[[Arch], Any]) -> None:
        self.space = space
        self.loss_fn = loss_fn

    def score(self, genes: np.ndarray) -> np.ndarray:
        g = np.atleast_2d(np.asarray(genes))
        return -np.array([float(self.loss_fn(self.space.decode(row))) for row in g], dtype=np.float64)


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

    def score(self, genes: np.ndarray) -> np.ndarray:
        return np.asarray(self.predict_fn(self.features(genes)), dtype=np.float64).reshape(-1)

    def score_archs(self, archs: Sequence[Arch]) -> np.ndarray:
        """Scores of archs (encoded first)."""
        return self.score(self.space.encode_many(archs)) if archs else np.zeros(0)


def load_predictor_estimator(path: str | Path | None, space: SearchSpace) -> PredictorEstimator:
    """A :class:`PredictorEstimator` from an accuracy predictor file (``attentivenas predictor fit``)."""
    if path is None or not Path(path).is_file():
        where = "" if path is None else f" ({path} not found)"
        raise ConfigError(
            "predictor estimator needs an accuracy predictor file: set sampler.predictor=PATH "
            f"(fit one with `attentivenas predictor fit`){where}"
        )
    predictor = load_predictor(path)
    if not predictor.space.same_as(space):
        raise ConfigError(
            f"accuracy predictor {path} was fitted on space '{predictor.space.name}', but the sampler uses space "
            f"'{space.name}'; fit a predictor on this space"
        )
    return PredictorEstimator(predictor.predict, space, featurize=predictor.featurize)
