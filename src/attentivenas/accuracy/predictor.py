"""Accuracy predictors: features, fitting, K-fold cross-validation, the best kind, files.

Stage 2 ranks thousands of subnets; measuring each on the validation split is slow, so a cheap
regressor learns accuracy from the arch's knobs (:mod:`attentivenas.accuracy.models`).
:func:`fit_best` cross-validates every kind on held-out archs and refits the best (by Kendall tau)
on all data. Predictor files are plain JSON, never pickles.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import KFold

from ..config import DEFAULT_PREDICTOR_KINDS
from ..costs import CostModel
from ..errors import CheckpointError, ConfigError, UserError
from ..io import atomic_write_json, json_safe, read_json_file
from ..progress import progress_bar
from ..space import Arch, SearchSpace
from .dataset import ArchDataset
from .metrics import rank_metrics
from .models import DEFAULT_HYPERPARAMS, FITTERS, KINDS, MODEL_CLASSES, TreeEnsemble

FORMAT = "attentivenas-predictor"
VERSION = 1
DEFAULT_KINDS = DEFAULT_PREDICTOR_KINDS
FEATURE_SETS = ("knobs", "knobs+cost")
#: a predictor predicting outside this range (top-1 in percent) for a probe subnet is refused, on load and on fit
PREDICTION_RANGE = (0.0, 100.0)


# --------------------------------------------------------------------------- features
def make_features(space: SearchSpace, genes: np.ndarray, feature_set: str, cost: CostModel | None) -> np.ndarray:
    """Feature matrix of a gene matrix: raw knob values, plus log MFLOPs and log params for
    ``knobs+cost``."""
    x = space.features_from_genes(genes)
    if feature_set == "knobs+cost":
        assert cost is not None
        f, p = cost.flops_and_params(genes)
        x = np.concatenate([x, np.log(f)[:, None], np.log(p)[:, None]], axis=1)
    return x


def feature_names(space: SearchSpace, feature_set: str) -> list[str]:
    names = space.feature_names()
    return names + ["log_mflops", "log_params"] if feature_set == "knobs+cost" else names


def check_kinds(kinds: Iterable[str]) -> tuple[str, ...]:
    """Validate predictor kinds; raises :class:`ConfigError` listing the allowed ones."""
    out = tuple(str(k).strip().lower() for k in kinds if str(k).strip())
    bad = [k for k in out if k not in KINDS]
    if bad or not out:
        raise ConfigError(f"unknown predictor kind(s) {bad or list(kinds)}; allowed: {list(KINDS)}")
    return tuple(dict.fromkeys(out))


def _check_feature_set(feature_set: str) -> str:
    if feature_set not in FEATURE_SETS:
        raise ConfigError(f"unknown feature set {feature_set!r}; allowed: {list(FEATURE_SETS)}")
    return feature_set


# --------------------------------------------------------------------------- predictor
@dataclass
class Predictor:
    """A fitted accuracy predictor of one space. Predicts top-1 (percent) from features, genes or archs."""

    kind: str
    space: SearchSpace
    model: Any
    feature_set: str = "knobs"
    num_classes: int = 1000
    metrics: dict[str, Any] = field(default_factory=dict)
    hyperparams: dict[str, Any] = field(default_factory=dict)
    n_train: int = 0
    seed: int = 0
    report: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def __post_init__(self) -> None:
        self._cost = CostModel(self.space, self.num_classes) if self.feature_set == "knobs+cost" else None

    @property
    def space_name(self) -> str:
        return self.space.name

    @property
    def feature_names(self) -> list[str]:
        return feature_names(self.space, self.feature_set)

    def featurize(self, genes: np.ndarray) -> np.ndarray:
        return make_features(self.space, np.atleast_2d(genes), self.feature_set, self._cost)

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Predicted accuracy of every row of a feature matrix (see :attr:`feature_names`)."""
        x = np.atleast_2d(np.asarray(features, dtype=np.float64))
        if x.shape[1] != len(self.feature_names):
            raise ValueError(f"predictor expects {len(self.feature_names)} features, got {x.shape[1]}")
        with np.errstate(over="ignore", invalid="ignore"):
            y = np.asarray(self.model.predict(x), dtype=np.float64)
        if not np.all(np.isfinite(y)):
            where = f" {self.path}" if self.path else ""
            raise CheckpointError(f"predictor{where} predicts a non-finite accuracy ({_first_bad(y)}) for "
                                  f"{int(np.sum(~np.isfinite(y)))} of {y.size} subnets: its {self.kind} model "
                                  "overflows; fit it again")
        return y

    def predict_genes(self, genes: np.ndarray) -> np.ndarray:
        return self.predict(self.featurize(genes))

    def predict_archs(self, archs: Iterable[Arch]) -> np.ndarray:
        archs = list(archs)
        return self.predict_genes(self.space.encode_many(archs)) if archs else np.zeros(0)

    __call__ = predict_genes

    def to_dict(self) -> dict[str, Any]:
        return json_safe({
            "format": FORMAT,
            "version": VERSION,
            "kind": self.kind,
            "space_name": self.space.name,
            "space": self.space.to_dict(),
            "num_classes": self.num_classes,
            "feature_set": self.feature_set,
            "feature_names": self.feature_names,
            "target": "top-1 accuracy (percent)",
            "n_train": self.n_train,
            "seed": self.seed,
            "hyperparams": self.hyperparams,
            "metrics": self.metrics,
            "report": self.report,
            "model": self.model.to_dict(),
        })

    def save(self, path: str | Path) -> Path:
        """Write the predictor as JSON, atomically."""
        return atomic_write_json(path, self.to_dict(), indent=None)


