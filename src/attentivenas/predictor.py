"""Accuracy predictors: datasets of (arch, accuracy), regressors, rank metrics.

Stage 2 ranks thousands of subnets; measuring each on the validation split is slow, so a cheap
regressor learns accuracy from the arch's knobs. This module provides:

* :class:`ArchDataset`: (arch, accuracy, MFLOPs, params) records, stored as JSON lines (a header
  line naming the space, then one record per line, keyed by ``Arch.key()``), and
  :func:`build_arch_dataset`, which draws archs spread over the FLOPs range and evaluates only the
  ones not yet cached, appending (and fsyncing) each record so an interrupted build keeps its work.
* Regressors: random forest (the paper's choice), gradient-boosted trees (LightGBM), ridge
  regression on standardised + one-hot knobs, and a Gaussian process.
* Metrics (:func:`kendall_tau`, :func:`spearman_rho`, :func:`rmse`), K-fold cross-validation on
  held-out archs and :func:`fit_best`, which refits the best kind (by Kendall tau) on all data.
* Predictor files are plain JSON, never pickles: the random forest's trees are stored as arrays and
  predicted with numpy (the same code path before saving and after loading, and equal to
  scikit-learn's own prediction), LightGBM keeps its native text model, ridge and the GP their
  coefficients.
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .cost import CostModel
from .errors import CheckpointError, ConfigError, UserError
from .io import atomic_write_json, atomic_write_text, read_json_file
from .space import Arch, SearchSpace, get_space

FORMAT = "attentivenas-predictor"
DATASET_FORMAT = "attentivenas-arch-dataset"
VERSION = 1
KINDS = ("rf", "lgbm", "ridge", "gp")
DEFAULT_KINDS = ("rf", "lgbm", "ridge")
FEATURE_SETS = ("knobs", "knobs+cost")
SPREADS = ("flops", "uniform")


# =========================================================================== metrics
def _pair(y_true: Sequence[float], y_pred: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(y_true, dtype=np.float64).ravel()
    b = np.asarray(y_pred, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"y_true has {a.size} values, y_pred {b.size}")
    return a, b


def kendall_tau(y_true: Sequence[float], y_pred: Sequence[float]) -> float:
    """Kendall's tau-b rank correlation (nan when either side is constant or has < 2 values)."""
    from scipy.stats import kendalltau

    a, b = _pair(y_true, y_pred)
    if a.size < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(kendalltau(a, b).statistic)


def spearman_rho(y_true: Sequence[float], y_pred: Sequence[float]) -> float:
    """Spearman's rank correlation (nan when either side is constant or has < 2 values)."""
    from scipy.stats import spearmanr

    a, b = _pair(y_true, y_pred)
    if a.size < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def rmse(y_true: Sequence[float], y_pred: Sequence[float]) -> float:
    """Root mean squared error."""
    a, b = _pair(y_true, y_pred)
    return float(np.sqrt(np.mean((a - b) ** 2))) if a.size else float("nan")


def rank_metrics(y_true: Sequence[float], y_pred: Sequence[float]) -> dict[str, float]:
    """``{"kendall_tau", "spearman_rho", "rmse"}`` of a prediction."""
    return {
        "kendall_tau": kendall_tau(y_true, y_pred),
        "spearman_rho": spearman_rho(y_true, y_pred),
        "rmse": rmse(y_true, y_pred),
    }


