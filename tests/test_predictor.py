"""Accuracy predictors: metrics, datasets (spread, cache, resume), fitting, save/load, errors, CLI."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import pytest

from attentivenas import accuracy as P
from attentivenas.costs import CostModel
from attentivenas.errors import CheckpointError, ConfigError
from attentivenas.space import ATTENTIVENAS_SPACE, TINY_SPACE

from .cli_helpers import run_cli_code

SPACE = TINY_SPACE
COST = CostModel(SPACE)


def true_accuracy(genes: np.ndarray) -> np.ndarray:
    """A smooth known function of the arch: log FLOPs plus a small resolution term."""
    genes = np.atleast_2d(genes)
    return 60.0 + 5.0 * np.log(COST.flops(genes)) + 0.3 * genes[:, 0]


def make_eval(noise: float = 0.1, seed: int = 1):
    rng = np.random.default_rng(seed)

    def evaluate(arch) -> float:
        return float(true_accuracy(SPACE.encode(arch)[None])[0] + rng.normal(0, noise))

    return evaluate


@pytest.fixture(scope="module")
def dataset() -> P.ArchDataset:
    return P.build_arch_dataset(SPACE, make_eval(), 120, seed=0, progress=False)


@pytest.fixture(scope="module")
def best(dataset):
    return P.fit_best(dataset, kinds=("rf", "lgbm", "ridge"), folds=3, seed=0)


# --------------------------------------------------------------------------- metrics
def test_metrics_match_hand_computed_values():
    y, p = [1, 2, 3, 4, 5], [2, 1, 4, 3, 5]
    assert P.kendall_tau(y, p) == pytest.approx(0.6)  # 8 concordant, 2 discordant pairs
    assert P.spearman_rho(y, p) == pytest.approx(0.8)  # 1 - 6 * 4 / (5 * 24)
    assert P.rmse(y, p) == pytest.approx(math.sqrt(4 / 5))
    assert P.kendall_tau(y, y[::-1]) == pytest.approx(-1.0)


def test_metrics_agree_with_scipy_and_handle_constants():
    from scipy.stats import kendalltau, spearmanr

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=30), rng.normal(size=30)
    assert P.kendall_tau(a, b) == pytest.approx(kendalltau(a, b).statistic)
    assert P.spearman_rho(a, b) == pytest.approx(spearmanr(a, b).statistic)
    assert math.isnan(P.kendall_tau([1, 2, 3], [5, 5, 5]))
    assert math.isnan(P.spearman_rho([1], [1]))


# --------------------------------------------------------------------------- dataset
def test_dataset_spreads_over_flops_range(dataset):
    flops = dataset.mflops()
    lo, hi = COST.flops(np.stack([np.zeros(SPACE.num_genes, int), SPACE.gene_sizes - 1]))
    assert len(dataset) == 120
    assert flops.min() == pytest.approx(lo) and flops.max() == pytest.approx(hi)
    counts, _ = np.histogram(flops, bins=5, range=(lo, hi))
    assert counts.min() >= 12  # every fifth of the range holds >= 10% of the archs
    uniform = COST.flops(SPACE.sample_genes(np.random.default_rng(0), 120))
    assert np.histogram(uniform, bins=5, range=(lo, hi))[0].min() < counts.min()


def test_dataset_cache_resume_and_truncated_tail(tmp_path):
    path = tmp_path / "data.jsonl"
    calls = []
    good = make_eval(0.0)

    class Interrupted(Exception):
        pass

    def flaky(arch):
        calls.append(arch.key())
        if len(calls) == 7 and fail:
            raise Interrupted
        return good(arch)

    fail = True
    with pytest.raises(Interrupted):
        P.build_arch_dataset(SPACE, flaky, 20, seed=3, cache_path=path, progress=False)
    assert len(path.read_text().splitlines()) == 1 + 6  # header + six finished records
    with open(path, "a") as f:
        f.write('{"key": "half a rec')  # an interrupted write
    calls.clear()
    fail = False
    with pytest.warns(UserWarning, match="truncated last line"):
        ds = P.build_arch_dataset(SPACE, flaky, 20, seed=3, cache_path=path, progress=False)
    assert len(calls) == 14 and len(ds) == 20
    calls.clear()
    again = P.build_arch_dataset(SPACE, flaky, 20, seed=3, cache_path=path, progress=False)
    assert calls == [] and [r.arch for r in again] == [r.arch for r in ds]
    loaded = P.ArchDataset.load(path)
    assert loaded.space == SPACE and len(loaded) == 20
    header = json.loads(path.read_text().splitlines()[0])
    assert header["format"] == P.DATASET_FORMAT and header["space"]["name"] == "tiny"


def test_dataset_load_errors(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"arch": {"resolution": 24}, "accuracy": 1}\n{}\n')
    with pytest.raises(ConfigError, match="line 1"):
        P.ArchDataset.load(bad, SPACE)
    bad.write_text("not json\n")
    with pytest.raises(ConfigError, match="line 1 is not valid JSON"):
        P.ArchDataset.load(bad, SPACE)
    ds = P.ArchDataset(SPACE, [P.ArchRecord(SPACE.min_arch(), 50.0, 1.0, 0.1)])
    ds.save(tmp_path / "tiny.jsonl")
    with pytest.raises(ConfigError, match="built on space 'tiny', not 'attentivenas'"):
        P.ArchDataset.load(tmp_path / "tiny.jsonl", ATTENTIVENAS_SPACE)
    with pytest.raises(ConfigError, match="not found"):
        P.ArchDataset.load(tmp_path / "missing.jsonl")


def test_dataset_without_header_computes_cost(tmp_path):
    arch = SPACE.max_arch()
    path = tmp_path / "plain.jsonl"
    path.write_text(json.dumps({"arch": arch.to_dict(), "accuracy": 71.5}) + "\n")
    ds = P.ArchDataset.load(path, SPACE)
    rec = ds.get(arch)
    assert rec.accuracy == 71.5 and rec.mflops == pytest.approx(COST.arch_flops(arch))


# --------------------------------------------------------------------------- fitting
def test_fit_best_ranks_well_and_reports_every_kind(best, dataset):
    pred, report = best
    assert set(report["kinds"]) == {"rf", "lgbm", "ridge"}
    taus = {k: r["kendall_tau"] for k, r in report["kinds"].items()}
    assert report["best"] == max(taus, key=taus.get) == pred.kind
    assert taus[pred.kind] > 0.7
    for r in report["kinds"].values():
        assert r["folds"] == 3 and r["n"] == 120 and r["rmse"] > 0
        assert -1 <= r["pooled"]["kendall_tau"] <= 1
    held_out = P.build_arch_dataset(SPACE, make_eval(0.0, seed=9), 40, seed=11, progress=False)
    assert P.evaluate_predictor(pred, held_out)["kendall_tau"] > 0.7


@pytest.mark.parametrize("kind", P.KINDS)
def test_save_load_gives_identical_predictions(kind, dataset, tmp_path):
    small = dataset.subset([r.arch for r in dataset.records[:60]]) if kind == "gp" else dataset
    pred = P.fit_predictor(small, kind, seed=0)
    path = pred.save(tmp_path / f"{kind}.json")
    loaded = P.load_predictor(path)
    genes = SPACE.sample_genes(np.random.default_rng(5), 50)
    assert np.array_equal(pred.predict_genes(genes), loaded.predict_genes(genes))
    assert loaded.kind == kind and loaded.space_name == "tiny" and loaded.n_train == len(small)
    assert loaded.feature_names == SPACE.feature_names()
    assert P.kendall_tau(true_accuracy(genes), loaded.predict_genes(genes)) > 0.6
    archs = [SPACE.decode(g) for g in genes[:3]]
    assert np.array_equal(loaded.predict_archs(archs), loaded.predict_genes(genes[:3]))
    assert "pickle" not in path.read_text()[:200] and json.loads(path.read_text())["format"] == P.FORMAT


def test_numpy_forest_equals_sklearn_exactly():
    from sklearn.ensemble import RandomForestRegressor

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 6)) * [1, 10, 100, 1e-3, 1, 1]
    y = x[:, 0] + np.sin(x[:, 1]) + rng.normal(0, 0.1, 200)
    rf = RandomForestRegressor(n_estimators=20, random_state=0, n_jobs=1).fit(x, y)
    trees = P.TreeEnsemble.from_sklearn(rf)
    xt = rng.normal(size=(300, 6)) * [1, 10, 100, 1e-3, 1, 1]
    assert np.array_equal(trees.predict(xt), rf.predict(xt))
    assert np.array_equal(P.TreeEnsemble.from_dict(json.loads(json.dumps(trees.to_dict()))).predict(xt), rf.predict(xt))


def test_fit_is_seeded(dataset):
    genes = SPACE.sample_genes(np.random.default_rng(2), 20)
    a = P.fit_predictor(dataset, "rf", seed=4).predict_genes(genes)
    b = P.fit_predictor(dataset, "rf", seed=4).predict_genes(genes)
    c = P.fit_predictor(dataset, "rf", seed=5).predict_genes(genes)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_cost_features(dataset):
    pred = P.fit_predictor(dataset, "ridge", feature_set="knobs+cost")
    assert pred.feature_names[-2:] == ["log_mflops", "log_params"]
    x = pred.featurize(dataset.genes()[:2])
    assert x[:, -2] == pytest.approx(np.log(dataset.mflops()[:2]))


def test_predict_is_fast_on_50_rows(best):
    pred, _ = best
    x = pred.featurize(SPACE.sample_genes(np.random.default_rng(0), 50))
    times = []
    for _ in range(15):
        t0 = time.perf_counter()
        pred.predict(x)
        times.append(time.perf_counter() - t0)
    assert np.median(times) < 5e-3  # ~0.1-0.8 ms measured; generous for a loaded CI machine


# --------------------------------------------------------------------------- errors
def test_wrong_space_is_a_user_error(best):
    pred, _ = best
    P.check_space(pred, TINY_SPACE)
    with pytest.raises(CheckpointError, match="fitted on space 'tiny', not 'attentivenas'"):
        P.check_space(pred, ATTENTIVENAS_SPACE)


def test_missing_and_corrupt_files(best, tmp_path):
    pred, _ = best
    with pytest.raises(CheckpointError, match="not found"):
        P.load_predictor(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(CheckpointError, match="bad.json is not valid JSON"):
        P.load_predictor(bad)
    bad.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(CheckpointError, match="not an attentivenas predictor"):
        P.load_predictor(bad)
    data = pred.to_dict()
    data["model"] = {"left": [0]}
    bad.write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="bad.json is corrupt"):
        P.load_predictor(bad)
    data.update(kind="lgbm", model={"model_str": "tree\nversion=v4\nnum_class=oops\n"})
    bad.write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="bad.json is corrupt"):
        P.load_predictor(bad)


def test_bad_inputs_raise_config_errors(dataset):
    with pytest.raises(ConfigError, match="allowed: \\['rf', 'lgbm', 'ridge', 'gp'\\]"):
        P.check_kinds(["rf", "xgb"])
    with pytest.raises(ConfigError, match="no records"):
        P.fit_predictor(P.ArchDataset(SPACE), "rf")
    tiny = dataset.subset([r.arch for r in dataset.records[:5]])
    with pytest.raises(ConfigError, match="5 records; fitting needs at least 10"):
        P.cross_validate(tiny, "rf", folds=5)
    with pytest.raises(ConfigError, match="unknown feature set"):
        P.fit_predictor(dataset, "rf", feature_set="pixels")


# --------------------------------------------------------------------------- CLI
def test_cli_fit_and_eval(dataset, tmp_path, capsys):
    data = dataset.save(tmp_path / "data.jsonl")
    out = tmp_path / "pred.json"
    assert run_cli_code(["predictor", "fit", "--dataset", str(data), "--out", str(out), "--kinds", "ridge,rf",
                    "--folds", "3", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["best"] in ("ridge", "rf") and set(report["kinds"]) == {"ridge", "rf"}
    assert P.load_predictor(out).kind == report["best"]
    assert run_cli_code(["predictor", "eval", "--predictor", str(out), "--dataset", str(data), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["n"] == 120 and metrics["kendall_tau"] > 0.7


def test_cli_errors_exit_2_with_one_line(tmp_path, capsys):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert run_cli_code(["predictor", "fit", "--dataset", str(empty), "--out", str(tmp_path / "p.json")]) == 2
    err = capsys.readouterr().err
    assert "no records" in err and err.count("\n") == 1
    assert run_cli_code(["predictor", "fit", "--dataset", str(empty), "--out", "p.json", "--kinds", "svm"]) == 2
    assert "unknown predictor kind" in capsys.readouterr().err
    assert run_cli_code(["predictor", "eval", "--predictor", str(tmp_path / "x.json"), "--dataset", str(empty)]) == 2
    assert "predictor file not found" in capsys.readouterr().err
    assert not Path(tmp_path / "p.json").exists()


# --------------------------------------------------------------------------- predictions outside [0, 100]
def _shifted(path: Path, tmp_path: Path, intercept: float) -> Path:
    data = json.loads(path.read_text())
    data["model"]["intercept"] = intercept
    out = tmp_path / f"shifted_{intercept:g}.json"
    out.write_text(json.dumps(data))
    return out


@pytest.mark.parametrize("intercept", [5000.0, -50.0])
def test_a_predictor_predicting_outside_0_100_is_refused_on_load(dataset, tmp_path: Path, intercept: float) -> None:
    """Issue 42: a predictor predicting 5,000% (or a negative) top-1 is refused in one line."""
    good = P.fit_predictor(dataset, "ridge").save(tmp_path / "ridge.json")
    P.load_predictor(good)
    bad = _shifted(good, tmp_path, intercept)
    with pytest.raises(CheckpointError, match=r"top-1 for .*: not an accuracy in percent \(outside \[0, 100\]\)") as e:
        P.load_predictor(bad)
    assert "\n" not in str(e.value)
    code = run_cli_code(["search", "--predictor", str(bad), "--pop-size", "8", "--generations", "1", "--out",
                         str(tmp_path / "s")])
    assert code == 2 and not (tmp_path / "s" / "pareto.json").exists()


def test_a_fit_predicting_outside_0_100_is_refused_or_passed_over(dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fit check: a kind whose refit predicts outside the range is refused (``fit_predictor``) or
    passed over for the next best kind (``fit_best``); all of them: refused."""
    top = float(dataset.accuracies().max())
    monkeypatch.setattr(P.predictor, "PREDICTION_RANGE", (0.0, top - 0.5))  # every kind predicts above it
    with pytest.raises(ConfigError, match="the fitted ridge predictor is refused: .*outside"):
        P.fit_predictor(dataset, "ridge")
    with pytest.raises(ConfigError, match="predictor is refused"):
        P.fit_best(dataset, ["ridge", "rf"], folds=2)
    monkeypatch.setattr(P.predictor, "PREDICTION_RANGE", (0.0, 100.0))
    pred, report = P.fit_best(dataset, ["ridge", "rf"], folds=2)
    assert report["best"] == pred.kind in ("ridge", "rf")


def test_fit_best_passes_over_a_kind_refused_by_the_range_check(dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    kinds = ["ridge", "rf"]
    taus = {k: P.cross_validate(dataset, k, 2, 0, "knobs")["kendall_tau"] for k in kinds}
    worst = min(kinds, key=lambda k: taus[k])
    real = P.predictor._probe

    def probe(pred: P.Predictor) -> None:
        if pred.kind != worst:
            raise ValueError("the model predicts 101% top-1 for the largest subnet")
        real(pred)

    monkeypatch.setattr(P.predictor, "_probe", probe)
    pred, report = P.fit_best(dataset, kinds, folds=2)
    assert pred.kind == worst == report["best"] and report["kinds"][worst] == pred.metrics
