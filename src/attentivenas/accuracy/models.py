"""Regressors of accuracy predictors, stored pickle-free as plain JSON.

Random forest (the paper's choice): scikit-learn's trees packed into arrays and predicted with
numpy, the same code path before saving and after loading, and equal to scikit-learn's own
prediction. Gradient-boosted trees (LightGBM, its native text model), ridge regression on
standardised + one-hot knobs and a Gaussian process keep their coefficients.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import lightgbm as lgb
import numpy as np
from sklearn.ensemble import RandomForestRegressor
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel
from sklearn.linear_model import RidgeCV

KINDS = ("rf", "lgbm", "ridge", "gp")
MAX_TREE_DEPTH = 256  #: forests deeper than this are refused (ours are far shallower)
MAX_LGBM_TREES = 100_000
MAX_LGBM_LEAVES = 1 << 16


def _finite(*arrays: np.ndarray, what: str) -> None:
    if not all(np.all(np.isfinite(a)) for a in arrays):
        raise ValueError(f"{what} must be finite numbers")


class TreeEnsemble:
    """Regression trees packed into flat arrays and averaged; predicts exactly as scikit-learn's
    ``RandomForestRegressor`` (features compared as float32, trees summed in order)."""

    def __init__(self, left, right, feature, threshold, value, roots, depth: int) -> None:
        self.left = np.asarray(left, dtype=np.int64)
        self.right = np.asarray(right, dtype=np.int64)
        self.feature = np.asarray(feature, dtype=np.int64)
        self.threshold = np.asarray(threshold, dtype=np.float64)
        self.value = np.asarray(value, dtype=np.float64)
        self.roots = np.asarray(roots, dtype=np.int64)
        self.depth = int(depth)
        self._check()
        self._prepare()

    def _check(self) -> None:
        n = self.left.size
        arrays = (self.right, self.feature, self.threshold, self.value)
        if any(a.shape != (n,) for a in arrays) or self.roots.ndim != 1 or self.roots.size == 0:
            raise ValueError("tree arrays have inconsistent shapes")
        for a in (self.left, self.right, self.roots):
            if a.size and (a.min() < 0 or a.max() >= n):
                raise ValueError("tree node index out of range")
        if self.feature.size and self.feature.min() < 0:
            raise ValueError("tree feature index out of range")
        _finite(self.value, what="tree leaf values")
        _finite(self.threshold, what="tree thresholds")
        if not 0 <= self.depth <= MAX_TREE_DEPTH:
            raise ValueError(f"tree depth {self.depth} is outside [0, {MAX_TREE_DEPTH}]")
        self._check_structure()

    def _check_structure(self) -> None:
        """Every tree reaches its leaves (nodes pointing to themselves) within ``depth`` steps: no
        cycle, no path longer than the stated depth. Work is bounded by depth x nodes."""
        ids = np.arange(self.left.size)
        leaf = (self.left == ids) & (self.right == ids)
        if np.any((self.left == ids) ^ (self.right == ids)):
            raise ValueError("a tree node has one child pointing to itself")
        frontier = np.unique(self.roots)
        for _ in range(self.depth):
            inner = frontier[~leaf[frontier]]
            if inner.size == 0:
                break
            frontier = np.unique(np.concatenate([self.left[inner], self.right[inner]]))
        if np.any(~leaf[frontier]):
            raise ValueError(f"a tree has a cycle or is deeper than its stated depth {self.depth}")
        self._check_each_node_once(leaf)

    def _check_each_node_once(self, leaf: np.ndarray) -> None:
        """The children form trees: from the roots, every node is reached exactly once (no node with
        two parents, no two trees sharing nodes, no node outside every tree). Work is bounded by the nodes."""
        seen = np.zeros(self.left.size, dtype=bool)
        frontier = self.roots
        while frontier.size:
            uniq, counts = np.unique(frontier, return_counts=True)
            twice = np.concatenate([uniq[seen[uniq]], uniq[counts > 1]])
            if twice.size:
                raise ValueError(f"tree node {int(twice[0])} has two parents: child indices do not form a tree")
            seen[frontier] = True
            inner = frontier[~leaf[frontier]]
            frontier = np.concatenate([self.left[inner], self.right[inner]])
        if not seen.all():
            raise ValueError(f"{int((~seen).sum())} tree nodes (e.g. node {int(np.flatnonzero(~seen)[0])}) belong to "
                             "no tree: child indices do not form a tree")

    def _prepare(self) -> None:
        # a leaf points to itself, so traversal can run a fixed number of steps
        self._children = np.stack([self.right, self.left], axis=1).ravel()
        t32 = self.threshold.astype(np.float32)
        over = t32 > self.threshold  # round down: x32 <= t64  <=>  x32 <= t32
        t32[over] = np.nextafter(t32[over], np.float32(-np.inf))
        self._t32 = t32

    @classmethod
    def from_sklearn(cls, forest: Any) -> TreeEnsemble:
        left, right, feat, thr, val, roots = [], [], [], [], [], []
        offset = 0
        for est in forest.estimators_:
            t = est.tree_
            ids = np.arange(t.node_count)
            leaf = t.children_left < 0
            left.append(np.where(leaf, ids, t.children_left) + offset)
            right.append(np.where(leaf, ids, t.children_right) + offset)
            feat.append(np.where(leaf, 0, t.feature))
            thr.append(np.where(leaf, 0.0, t.threshold))
            val.append(t.value[:, 0, 0])
            roots.append(offset)
            offset += t.node_count
        depth = max(est.tree_.max_depth for est in forest.estimators_)
        cat = np.concatenate
        return cls(cat(left), cat(right), cat(feat), cat(thr), cat(val), roots, depth)

    def predict(self, x: np.ndarray) -> np.ndarray:
        x32 = np.ascontiguousarray(x, dtype=np.float32)
        n, nf = x32.shape
        if n and self.feature.max() >= nf:
            raise ValueError(f"trees use feature {self.feature.max()}, input has {nf}")
        flat = x32.ravel()
        rowoff = (np.arange(n) * nf)[None, :]
        node = np.repeat(self.roots[:, None], n, axis=1)
        for _ in range(self.depth):
            go_left = flat[self.feature[node] + rowoff] <= self._t32[node]
            node = self._children[2 * node + go_left]
        out = np.zeros(n, dtype=np.float64)
        for row in self.value[node]:  # sequential sum, as scikit-learn does
            out += row
        return out / len(self.roots)

    def to_dict(self) -> dict[str, Any]:
        return {
            "roots": self.roots.tolist(),
            "depth": self.depth,
            "left": self.left.tolist(),
            "right": self.right.tolist(),
            "feature": self.feature.tolist(),
            "threshold": self.threshold.tolist(),
            "value": self.value.tolist(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TreeEnsemble:
        return cls(d["left"], d["right"], d["feature"], d["threshold"], d["value"], d["roots"], d["depth"])


class LinearModel:
    """Ridge regression on standardised features plus a one-hot encoding of the knob columns."""

    def __init__(self, mean, scale, categories: list[list[float]], coef, intercept: float) -> None:
        self.mean = np.asarray(mean, dtype=np.float64)
        self.scale = np.asarray(scale, dtype=np.float64)
        self.categories = [np.asarray(c, dtype=np.float64) for c in categories]
        self.coef = np.asarray(coef, dtype=np.float64)
        self.intercept = float(intercept)
        if self.coef.size != self.mean.size + sum(c.size for c in self.categories):
            raise ValueError("ridge coefficients do not match the features")
        _finite(self.mean, self.scale, self.coef, np.asarray([self.intercept]), *self.categories,
                what="ridge coefficients")

    @staticmethod
    def design(x: np.ndarray, mean: np.ndarray, scale: np.ndarray, categories: list[np.ndarray]) -> np.ndarray:
        cols = [(x - mean) / scale]
        cols += [(x[:, j : j + 1] == c[None, :]).astype(np.float64) for j, c in enumerate(categories)]
        return np.concatenate(cols, axis=1)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.design(x, self.mean, self.scale, self.categories) @ self.coef + self.intercept

    def to_dict(self) -> dict[str, Any]:
        return {
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "categories": [c.tolist() for c in self.categories],
            "coef": self.coef.tolist(),
            "intercept": self.intercept,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LinearModel:
        return cls(d["mean"], d["scale"], d["categories"], d["coef"], d["intercept"])


class GPModel:
    """Mean of a Gaussian process (RBF kernel plus white noise) on standardised features."""

    def __init__(self, mean, scale, x_train, alpha, length_scale, amplitude: float, y_mean: float, y_std: float):
        self.mean = np.asarray(mean, dtype=np.float64)
        self.scale = np.asarray(scale, dtype=np.float64)
        self.x_train = np.asarray(x_train, dtype=np.float64)
        self.alpha = np.asarray(alpha, dtype=np.float64)
        self.length_scale = np.asarray(length_scale, dtype=np.float64) * np.ones(self.mean.size)
        self.amplitude = float(amplitude)
        self.y_mean, self.y_std = float(y_mean), float(y_std)
        if self.x_train.shape != (self.alpha.size, self.mean.size):
            raise ValueError("GP training inputs do not match the features")
        _finite(self.mean, self.scale, self.x_train, self.alpha, self.length_scale,
                np.asarray([self.amplitude, self.y_mean, self.y_std]), what="GP parameters")

    def predict(self, x: np.ndarray) -> np.ndarray:
        z = (x - self.mean) / self.scale / self.length_scale
        zt = self.x_train / self.length_scale
        d2 = (z**2).sum(1)[:, None] + (zt**2).sum(1)[None, :] - 2.0 * z @ zt.T
        k = self.amplitude * np.exp(-0.5 * np.maximum(d2, 0.0))
        return k @ self.alpha * self.y_std + self.y_mean

    def to_dict(self) -> dict[str, Any]:
        return {
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "x_train": self.x_train.tolist(),
            "alpha": self.alpha.tolist(),
            "length_scale": self.length_scale.tolist(),
            "amplitude": self.amplitude,
            "y_mean": self.y_mean,
            "y_std": self.y_std,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GPModel:
        keys = ("mean", "scale", "x_train", "alpha", "length_scale", "amplitude", "y_mean", "y_std")
        return cls(*(d[k] for k in keys))


def _ints(values: str, what: str) -> np.ndarray:
    try:
        return np.array([int(v) for v in values.split()], dtype=np.int64)
    except ValueError:
        raise ValueError(f"LightGBM {what} must be integers") from None


def _floats(values: str, what: str) -> np.ndarray:
    try:
        arr = np.array([float(v) for v in values.split()], dtype=np.float64)
    except ValueError:
        raise ValueError(f"LightGBM {what} must be numbers") from None
    _finite(arr, what=f"LightGBM {what}")
    return arr


def _check_lgbm_tree(fields: dict[str, str], n_features: int, t: int) -> None:
    """One regression tree: numeric splits on known features, children forming a tree over its leaves."""
    leaves = int(_ints(fields.get("num_leaves", ""), "num_leaves")[:1].sum()) if "num_leaves" in fields else 0
    if not 1 <= leaves <= MAX_LGBM_LEAVES:
        raise ValueError(f"LightGBM tree {t} has {leaves} leaves; allowed 1 to {MAX_LGBM_LEAVES}")
    if int(fields.get("num_cat", "0")) != 0 or fields.get("is_linear", "0") != "0":
        raise ValueError(f"LightGBM tree {t}: only numeric splits and constant leaves are supported")
    if _floats(fields.get("leaf_value", ""), "leaf_value").size != leaves:
        raise ValueError(f"LightGBM tree {t}: leaf_value does not hold {leaves} values")
    if leaves == 1:
        return
    n = leaves - 1
    arrays = {k: _ints(fields.get(k, ""), k) for k in ("split_feature", "decision_type", "left_child", "right_child")}
    if any(a.size != n for a in arrays.values()) or _floats(fields.get("threshold", ""), "threshold").size != n:
        raise ValueError(f"LightGBM tree {t}: split arrays do not hold {n} values")
    feat, kind = arrays["split_feature"], arrays["decision_type"]
    if feat.min() < 0 or feat.max() >= n_features or np.any((kind & 1) != 0) or np.any((kind < 0) | (kind > 15)):
        raise ValueError(f"LightGBM tree {t}: split on an unknown feature or a categorical split")
    children = np.concatenate([arrays["left_child"], arrays["right_child"]])
    inner, leaf = children[children >= 0], ~children[children < 0]
    # a tree: every node but the root (0) is some node's child exactly once, every leaf likewise
    if (inner.size and (inner.min() < 1 or inner.max() >= n)) or (leaf.size and leaf.max() >= leaves) \
            or np.unique(inner).size != n - 1 or np.unique(leaf).size != leaves or inner.size != n - 1:
        raise ValueError(f"LightGBM tree {t}: child indices do not form a tree")


def check_lgbm_text(model_str: str) -> int:
    """Validate a LightGBM text model before LightGBM parses it (bounded size, trees that are trees,
    indices in range, finite numbers). Returns its number of features."""
    if len(model_str) > 256 << 20:
        raise ValueError("LightGBM model text is over 256 MiB")
    head, _, rest = model_str.partition("\nTree=")
    header = dict(line.split("=", 1) for line in head.splitlines() if "=" in line)
    if header.get("num_class", "1") != "1" or header.get("num_tree_per_iteration", "1") != "1":
        raise ValueError("LightGBM model must be a single-output regression")
    n_features = int(_ints(header.get("max_feature_idx", ""), "max_feature_idx")[:1].sum()) + 1
    if not 1 <= n_features <= 100_000:
        raise ValueError(f"LightGBM model has {n_features} features")
    body = rest.split("\nend of trees", 1)[0] if rest else ""
    blocks = [b for b in ("Tree=" + body).split("\nTree=") if b.strip()] if body else []
    if len(blocks) > MAX_LGBM_TREES:
        raise ValueError(f"LightGBM model has {len(blocks)} trees; at most {MAX_LGBM_TREES}")
    for t, block in enumerate(blocks):
        _check_lgbm_tree(dict(line.split("=", 1) for line in block.splitlines()[1:] if "=" in line), n_features, t)
    return n_features


class LGBMModel:
    """A LightGBM booster, saved in LightGBM's own text format."""

    def __init__(self, model_str: str) -> None:
        if not isinstance(model_str, str) or not model_str.startswith("tree"):
            raise ValueError("not a LightGBM text model")
        self.num_features = check_lgbm_text(model_str)
        self.model_str = model_str
        try:
            self.booster = lgb.Booster(model_str=model_str)
        except lgb.basic.LightGBMError as exc:
            raise ValueError(f"LightGBM cannot read the model: {exc}") from None

    def predict(self, x: np.ndarray) -> np.ndarray:
        # one thread: OpenMP start-up costs far more than it saves on small batches
        return np.asarray(self.booster.predict(np.asarray(x, dtype=np.float64), num_threads=1), dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        return {"model_str": self.model_str}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LGBMModel:
        return cls(d["model_str"])


MODEL_CLASSES: dict[str, Any] = {"rf": TreeEnsemble, "lgbm": LGBMModel, "ridge": LinearModel, "gp": GPModel}

DEFAULT_HYPERPARAMS: dict[str, dict[str, Any]] = {
    "rf": {"n_estimators": 100, "min_samples_leaf": 1, "max_features": 1.0},
    "lgbm": {
        "num_boost_round": 300, "learning_rate": 0.05, "num_leaves": 15, "min_data_in_leaf": 5,
        "feature_fraction": 0.8, "bagging_fraction": 0.8, "bagging_freq": 1, "lambda_l2": 1.0,
    },
    "ridge": {"alphas": [0.001, 0.01, 0.1, 1.0, 10.0, 100.0, 1000.0]},
    "gp": {"n_restarts_optimizer": 1},
}


def _standardise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    return mean, np.where(scale > 0, scale, 1.0)


def _fit_rf(x: np.ndarray, y: np.ndarray, seed: int, hp: dict[str, Any], **_: Any) -> TreeEnsemble:
    rf = RandomForestRegressor(random_state=seed, n_jobs=1, **hp)
    rf.fit(x, y)
    return TreeEnsemble.from_sklearn(rf)


def _fit_lgbm(x: np.ndarray, y: np.ndarray, seed: int, hp: dict[str, Any], **_: Any) -> LGBMModel:
    params = {k: v for k, v in hp.items() if k != "num_boost_round"}
    params.update(objective="regression", seed=seed, num_threads=1, deterministic=True, force_row_wise=True,
                  verbosity=-1, min_data_in_bin=1)
    data = lgb.Dataset(x, y, params={"verbosity": -1, "min_data_in_bin": 1})
    booster = lgb.train(params, data, num_boost_round=int(hp["num_boost_round"]))
    return LGBMModel(booster.model_to_string())


def _fit_ridge(x: np.ndarray, y: np.ndarray, seed: int, hp: dict[str, Any],
               categories: list[list[float]] | None = None, **_: Any) -> LinearModel:
    mean, scale = _standardise(x)
    cats = [np.asarray(c if len(c) > 1 else [], dtype=np.float64) for c in (categories or [])]
    design = LinearModel.design(x, mean, scale, cats)
    model = RidgeCV(alphas=hp["alphas"]).fit(design, y)
    return LinearModel(mean, scale, [c.tolist() for c in cats], model.coef_, float(model.intercept_))


def _fit_gp(x: np.ndarray, y: np.ndarray, seed: int, hp: dict[str, Any], **_: Any) -> GPModel:
    mean, scale = _standardise(x)
    z = (x - mean) / scale
    y_mean, y_std = float(y.mean()), float(y.std()) or 1.0
    kernel = ConstantKernel(1.0, (1e-3, 1e3)) * RBF(1.0, (1e-2, 1e3)) + WhiteKernel(1e-2, (1e-6, 1e1))
    gp = GaussianProcessRegressor(kernel, normalize_y=False, random_state=seed, **hp)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gp.fit(z, (y - y_mean) / y_std)
    k = gp.kernel_.k1
    return GPModel(mean, scale, z, gp.alpha_, k.k2.length_scale, k.k1.constant_value, y_mean, y_std)


FITTERS: dict[str, Callable[..., Any]] = {"rf": _fit_rf, "lgbm": _fit_lgbm, "ridge": _fit_ridge, "gp": _fit_gp}
