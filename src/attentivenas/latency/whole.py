"""Whole-model latency predictors: a subnet's latency learned from whole-subnet measurements alone.

A per-op table (:mod:`.table`) assumes a subnet's time is the sum of its ops; where a runtime fuses
layers (GPU, NPU, graph compilers) that breaks. A :class:`WholeModel` predicts a subnet's latency
as a non-negative combination of analytic features of its arch, computed vectorised from a gene
matrix (:class:`WholeFeatures`): per stage its dense and depthwise multiply-adds, the activation
elements it writes and its block count, plus the same summed over the net and a constant. It is
fitted on ``(arch, ms)`` pairs by :mod:`.whole_fit` (``attentivenas latency fit-model``) and
written as JSON (``format: attentivenas-latency-model``, ``kind: whole``); :func:`load_latency_predictor`
reads either a table or a model, so the search, training's latency constraint and ``latency
measure --table`` take both.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..config import BudgetsConfig
from ..errors import ConfigError, UserError
from ..io import atomic_write_json, read_json_file
from ..runtimes.quantize import PRECISIONS
from ..runtimes.runners import RUNTIMES
from ..space import SearchSpace, plan_columns
from .table import TABLE_FORMAT, LatencyTable, space_config

MODEL_FORMAT = "attentivenas-latency-model"
MODEL_VERSION = 1
MODEL_KINDS = ("whole",)
#: the most features and text a model file may hold (hostile files are refused before any work)
MAX_FEATURES = 512
MAX_TEXT = 500
#: per stage: dense (1x1, SE, shortcut) and depthwise multiply-adds (millions), activation
#: elements written (millions) and blocks
STAGE_FEATURES = ("dense_mmacs", "dw_mmacs", "act_melems", "blocks")
#: over the whole net (first conv and head included), plus a constant
GLOBAL_FEATURES = ("one", "dense_mmacs", "dw_mmacs", "act_melems", "blocks")
#: the first conv and the head alone
END_FEATURES = ("first_mmacs", "head_mmacs")


def feature_names(space: SearchSpace) -> list[str]:
    """Every feature :class:`WholeFeatures` computes for ``space``, in column order."""
    stage = [f"{st.name}.{f}" for st in space.stages for f in STAGE_FEATURES]
    return [f"net.{f}" for f in GLOBAL_FEATURES] + stage + list(END_FEATURES)


class WholeFeatures:
    """The analytic features of every row of a gene matrix (float64 ``[n, len(names)]``)."""

    def __init__(self, space: SearchSpace, num_classes: int) -> None:
        self.space, self.num_classes = space, int(num_classes)
        self.names = feature_names(space)
        self.index = {n: i for i, n in enumerate(self.names)}

    def __call__(self, genes: np.ndarray) -> np.ndarray:
        g = np.atleast_2d(np.asarray(genes, dtype=np.int64))
        plan = plan_columns(self.space, g)
        n_st = self.space.num_stages
        dense = np.zeros((n_st, len(g)))
        dw, elems, blocks = np.zeros_like(dense), np.zeros_like(dense), np.zeros_like(dense)
        for b in plan.slots:
            on = b.on.astype(np.float64)
            size2, out2 = (b.size_in**2).astype(np.float64), (b.size_out**2).astype(np.float64)
            mid = b.c_mid.astype(np.float64)
            d = mid * b.c_out * out2 + 2.0 * mid * b.se_mid + (b.c_in != b.c_out) * b.c_in * b.c_out * out2
            e = mid * out2 + b.c_out * out2
            if b.has_expand:
                d, e = d + b.c_in * mid * size2, e + mid * size2
            dense[b.stage] += on * d
            dw[b.stage] += on * mid * b.kernel**2 * out2
            elems[b.stage] += on * e
            blocks[b.stage] += on
        first_macs = 27.0 * plan.first_out * plan.first_size**2
        c_exp = plan.head_expand.astype(np.float64)
        head_macs = plan.head_in * c_exp * plan.head_size**2 + c_exp * plan.last + plan.last * float(self.num_classes)
        end_elems = plan.first_out * plan.first_size**2 + c_exp * plan.head_size**2 + 3.0 * plan.resolution**2
        cols = [np.ones(len(g)), (dense.sum(0) + first_macs + head_macs) / 1e6, dw.sum(0) / 1e6,
                (elems.sum(0) + end_elems) / 1e6, blocks.sum(0)]
        for s in range(n_st):
            cols += [dense[s] / 1e6, dw[s] / 1e6, elems[s] / 1e6, blocks[s]]
        cols += [first_macs / 1e6, head_macs / 1e6]
        return np.stack(cols, axis=1).astype(np.float64)


@dataclass
class WholeModel:
    """A whole-model latency predictor of one space in one setting: ``max(features @ coef, floor_ms)``."""

    space: dict[str, Any]
    coefficients: dict[str, float]
    floor_ms: float
    num_classes: int = 1000
    batch: int = 1
    threads: int = 1
    device: str = "cpu"
    device_name: str = ""
    runtime: str = "torch"
    runtime_version: str = ""
    precision: str = "fp32"
    model: str = "whole"
    meta: dict[str, Any] = field(default_factory=dict)
    _features: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    kind = "whole"

    # ----------------------------------------------------------------- checks (as a table's)
    def check_space(self, space: SearchSpace) -> None:
        """Raise :class:`UserError` when ``space`` is not the model's space."""
        if space_config(space) != self.space.get("supernet_config"):
            raise UserError(f"latency model was fitted for space '{self.space.get('name', '?')}', not for space "
                            f"'{space.name}' (another supernet_config); fit one on a table of this space with "
                            "`attentivenas latency fit-model`")

    def check_setting(self, runtime: str | None = None, batch: int | None = None, device: str | None = None,
                      threads: int | None = None, num_classes: int | None = None,
                      precision: str | None = None) -> None:
        """Raise :class:`UserError` when the model's measurements were of another setting than asked."""
        asked = {"runtime": runtime, "batch": batch, "device": device, "threads": threads, "num_classes": num_classes,
                 "precision": precision}
        have = self.setting() | {"num_classes": self.num_classes}
        bad = [f"{k} {have[k]!r} (asked: {v!r})" for k, v in asked.items() if v is not None and v != have[k]]
        if bad:
            raise UserError(f"latency model was fitted on measurements with {', '.join(bad)}; fit one on a table of "
                            "this setting (`attentivenas latency build-table`, then `latency fit-model`)")

    def check_covers(self, space: SearchSpace, num_classes: int, checkpoint: str | Path | None = None,
                     path: str | Path | None = None) -> None:
        """Raise :class:`UserError` unless the model predicts every subnet of ``space`` with
        ``num_classes`` outputs (a whole model covers its whole space)."""
        self.check_space(space)
        if self.num_classes != num_classes:
            source = "latency model" if path is None else f"latency model {path}"
            raise UserError(f"{source} was fitted for {self.num_classes} classes, the supernet has {num_classes}; "
                            f"fit one on a table built with --num-classes {num_classes}")

    def covers(self, space: SearchSpace, arch: Any) -> bool:
        """Always true: the features exist for every arch of the space."""
        return True

    def setting(self) -> dict[str, Any]:
        """Runtime, precision, device, threads, batch and model kind."""
        return {"runtime": self.runtime, "runtime_version": self.runtime_version, "precision": self.precision,
                "device": self.device, "device_name": self.device_name, "threads": self.threads, "batch": self.batch,
                "model": self.model}

    # ----------------------------------------------------------------- prediction
    def features(self, space: SearchSpace) -> WholeFeatures:
        """The model's feature function for ``space`` (kept)."""
        if "fn" not in self._features:
            self._features["fn"] = WholeFeatures(space, self.num_classes)
            fn = self._features["fn"]
            self._features["coef"] = np.array([self.coefficients.get(n, 0.0) for n in fn.names])
        return self._features["fn"]

    def predict_genes(self, space: SearchSpace, genes: np.ndarray) -> np.ndarray:
        """Predicted latency (ms) of every row of a gene matrix."""
        self.check_space(space)
        x = self.features(space)(genes)
        return np.maximum(x @ self._features["coef"], self.floor_ms)

    def predict(self, space: SearchSpace, arch: Any) -> float:
        """Predicted latency (ms) of ``arch``."""
        return float(self.predict_genes(space, space.encode(arch)[None, :])[0])

    def gene_fn(self, space: SearchSpace) -> Callable[[np.ndarray], np.ndarray]:
        """``genes -> predicted ms`` for the search (space checked once, here)."""
        self.check_space(space)
        fn, coef = self.features(space), self._features["coef"]
        return lambda genes: np.maximum(fn(genes) @ coef, self.floor_ms)

    # the space's latency range and ``pNN`` budgets: the table's, on this model's predict_genes
    space_range = LatencyTable.space_range
    _space_sample = LatencyTable._space_sample
    budget_ms = LatencyTable.budget_ms

    # ----------------------------------------------------------------- (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        return {"format": MODEL_FORMAT, "version": MODEL_VERSION, "kind": self.kind, "space": self.space,
                "num_classes": self.num_classes, "device": self.device, "device_name": self.device_name,
                "runtime": self.runtime, "runtime_version": self.runtime_version, "precision": self.precision,
                "batch": self.batch, "threads": self.threads, "features": list(self.coefficients),
                "coefficients": self.coefficients, "floor_ms": self.floor_ms, "meta": self.meta}

    def save(self, path: str | Path) -> Path:
        """Write the model as JSON (atomically)."""
        return atomic_write_json(path, self.to_dict())

    @classmethod
    def from_dict(cls, data: Any, source: str = "latency model") -> WholeModel:
        """A model from its JSON, every field checked (one-line :class:`UserError` otherwise)."""
        if not isinstance(data, dict) or data.get("format") != MODEL_FORMAT:
            raise UserError(f"{source} is not an attentivenas latency model (no 'format': '{MODEL_FORMAT}')")
        try:
            model = cls(**_checked_fields(data))
            space = SearchSpace.from_dict(model.space)
            unknown = sorted(set(model.coefficients) - set(feature_names(space)))
            if unknown:
                raise ValueError(f"unknown features {unknown[:3]} for its space")
            with np.errstate(over="ignore", invalid="ignore"):  # huge coefficients: refused just below
                ends = model.predict_genes(space, np.stack([space.encode(space.min_arch()),
                                                            space.encode(space.max_arch())]))
            if not np.all(np.isfinite(ends)):
                raise ValueError("its prediction of the space's min or max subnet is not finite")
        except UserError as exc:  # its space's supernet_config is refused (SpaceError)
            raise UserError(f"{source} is malformed (its space: {exc})") from None
        except (KeyError, ValueError, TypeError, AttributeError, OverflowError) as exc:
            raise UserError(f"{source} is malformed ({exc.__class__.__name__}: {exc})") from None
        return model

    @classmethod
    def load(cls, path: str | Path) -> WholeModel:
        """Read a model written by :meth:`save`."""
        return cls.from_dict(read_json_file(path, "latency model", UserError), source=f"latency model {path}")