def _clean(obj: Any) -> Any:
    """Replace NaN/inf floats by None (strict JSON) in nested dicts and lists."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


# =========================================================================== dataset
@dataclass(frozen=True)
class ArchRecord:
    """One evaluated arch: accuracy (top-1, percent) plus its analytic cost."""

    arch: Arch
    accuracy: float
    mflops: float
    params_m: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.arch.key(),
            "arch": self.arch.to_dict(),
            "accuracy": float(self.accuracy),
            "mflops": float(self.mflops),
            "params_m": float(self.params_m),
        }


def _dataset_header(space: SearchSpace, num_classes: int) -> dict[str, Any]:
    return {"format": DATASET_FORMAT, "version": VERSION, "space": space.to_dict(), "num_classes": num_classes}


def _same_space(a: SearchSpace, b: SearchSpace) -> bool:
    return a.to_supernet_config() == b.to_supernet_config()


class ArchDataset:
    """Records of evaluated archs of one space, unique by ``arch.key()`` (the last one wins)."""

    def __init__(self, space: SearchSpace, records: Iterable[ArchRecord] = (), num_classes: int = 1000) -> None:
        self.space = space
        self.num_classes = int(num_classes)
        self._records: dict[str, ArchRecord] = {}
        for r in records:
            self.add(r)

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self):
        return iter(self._records.values())

    def __contains__(self, arch: Arch) -> bool:
        return arch.key() in self._records

    def get(self, arch: Arch) -> ArchRecord | None:
        return self._records.get(arch.key())

    def add(self, record: ArchRecord) -> None:
        self._records[record.arch.key()] = record

    @property
    def records(self) -> list[ArchRecord]:
        return list(self._records.values())

    def genes(self) -> np.ndarray:
        """Gene matrix, shape (n, num_genes)."""
        if not self._records:
            return np.zeros((0, self.space.num_genes), dtype=np.int64)
        return np.stack([self.space.encode(r.arch) for r in self._records.values()])

    def accuracies(self) -> np.ndarray:
        return np.array([r.accuracy for r in self._records.values()], dtype=np.float64)

    def mflops(self) -> np.ndarray:
        return np.array([r.mflops for r in self._records.values()], dtype=np.float64)

    def subset(self, archs: Iterable[Arch]) -> ArchDataset:
        """The records of ``archs`` (those present), in that order."""
        recs = [self._records[a.key()] for a in archs if a.key() in self._records]
        return ArchDataset(self.space, recs, self.num_classes)

    def save(self, path: str | Path) -> Path:
        """Write header + records as JSON lines, atomically."""
        lines = [json.dumps(_dataset_header(self.space, self.num_classes))]
        lines += [json.dumps(r.to_dict()) for r in self._records.values()]
        return atomic_write_text(path, "\n".join(lines) + "\n")

    @classmethod
    def load(cls, path: str | Path, space: SearchSpace | None = None, num_classes: int | None = None) -> ArchDataset:
        """Read a JSONL dataset. The space comes from the file's header, else ``space``, else the
        ``attentivenas`` preset; a header of another space than ``space`` is an error. A truncated
        last line (an interrupted write) is skipped; any other bad line raises :class:`ConfigError`."""
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"dataset file not found: {p}")
        try:
            text = p.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"dataset file {p} cannot be read: {exc}") from None
        header, rows = _parse_jsonl(p, text)
        if header is not None:
            file_space = _space_from_header(p, header)
            if space is not None and not _same_space(space, file_space):
                raise ConfigError(
                    f"dataset {p} was built on space '{file_space.name}', not '{space.name}' (the supernet configs differ)"
                )
            space = file_space
            if num_classes is None:
                num_classes = int(header.get("num_classes", 1000))
        space = space or get_space(None)
        ds = cls(space, num_classes=1000 if num_classes is None else num_classes)
        cost = CostModel(space, ds.num_classes)
        for lineno, row in rows:
            ds.add(_record_from_row(p, lineno, row, space, cost))
        return ds


def _parse_jsonl(path: Path, text: str) -> tuple[dict | None, list[tuple[int, dict]]]:
    lines = text.split("\n")
    complete = text.endswith("\n")
    header: dict | None = None
    rows: list[tuple[int, dict]] = []
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            if i == len(lines) and not complete:
                warnings.warn(f"{path}: skipping a truncated last line (interrupted write)", stacklevel=3)
                continue
            raise ConfigError(f"dataset {path} line {i} is not valid JSON") from None
        if not isinstance(obj, dict):
            raise ConfigError(f"dataset {path} line {i} must be a JSON object")
        if obj.get("format") == DATASET_FORMAT:
            header = obj
        else:
            rows.append((i, obj))
    return header, rows


def _space_from_header(path: Path, header: dict) -> SearchSpace:
    try:
        sd = header["space"]
        return SearchSpace.from_supernet_config(sd["supernet_config"], name=str(sd.get("name", "custom")))
    except (KeyError, TypeError, UserError) as exc:
        raise ConfigError(f"dataset {path} has a bad header: {exc}") from None


def _record_from_row(path: Path, lineno: int, row: dict, space: SearchSpace, cost: CostModel) -> ArchRecord:
    where = f"dataset {path} line {lineno}"
    if "arch" not in row or "accuracy" not in row:
        raise ConfigError(f"{where} needs keys 'arch' and 'accuracy'")
    try:
        arch = space.arch_from_dict(row["arch"])
    except UserError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    acc = row["accuracy"]
    if isinstance(acc, bool) or not isinstance(acc, (int, float)) or not math.isfinite(acc):
        raise ConfigError(f"{where}: 'accuracy' must be a finite number, got {acc!r}")
    mflops, params = row.get("mflops"), row.get("params_m")
    if not isinstance(mflops, (int, float)) or not isinstance(params, (int, float)):
        f, p = cost.flops_and_params(space.encode(arch)[None, :])
        mflops, params = float(f[0]), float(p[0]) / 1e6
    return ArchRecord(arch, float(acc), float(mflops), float(params))


class _JsonlAppender:
    """Appends one JSON line per call with a single write, then flush + fsync."""

    def __init__(self, path: Path, header: dict[str, Any]) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() and path.stat().st_size > 0:
            _drop_partial_tail(path)
        else:
            atomic_write_text(path, json.dumps(header) + "\n")

    def append(self, obj: dict[str, Any]) -> None:
        data = (json.dumps(obj) + "\n").encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)


def _drop_partial_tail(path: Path) -> None:
    """Cut a file after its last newline (a record half-written by an interrupted run)."""
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        with open(path, "r+b") as f:
            f.truncate(cut)


def spread_genes(
    space: SearchSpace, n: int, rng: np.random.Generator, cost: CostModel, bins: int = 10, pool_factor: int = 20
) -> np.ndarray:
    """``n`` distinct gene vectors spread evenly over the FLOPs range: the min and max archs, then
    round-robin over ``bins`` equal-width FLOPs bins of a candidate pool (half uniform, half drawn
    at a random "size level" so that both ends of the range are populated)."""
    sizes = space.gene_sizes
    m = max(n * pool_factor, 1000)
    uniform = space.sample_genes(rng, m // 2)
    level = rng.random((m - m // 2, 1))
    scaled = rng.binomial(np.broadcast_to(sizes - 1, (len(level), len(sizes))), level)
    pool = np.concatenate([np.zeros((1, len(sizes)), np.int64), sizes[None, :] - 1, uniform, scaled])
    flops = cost.flops(pool)
    edges = np.linspace(flops[0], flops[1], bins + 1)
    bin_of = np.clip(np.searchsorted(edges, flops, side="right") - 1, 0, bins - 1)
    queues = [deque(np.flatnonzero(bin_of[2:] == b) + 2) for b in range(bins)]
    chosen, seen = [], set()
    for idx in [0, 1]:
        _take(pool, idx, chosen, seen, n)
    while len(chosen) < n and any(queues):
        for q in queues:
            while q and len(chosen) < n and not _take(pool, q.popleft(), chosen, seen, n):
                pass
    return np.stack(chosen) if chosen else np.zeros((0, len(sizes)), np.int64)


def _take(pool: np.ndarray, idx: int, chosen: list, seen: set, n: int) -> bool:
    key = pool[idx].tobytes()
    if key in seen or len(chosen) >= n:
        return False
    seen.add(key)
    chosen.append(pool[idx])
    return True


def _unique_uniform(space: SearchSpace, n: int, rng: np.random.Generator) -> np.ndarray:
    genes = space.sample_genes(rng, n * 3 + 10)
    _, first = np.unique(genes, axis=0, return_index=True)
    return genes[np.sort(first)][:n]


def build_arch_dataset(
    space: SearchSpace,
    evaluate_fn: Callable[[Arch], float],
    n: int,
    seed: int = 0,
    cache_path: str | Path | None = None,
    spread: str = "flops",
    num_classes: int = 1000,
    bins: int = 10,
    progress: bool = True,
) -> ArchDataset:
    """Evaluate ``n`` archs spread over the FLOPs range and return their records.

    Archs already in ``cache_path`` (a dataset JSONL) are not evaluated again; each new record is
    appended to it as soon as it is measured. ``evaluate_fn(arch)`` returns top-1 in percent.
    """
    if n < 1:
        raise ConfigError(f"number of archs must be >= 1, got {n}")
    if spread not in SPREADS:
        raise ConfigError(f"unknown spread {spread!r}; allowed: {list(SPREADS)}")
    rng = np.random.default_rng(seed)
    cost = CostModel(space, num_classes)
    genes = spread_genes(space, n, rng, cost, bins) if spread == "flops" else _unique_uniform(space, n, rng)
    archs = [space.decode(g) for g in genes]
    cache = ArchDataset(space, num_classes=num_classes)
    appender = None
    if cache_path is not None:
        cp = Path(cache_path)
        if cp.exists():
            cache = ArchDataset.load(cp, space, num_classes)
        appender = _JsonlAppender(cp, _dataset_header(space, num_classes))
    todo = [a for a in archs if a not in cache]
    flops, params = cost.flops_and_params(genes)
    index = {a.key(): i for i, a in enumerate(archs)}
    for arch in _progress(todo, "evaluating archs", progress):
        i = index[arch.key()]
        rec = ArchRecord(arch, float(evaluate_fn(arch)), float(flops[i]), float(params[i]) / 1e6)
        cache.add(rec)
        if appender is not None:
            appender.append(rec.to_dict())
    return cache.subset(archs)


def _progress(items: Sequence, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, disable=not enabled or not items, leave=False)


# =========================================================================== features
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


# =========================================================================== models
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
        if not np.all(np.isfinite(self.value)):
            raise ValueError("tree leaf values must be finite")

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


class LGBMModel:
    """A LightGBM booster, saved in LightGBM's own text format."""

    def __init__(self, model_str: str) -> None:
        import lightgbm as lgb

        if not isinstance(model_str, str) or not model_str.startswith("tree"):
            raise ValueError("not a LightGBM text model")
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
    from sklearn.ensemble import RandomForestRegressor

    rf = RandomForestRegressor(random_state=seed, n_jobs=1, **hp)
    rf.fit(x, y)
    return TreeEnsemble.from_sklearn(rf)


