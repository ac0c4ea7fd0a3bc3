"""Degenerate but legal inputs (issue 29, item 4): tied accuracies, accuracies outside [0, 100],
predictors that overflow, random-forest trees that are not trees, too few subnets for the folds."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from attentivenas.accuracy import (
    ArchDataset,
    ArchRecord,
    Predictor,
    fit_predictor,
    format_metric,
    load_predictor,
)
from attentivenas.accuracy.models import LinearModel
from attentivenas.config import PipelineConfig, SearchConfig, load_search_config, parse_model
from attentivenas.costs import CostModel
from attentivenas.errors import CheckpointError, ConfigError
from attentivenas.nn import Supernet, save_supernet
from attentivenas.search.stage2 import run_stage2
from attentivenas.space import TINY_SPACE
from tests.synthetic import tamper_predictor

from .cli_helpers import run_cli

SPACE = TINY_SPACE


def _dataset(n: int = 40, seed: int = 0) -> ArchDataset:
    cost = CostModel(SPACE, 10)
    genes = SPACE.sample_genes(np.random.default_rng(seed), n)
    return ArchDataset(SPACE, [ArchRecord(SPACE.decode(g), 50 + 5 * float(cost.flops(g[None])[0]), 0.0, 0.0)
                               for g in genes], 10)


@pytest.fixture(scope="module")
def predictor_files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("pred")
    ds = _dataset()
    return {k: fit_predictor(ds, k).save(folder / f"{k}.json") for k in ("rf", "ridge")}


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return save_supernet(tmp_path_factory.mktemp("c") / "tiny.pt", Supernet(SPACE, 10))


# --------------------------------------------------------------------------- a) every subnet ties
def test_format_metric_says_undefined_for_missing_or_nan() -> None:
    assert format_metric(None) == "undefined" and format_metric(float("nan")) == "undefined"
    assert format_metric(float("inf")) == "undefined" and format_metric(0.12345) == "0.123"


def test_search_whose_measured_subnets_all_tie_finishes(tmp_path: Path) -> None:
    """An untrained supernet measured on one image: every subnet has the same top-1, so the fitted
    predictor's Kendall tau is undefined (null in its file). The search still ends with its front."""
    cfg = parse_model(SearchConfig, {
        "checkpoint": "unused.pt", "accuracy": {"source": "predicted+remeasure", "remeasure_top": 2},
        "evolution": {"pop_size": 8, "generations": 2},
        "auto_predictor": {"num_archs": 10, "folds": 5, "kinds": ["ridge"]}}, "test")
    lines: list[str] = []
    result = run_stage2(cfg, tmp_path, SPACE, evaluator=lambda arch: 0.0, num_classes=10, log=lines.append)
    assert any("Kendall tau undefined" in line for line in lines), lines
    assert result.extra["auto_predictor"]["kendall_tau"] is None
    pareto = json.loads((tmp_path / "pareto.json").read_text())
    assert pareto and all(e["accuracy"] == 0.0 for e in pareto)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["pareto_size"] == len(pareto)


# --------------------------------------------------------------------------- b) accuracy outside [0, 100]
@pytest.mark.parametrize("bad", [150.0, -0.5, 1e308])
def test_dataset_accuracy_outside_0_100_is_refused_with_file_and_line(tmp_path: Path, bad: float) -> None:
    ds = _dataset(12)
    path = ds.save(tmp_path / "archs.jsonl")
    lines = path.read_text().splitlines()
    row = json.loads(lines[3])
    row["accuracy"] = bad
    lines[3] = json.dumps(row)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match=rf"dataset {path} line 4: 'accuracy' .* is outside \[0, 100\]"):
        ArchDataset.load(path)
    r = run_cli("predictor", "fit", "--dataset", str(path), "--out", str(tmp_path / "p.json"), "--kinds", "ridge")
    assert r.code == 2 and f"dataset {path} line 4" in r.err and r.err.count("\n") == 1
    assert "Traceback" not in r.err and not (tmp_path / "p.json").exists()


def test_dataset_with_bad_costs_recomputes_them(tmp_path: Path) -> None:
    ds = _dataset(3)
    path = ds.save(tmp_path / "archs.jsonl")
    lines = path.read_text().splitlines()
    row = json.loads(lines[1])
    row["mflops"], row["params_m"] = -1.0, 0.0
    lines[1] = json.dumps(row)
    path.write_text("\n".join(lines) + "\n")
    rec = ArchDataset.load(path).records[0]
    assert rec.mflops > 0 and rec.params_m > 0


# --------------------------------------------------------------------------- c) predictions that overflow
def _overflow(m):
    m["coef"] = [1e308] * len(m["coef"])


def test_ridge_predictor_that_overflows_is_refused_on_load(predictor_files, tmp_path: Path) -> None:
    bad = tamper_predictor(predictor_files["ridge"], tmp_path, _overflow)
    with pytest.raises(CheckpointError, match=rf"predictor file {bad} is corrupt: .*inf.*overflow"):
        load_predictor(bad)
    out = tmp_path / "search"
    r = run_cli("search", "--predictor", str(bad), "--pop-size", "8", "--generations", "2", "--out", str(out))
    assert r.code == 2 and str(bad) in r.err and r.err.count("\n") == 1 and "Traceback" not in r.err
    assert not (out / "pareto.json").exists()