def _text(data: dict[str, Any], key: str, default: str = "") -> str:
    v = data.get(key, default)
    if not isinstance(v, str) or len(v) > MAX_TEXT:
        raise ValueError(f"{key} must be a string of at most {MAX_TEXT} characters")
    return v


def _count(data: dict[str, Any], key: str, most: int) -> int:
    v = data[key]
    if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= most:
        raise ValueError(f"{key} = {v!r} is not an integer in 1..{most}")
    return v


def _checked_fields(data: dict[str, Any]) -> dict[str, Any]:
    """The constructor's fields of a model file, validated (``ValueError`` naming the bad one)."""
    if data.get("version") != MODEL_VERSION or data.get("kind") not in MODEL_KINDS:
        raise ValueError(f"version {data.get('version')!r} / kind {data.get('kind')!r}: this package reads version "
                         f"{MODEL_VERSION}, kinds {list(MODEL_KINDS)}")
    feats, coef = data["features"], data["coefficients"]
    if not isinstance(feats, list) or not isinstance(coef, dict) or not 0 < len(coef) <= MAX_FEATURES:
        raise ValueError(f"features must be a list and coefficients an object of 1..{MAX_FEATURES} entries")
    if list(coef) != feats:
        raise ValueError("features must name the coefficients, in their order")
    coefficients = {}
    for k, v in coef.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and v >= 0):
            raise ValueError(f"coefficient {str(k)[:40]!r} = {v!r} is not a finite number >= 0")
        coefficients[str(k)] = float(v)
    floor = data["floor_ms"]
    if isinstance(floor, bool) or not isinstance(floor, (int, float)) or not (math.isfinite(floor) and 0 < floor < 1e6):
        raise ValueError(f"floor_ms = {floor!r} is not a latency in (0, 1e6) ms")
    space = data["space"]
    if not isinstance(space, dict) or not isinstance(space.get("supernet_config"), dict):
        raise ValueError("space needs a supernet_config")
    if data.get("runtime") not in RUNTIMES or data.get("precision") not in PRECISIONS:
        raise ValueError(f"runtime {data.get('runtime')!r} / precision {data.get('precision')!r} not one of "
                         f"{list(RUNTIMES)} / {list(PRECISIONS)}")
    meta = data.get("meta", {})
    if not isinstance(meta, dict):
        raise ValueError("meta must be an object")
    return {"space": space, "coefficients": coefficients, "floor_ms": float(floor),
            "num_classes": _count(data, "num_classes", 1_000_000), "batch": _count(data, "batch", 1_000_000),
            "threads": _count(data, "threads", 100_000), "device": _text(data, "device", "cpu"),
            "device_name": _text(data, "device_name"), "runtime": data["runtime"],
            "runtime_version": _text(data, "runtime_version"), "precision": data["precision"],
            "meta": copy.deepcopy(meta)}