def _fit_lgbm(x: np.ndarray, y: np.ndarray, seed: int, hp: dict[str, Any], **_: Any) -> LGBMModel:
    import lightgbm as lgb

    params = {k: v for k, v in hp.items() if k != "num_boost_round"}
    params.update(objective="regression", seed=seed, num_threads=1, deterministic=True, force_row_wise=True,
                  verbosity=-1, min_data_in_bin=1)
    data = lgb.Dataset(x, y, params={"verbosity": -1, "min_data_in_bin": 1})
    booster = lgb.train(params, data, num_boost_round=int(hp["num_boost_round"]))
    return LGBMModel(booster.model_to_string())


def _fit_ridge(x: np.ndarray, y: np.ndarray, seed: int, hp: dict[str, Any],
               categories: list[list[float]] | None = None, **_: Any) -> LinearModel:
    from sklearn.linear_model import RidgeCV

    mean, scale = _standardise(x)
    cats = [np.asarray(c if len(c) > 1 else [], dtype=np.float64) for c in (categories or [])]
    design = LinearModel.design(x, mean, scale, cats)
    model = RidgeCV(alphas=hp["alphas"]).fit(design, y)
    return LinearModel(mean, scale, [c.tolist() for c in cats], model.coef_, float(model.intercept_))


def _fit_gp(x: np.ndarray, y: np.ndarray, seed: int, hp: dict[str, Any], **_: Any) -> GPModel:
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

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