def fit_predictor(
    dataset: ArchDataset, kind: str = "rf", seed: int = 0, feature_set: str = "knobs",
    hyperparams: dict[str, Any] | None = None,
) -> Predictor:
    """Fit one predictor of ``kind`` on all records of ``dataset``."""
    (kind,) = check_kinds([kind])
    _check_feature_set(feature_set)
    _check_size(dataset, 2)
    hp = {**DEFAULT_HYPERPARAMS[kind], **(hyperparams or {})}
    cost = CostModel(dataset.space, dataset.num_classes)
    x = make_features(dataset.space, dataset.genes(), feature_set, cost)
    model = _fit_model(kind, dataset.space, x, dataset.accuracies(), seed, hp)
    pred = Predictor(kind, dataset.space, model, feature_set, dataset.num_classes, hyperparams=hp,
                     n_train=len(dataset), seed=seed)
    try:
        _probe(pred)
    except ValueError as exc:
        raise ConfigError(f"the fitted {kind} predictor is refused: {exc}; fit another kind (e.g. rf, whose "
                          "predictions stay within the measured range)") from None
    return pred


def _fit_model(kind: str, space: SearchSpace, x: np.ndarray, y: np.ndarray, seed: int, hp: dict[str, Any]) -> Any:
    cats = [list(map(float, c)) for c in space.gene_choices]
    return FITTERS[kind](x, y, seed, hp, categories=cats)


def _check_size(dataset: ArchDataset, need: int, why: str = "") -> None:
    if len(dataset) == 0:
        raise ConfigError("the arch dataset has no records; evaluate some archs first")
    if len(dataset) < need:
        raise ConfigError(f"the arch dataset has {len(dataset)} records; fitting needs at least {need}{why}")