def test_predictor_whose_predictions_are_not_percentages_is_refused(predictor_files, tmp_path: Path) -> None:
    bad = tamper_predictor(predictor_files["ridge"], tmp_path, lambda m: m.update(coef=[1e300] * len(m["coef"])))
    with pytest.raises(CheckpointError, match=r"predicts [0-9.e+]+% top-1 for .*: not an accuracy in percent"):
        load_predictor(bad)


def test_forest_leaf_values_that_overflow_are_refused(predictor_files, tmp_path: Path) -> None:
    bad = tamper_predictor(predictor_files["rf"], tmp_path, lambda m: m.update(value=[1e308] * len(m["value"])))
    with pytest.raises(CheckpointError, match="overflow"):
        load_predictor(bad)


def test_prediction_that_is_not_finite_is_an_error_not_an_empty_front() -> None:
    n = len(SPACE.feature_names())
    model = LinearModel(np.zeros(n), np.ones(n), [], np.full(n, 1e308), 0.0)
    pred = Predictor("ridge", SPACE, model, "knobs", 10)  # never loaded: no probe
    with pytest.raises(CheckpointError, match="predicts a non-finite accuracy"):
        pred.predict_genes(SPACE.sample_genes(np.random.default_rng(0), 4))


# --------------------------------------------------------------------------- d) random-forest trees
def _two_parents(m):  # the root's right child becomes its left child: a node with two parents
    m["right"][0] = m["left"][0]


def _orphan(m):  # one more leaf that no tree reaches
    n = len(m["left"])
    m["left"].append(n)
    m["right"].append(n)
    m["feature"].append(0)
    m["threshold"].append(0.0)
    m["value"].append(50.0)


def _shared_root(m):  # two trees with the same root (the second tree's nodes reached by none)
    m["roots"][1] = m["roots"][0]


@pytest.mark.parametrize(("change", "message"), [
    (_two_parents, "has two parents: child indices do not form a tree"),
    (_orphan, "belong to no tree: child indices do not form a tree"),
    (_shared_root, "has two parents: child indices do not form a tree"),
])
def test_forest_whose_children_are_not_trees_is_refused(predictor_files, tmp_path: Path, change, message) -> None:
    bad = tamper_predictor(predictor_files["rf"], tmp_path, change)
    with pytest.raises(CheckpointError, match=rf"predictor file {bad} is corrupt: ValueError: .*{message}"):
        load_predictor(bad)


def test_fitted_forest_still_loads(predictor_files) -> None:
    pred = load_predictor(predictor_files["rf"])
    assert np.all(np.isfinite(pred.predict_genes(SPACE.sample_genes(np.random.default_rng(1), 5))))


# --------------------------------------------------------------------------- e) too few subnets for the folds
def test_auto_predictor_needs_two_subnets_per_fold() -> None:
    with pytest.raises(ConfigError, match=r"auto_predictor.num_archs=8 is too few for auto_predictor.folds=5"):
        load_search_config(None, ["auto_predictor.num_archs=8"])
    assert load_search_config(None, ["auto_predictor.num_archs=10"]).auto_predictor.num_archs == 10
    with pytest.raises(ConfigError, match=r"predictor.num_archs=9 is too few for predictor.folds=5"):
        parse_model(PipelineConfig, {"predictor": {"num_archs": 9}}, "test")


def test_search_with_too_few_archs_for_the_folds_stops_before_measuring(tiny_ckpt: Path, tmp_path: Path) -> None:
    r = run_cli("search", "--checkpoint", str(tiny_ckpt), "--data", "digits", "--device", "cpu", "--num-archs", "8",
                "--out", str(tmp_path / "s"))
    assert r.code == 2 and r.err.count("\n") == 1, r.err
    assert "num_archs=8 is too few" in r.err and not (tmp_path / "s" / "measured.jsonl").exists()


def test_budget_met_by_too_few_subnets_measures_them_instead_of_fitting(tmp_path: Path) -> None:
    # 8 distinct subnets of the tiny space (the smallest is 0.590 MFLOPs) are drawn under 0.62 MFLOPs: more than
    # the 5 folds, fewer than the 10 subnets they need. Issue 42: a budget some subnet meets ends with a front
    # (it was one line before measuring): the search measures the subnets it evaluates, each once
    cfg = parse_model(SearchConfig, {
        "checkpoint": "unused.pt", "budgets": {"max_mflops": 0.62}, "evolution": {"pop_size": 6, "generations": 2},
        "auto_predictor": {"num_archs": 10, "folds": 5, "kinds": ["ridge"]}}, "test")
    calls: list[object] = []
    said: list[str] = []
    result = run_stage2(cfg, tmp_path, SPACE, evaluator=lambda arch: calls.append(arch) or 50.0, num_classes=10,
                        log=said.append)
    assert any("too few to fit a predictor with 5 folds" in line for line in said)
    assert result.pareto and all(e["accuracy_source"] == "measured" and e["mflops"] <= 0.62 for e in result.pareto)
    assert calls and len({a.key() for a in calls}) == len(calls)  # each subnet measured once
    assert not (tmp_path / "predictor.json").exists()


def test_tied_metrics_are_nan_not_errors() -> None:
    from attentivenas.accuracy import rank_metrics

    m = rank_metrics([1.0, 1.0, 1.0], [2.0, 3.0, 4.0])
    assert math.isnan(m["kendall_tau"]) and math.isnan(m["spearman_rho"]) and m["rmse"] > 0