_FITTERS: dict[str, Callable[..., Any]] = {"rf": _fit_rf, "lgbm": _fit_lgbm, "ridge": _fit_ridge, "gp": _fit_gp}


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


# =========================================================================== predictor
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
        return self.model.predict(x)

    def predict_genes(self, genes: np.ndarray) -> np.ndarray:
        return self.predict(self.featurize(genes))

    def predict_archs(self, archs: Iterable[Arch]) -> np.ndarray:
        genes = [self.space.encode(a) for a in archs]
        if not genes:
            return np.zeros(0)
        return self.predict_genes(np.stack(genes))

    __call__ = predict_genes

    def to_dict(self) -> dict[str, Any]:
        return _clean({
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
    return Predictor(kind, dataset.space, model, feature_set, dataset.num_classes, hyperparams=hp,
                     n_train=len(dataset), seed=seed)


def _fit_model(kind: str, space: SearchSpace, x: np.ndarray, y: np.ndarray, seed: int, hp: dict[str, Any]) -> Any:
    cats = [list(map(float, c)) for c in space.gene_choices]
    return _FITTERS[kind](x, y, seed, hp, categories=cats)


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
    from sklearn.model_selection import KFold

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
    reports = {k: cross_validate(dataset, k, folds, seed, feature_set) for k in _progress(kinds, "predictors", progress)}
    best = max(kinds, key=lambda k: _score(reports[k]))
    pred = fit_predictor(dataset, best, seed, feature_set)
    report = {"best": best, "folds": folds, "n": len(dataset), "feature_set": feature_set, "kinds": reports}
    pred.metrics = reports[best]
    pred.report = _clean(report)
    return pred, report


def _score(report: dict[str, Any]) -> float:
    tau = report["kendall_tau"]
    return tau if math.isfinite(tau) else -math.inf


def evaluate_predictor(predictor: Predictor, dataset: ArchDataset) -> dict[str, Any]:
    """Rank metrics of ``predictor`` on every record of ``dataset`` (same space required)."""
    check_space(predictor, dataset.space)
    _check_size(dataset, 1)
    pred = predictor.predict_genes(dataset.genes())
    return {"n": len(dataset), **rank_metrics(dataset.accuracies(), pred)}


# =========================================================================== load / check
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
    pred = Predictor(kind, space, model, feature_set, int(data.get("num_classes", 1000)),
                     metrics=data.get("metrics") or {}, hyperparams=data.get("hyperparams") or {},
                     n_train=int(data.get("n_train", 0)), seed=int(data.get("seed", 0)),
                     report=data.get("report") or {})
    pred.predict(np.zeros((1, len(pred.feature_names))))  # fail on load, not in the search
    return pred


def check_space(predictor: Predictor, space: SearchSpace) -> None:
    """Raise :class:`CheckpointError` when ``predictor`` was fitted on another space than ``space``."""
    if not _same_space(predictor.space, space):
        where = f" ({predictor.path})" if predictor.path else ""
        same = " (same name, different supernet config)" if predictor.space.name == space.name else ""
        raise CheckpointError(
            f"predictor{where} was fitted on space '{predictor.space.name}', not '{space.name}'{same}"
        )