#: either kind of latency predictor: a per-op table or a whole model
LatencyPredictor = LatencyTable | WholeModel


def load_latency_predictor(path: str | Path) -> LatencyPredictor:
    """A latency table or a whole-model predictor, as the file's ``format`` says (one-line
    :class:`UserError` for a file that is neither)."""
    data = read_json_file(path, "latency table", UserError)
    fmt = data.get("format") if isinstance(data, dict) else None
    if fmt == MODEL_FORMAT:
        return WholeModel.from_dict(data, source=f"latency model {path}")
    if fmt == TABLE_FORMAT:
        return LatencyTable.from_dict(data, source=f"latency table {path}")
    raise UserError(f"latency table {path} is not an attentivenas latency table (no 'format': '{TABLE_FORMAT}') "
                    f"nor a whole-model latency predictor ('format': '{MODEL_FORMAT}')")


def resolve_latency_budget(budgets: BudgetsConfig, table_path: str | Path | None, space: SearchSpace,
                           log: Callable[[str], None] | None = None) -> BudgetsConfig:
    """``budgets`` with ``max_latency`` (``pNN``: a percentile of the space's latency as the table or
    model at ``table_path`` predicts it; or ms) resolved into ``max_latency_ms``; ``log`` gets one
    line saying what it resolved to. A user error when both are given or there is no table."""
    spec = budgets.max_latency
    if spec is None:
        return budgets
    if budgets.max_latency_ms is not None:
        raise ConfigError(f"give one latency budget: budgets.max_latency={spec} or budgets.max_latency_ms="
                          f"{budgets.max_latency_ms:g}, not both")
    if table_path is None:
        raise ConfigError(f"the latency budget {spec} needs --latency-table FILE (latency_table in a config)")
    table = load_latency_predictor(table_path)
    ms = table.budget_ms(space, spec)
    if log is not None:
        log(f"latency budget {spec}: {ms:.4g} ms ({'a percentile of the latency of ' if spec.startswith('p') else ''}"
            f"space '{space.name}' as latency table {table_path} predicts it)")
    return budgets.model_copy(update={"max_latency_ms": ms, "max_latency": None})


__all__ = ["MODEL_FORMAT", "MODEL_VERSION", "WholeFeatures", "WholeModel", "feature_names",
           "load_latency_predictor", "LatencyPredictor", "resolve_latency_budget"]