def cross_validate(
    dataset: ArchDataset, kind: str, folds: int = 5, seed: int = 0, feature_set: str = "knobs",
    hyperparams: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """K-fold CV on held-out archs: mean and std over folds of Kendall tau, Spearman rho and RMSE,
    the same metrics on the pooled out-of-fold predictions, fit time and predict time for 50 rows."""
    (kind,) = check_kinds([kind])
    _check_feature_set(feature_set)
    if folds < 2:
        raise ConfigError(f"folds must be >= 2, got {folds}")
    _check_size(dataset, 2 * folds, f" (2 per fold with {folds} folds)")
    hp = {**DEFAULT_HYPERPARAMS[kind], **(hyperparams or {})}
    x = make_features(dataset.space, dataset.genes(), feature_set, CostModel(dataset.space, dataset.num_classes))
    y = dataset.accuracies()
    oof = np.zeros_like(y)
    per_fold: list[dict[str, float]] = []
    t0 = time.perf_counter()
    model = None
    for train, test in KFold(folds, shuffle=True, random_state=seed).split(x):
        model = _fit_model(kind, dataset.space, x[train], y[train], seed, hp)
        oof[test] = model.predict(x[test])
        per_fold.append(rank_metrics(y[test], oof[test]))
    fit_s = (time.perf_counter() - t0) / folds
    report: dict[str, Any] = {"kind": kind, "folds": folds, "n": len(y)}
    for name in ("kendall_tau", "spearman_rho", "rmse"):
        vals = np.array([m[name] for m in per_fold])
        ok = vals[np.isfinite(vals)]
        report[name] = float(ok.mean()) if ok.size else float("nan")
        report[f"{name}_std"] = float(ok.std()) if ok.size else float("nan")
    report["pooled"] = rank_metrics(y, oof)
    report["fit_seconds"] = fit_s
    report["predict_ms_50"] = _time_predict(model, x)
    return report


def _time_predict(model: Any, x: np.ndarray, rows: int = 50, repeats: int = 20) -> float:
    batch = x[np.arange(rows) % len(x)]
    model.predict(batch)
    t0 = time.perf_counter()
    for _ in range(repeats):
        model.predict(batch)
    return (time.perf_counter() - t0) / repeats * 1e3


def fit_best(
    dataset: ArchDataset, kinds: Sequence[str] = DEFAULT_KINDS, folds: int = 5, seed: int = 0,
    feature_set: str = "knobs", progress: bool = False,
) -> tuple[Predictor, dict[str, Any]]:
    """Cross-validate every kind, refit the best (highest mean Kendall tau) on all data.

    Returns the predictor and ``{"best": kind, "folds", "n", "feature_set", "kinds": {kind: cv report}}``.
    """
    kinds = check_kinds(kinds)
    reports = {k: cross_validate(dataset, k, folds, seed, feature_set) for k in progress_bar(kinds, "predictors", progress)}
    pred, best = _refit_best(dataset, kinds, reports, seed, feature_set)
    report = {"best": best, "folds": folds, "n": len(dataset), "feature_set": feature_set, "kinds": reports}
    pred.metrics = reports[best]
    pred.report = json_safe(report)
    return pred, report


def _refit_best(dataset: ArchDataset, kinds: Sequence[str], reports: dict[str, dict[str, Any]], seed: int,
                feature_set: str) -> tuple[Predictor, str]:
    """The best kind by cross-validation refitted on all data; a kind whose refit predicts outside
    [0, 100] is passed over for the next best (the last one's refusal is raised)."""
    ranked = sorted(kinds, key=lambda k: -_score(reports[k]))
    for i, kind in enumerate(ranked):
        try:
            return fit_predictor(dataset, kind, seed, feature_set), kind
        except ConfigError:
            if i == len(ranked) - 1:
                raise
    raise AssertionError("unreachable: at least one kind")


def _score(report: dict[str, Any]) -> float:
    tau = report["kendall_tau"]
    return tau if math.isfinite(tau) else -math.inf


def evaluate_predictor(predictor: Predictor, dataset: ArchDataset) -> dict[str, Any]:
    """Rank metrics of ``predictor`` on every record of ``dataset`` (same space required)."""
    check_space(predictor, dataset.space)
    _check_size(dataset, 1)
    pred = predictor.predict_genes(dataset.genes())
    return {"n": len(dataset), **rank_metrics(dataset.accuracies(), pred)}


# --------------------------------------------------------------------------- load / check
def load_predictor(path: str | Path) -> Predictor:
    """Load a predictor JSON file (no unpickling). A missing or corrupt file raises
    :class:`CheckpointError` naming the file."""
    p = Path(path)
    data = read_json_file(p, "predictor file", CheckpointError)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{p} is not an attentivenas predictor file (expected \"format\": \"{FORMAT}\")")
    if data.get("version") != VERSION:
        raise CheckpointError(f"predictor file {p} has version {data.get('version')!r}; this build reads {VERSION}")
    try:
        pred = _predictor_from_dict(data)
    except (KeyError, TypeError, ValueError, IndexError, UserError, AttributeError) as exc:
        raise CheckpointError(f"predictor file {p} is corrupt: {type(exc).__name__}: {exc}") from None
    pred.path = p
    return pred


def predictor_from_json(text: str, where: str = "predictor") -> Predictor:
    """A predictor from the text of its file (as :func:`load_predictor` reads it)."""
    try:
        data = json.loads(text)
    except ValueError:
        raise CheckpointError(f"{where} is not valid JSON") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("version") != VERSION:
        raise CheckpointError(f"{where} is not an attentivenas predictor of version {VERSION}")
    try:
        return _predictor_from_dict(data)
    except (KeyError, TypeError, ValueError, IndexError, UserError, AttributeError) as exc:
        raise CheckpointError(f"{where} is corrupt: {type(exc).__name__}: {exc}") from None


def _predictor_from_dict(data: dict[str, Any]) -> Predictor:
    kind = data["kind"]
    if kind not in MODEL_CLASSES:
        raise ValueError(f"unknown kind {kind!r}")
    sd = data["space"]
    space = SearchSpace.from_supernet_config(sd["supernet_config"], name=str(data.get("space_name", sd["name"])))
    feature_set = data.get("feature_set", "knobs")
    if feature_set not in FEATURE_SETS:
        raise ValueError(f"unknown feature set {feature_set!r}")
    if data.get("feature_names") != feature_names(space, feature_set):
        raise ValueError("feature names do not match the space")
    model = MODEL_CLASSES[kind].from_dict(data["model"])
    n_features = len(feature_names(space, feature_set))
    uses = getattr(model, "num_features", None)
    if isinstance(model, TreeEnsemble) and model.feature.size:
        uses = int(model.feature.max()) + 1 if uses is None else uses
        if uses > n_features:
            raise ValueError(f"the trees use feature {uses - 1}, the space has {n_features}")
    elif uses is not None and uses != n_features:
        raise ValueError(f"the model reads {uses} features, the space has {n_features}")
    pred = Predictor(kind, space, model, feature_set, int(data.get("num_classes", 1000)),
                     metrics=data.get("metrics") or {}, hyperparams=data.get("hyperparams") or {},
                     n_train=int(data.get("n_train", 0)), seed=int(data.get("seed", 0)),
                     report=data.get("report") or {})
    _probe(pred)  # fail on load, not in the search
    return pred


def _first_bad(y: np.ndarray) -> float:
    return float(y[~np.isfinite(y)][0])


def _probe(pred: Predictor) -> None:
    """Predict the smallest, the largest and a few random subnets (and all-zero features): a model
    whose predictions are not finite numbers (overflowing coefficients) raises ``ValueError``."""
    space = pred.space
    genes = np.concatenate([space.encode_many([space.min_arch(), space.max_arch()]),
                            space.sample_genes(np.random.default_rng(0), 6)])
    x = np.concatenate([np.zeros((1, len(pred.feature_names))), pred.featurize(genes)])
    with np.errstate(over="ignore", invalid="ignore"):
        y = np.asarray(pred.model.predict(x), dtype=np.float64)
    if y.shape != (len(x),):
        raise ValueError(f"the model gives {y.shape} predictions for {len(x)} subnets")
    names = ["all-zero features", "the smallest subnet", "the largest subnet"]
    if not np.all(np.isfinite(y)):
        which = [names[i] if i < 3 else "a random subnet" for i in np.flatnonzero(~np.isfinite(y))]
        raise ValueError(f"the model predicts {_first_bad(y)} for {which[0]} ({len(which)} of {len(x)} probes not "
                         "finite): its numbers overflow")
    lo, hi = PREDICTION_RANGE
    subnets = y[1:]  # the subnets' predictions (all-zero features may extrapolate)
    outside = np.flatnonzero((subnets < lo) | (subnets > hi))
    if len(outside):
        far = int(outside[np.argmax(np.abs(subnets[outside] - (lo + hi) / 2))]) + 1
        which = names[far] if far < 3 else "a random subnet"
        raise ValueError(f"the model predicts {y[far]:.4g}% top-1 for {which}: not an accuracy in percent "
                         f"(outside [{lo:g}, {hi:g}])")


def check_space(predictor: Predictor, space: SearchSpace) -> None:
    """Raise :class:`CheckpointError` when ``predictor`` was fitted on another space than ``space``."""
    if not predictor.space.same_as(space):
        where = f" ({predictor.path})" if predictor.path else ""
        same = " (same name, different supernet config)" if predictor.space.name == space.name else ""
        raise CheckpointError(
            f"predictor{where} was fitted on space '{predictor.space.name}', not '{space.name}'{same}"
        )
