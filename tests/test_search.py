"""NSGA-II search: budgets, Pareto fronts, budget lists, hypervolume, sources, outputs, CLI errors."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import yaml

from attentivenas import accuracy as P
from attentivenas.config import SearchConfig, load_search_config, parse_model
from attentivenas.costs import CostModel
from attentivenas.errors import CheckpointError, ConfigError, UserError
from attentivenas.search import (
    ENTRY_KEYS,
    hypervolume,
    pareto_mask,
    pareto_ranks,
    parse_budget_points,
    run_search,
)
from attentivenas.space import TINY_SPACE

from .cli_helpers import run_cli_code

SPACE = TINY_SPACE
COST = CostModel(SPACE)
FAST = {"pop_size": 20, "generations": 5}
SETTINGS = {"objectives": "objectives", "seed": "seed", "show_published": "published"}


def run(accuracy_fn, *, budgets=None, budget_points=(), accuracy_source=None, remeasure_top=10, pop_size=50,
        generations=30, mutation_prob=0.1, **kw):
    """:func:`run_search` with its settings spelled as keywords, validated as a search config."""
    data = {"budgets": {**(budgets or {}), "points": list(budget_points)},
            "accuracy": {"source": accuracy_source, "remeasure_top": remeasure_top},
            "evolution": {"pop_size": pop_size, "generations": generations, "mutation_prob": mutation_prob}}
    for key, field in SETTINGS.items():
        if key in kw:
            data[field] = kw.pop(key)
    return run_search(SPACE, parse_model(SearchConfig, data, "search config"), accuracy_fn, **kw)


def accuracy(genes: np.ndarray) -> np.ndarray:
    """Cheap analytic accuracy: grows with log FLOPs, and with resolution and kernel 5 beyond it."""
    genes = np.atleast_2d(genes)
    return 55.0 + 6.0 * np.log(COST.flops(genes)) + 0.4 * genes[:, 0] + 0.2 * genes[:, 17:24].sum(1)


def dominated(a: dict, b: dict, keys=("mflops",)) -> bool:
    """True when ``b`` dominates ``a``."""
    no_worse = b["accuracy"] >= a["accuracy"] and all(b[k] <= a[k] for k in keys)
    better = b["accuracy"] > a["accuracy"] or any(b[k] < a[k] for k in keys)
    return no_worse and better


@pytest.fixture(scope="module")
def result():
    return run(accuracy, budgets=dict(max_mflops=2.5, max_params_m=1.0),
                      budget_points=[1.5, 2.0, 2.5], seed=0, **FAST)


# --------------------------------------------------------------------------- pareto math
def test_pareto_mask_and_ranks():
    F = np.array([[1, 5], [2, 2], [3, 3], [5, 1], [2, 2], [4, 4]], dtype=float)
    assert pareto_mask(F).tolist() == [True, True, False, True, True, False]
    assert pareto_ranks(F).tolist() == [0, 0, 1, 0, 0, 2]


def test_hypervolume_values():
    front = np.array([[0.2, 0.5], [0.5, 0.2]])
    assert hypervolume(front, [1, 1]) == pytest.approx(0.55)  # 0.4 + 0.4 - 0.25
    assert hypervolume(front - 0.1, [1, 1]) > hypervolume(front, [1, 1])
    assert hypervolume(np.array([[1.5, 0.1]]), [1, 1]) == 0.0


# --------------------------------------------------------------------------- search
def test_every_arch_honours_every_budget(result):
    assert len(result.pareto) >= 5
    for e in result.pareto:
        genes = SPACE.encode(SPACE.arch_from_dict(e["arch"]))[None]
        flops, params = COST.flops_and_params(genes)
        assert e["mflops"] == pytest.approx(flops[0]) and e["mflops"] <= 2.5
        assert e["params_m"] == pytest.approx(params[0] / 1e6) and e["params_m"] <= 1.0
        assert e["accuracy"] == pytest.approx(accuracy(genes)[0])
        assert e["accuracy_source"] == "predicted" and e["latency_ms"] is None
        assert list(e)[:6] == list(ENTRY_KEYS)


def test_front_is_non_dominated_and_sorted(result):
    front = result.pareto
    assert all(not dominated(a, b) for a in front for b in front)
    assert [e["mflops"] for e in front] == sorted(e["mflops"] for e in front)
    accs = [e["accuracy"] for e in front]
    assert accs == sorted(accs)  # on a 2-objective front accuracy rises with FLOPs


def test_budget_list_picks_best_under_each(result):
    winners = result.budget_winners
    assert [w["budget"] for w in winners] == [1.5, 2.0, 2.5]
    for w in winners:
        assert w["metric"] == "mflops" and w["mflops"] <= w["budget"]
        under = [e["accuracy"] for e in result.pareto if e["mflops"] <= w["budget"]]
        assert w["accuracy"] == pytest.approx(max(under))
    assert winners[0]["accuracy"] < winners[1]["accuracy"] <= winners[2]["accuracy"]


def test_seeded_reproducible():
    a = run(accuracy, budgets=dict(max_mflops=2.0), seed=3, **FAST)
    b = run(accuracy, budgets=dict(max_mflops=2.0), seed=3, **FAST)
    c = run(accuracy, budgets=dict(max_mflops=2.0), seed=4, **FAST)
    assert a.pareto == b.pareto and a.hypervolume == b.hypervolume and a.history == b.history
    assert a.pareto != c.pareto


def test_hypervolume_positive_and_grows_with_generations(result):
    assert 0 < result.hypervolume < 1
    hv = [h["hypervolume"] for h in result.history]
    assert len(hv) == 5 and hv == sorted(hv)  # the archive only improves
    assert result.hypervolume == pytest.approx(hv[-1])
    assert result.hypervolume_reference["reference_point"] == [1.0, 1.0]
    assert result.hypervolume_reference["bounds"]["mflops"][1] == 2.5
    worse = run(lambda g: accuracy(g) - 5.0, budgets=dict(max_mflops=2.5, max_params_m=1.0),
                       seed=0, **FAST)
    assert worse.hypervolume < result.hypervolume


def test_two_cost_objectives_and_latency_budget():
    def latency(genes):  # a made-up device: 2 ms per MFLOP plus 0.3 ms per block
        return 2.0 * COST.flops(genes) + 0.3 * SPACE.features_from_genes(genes)[:, 10:17].sum(1)

    res = run(accuracy, objectives=["mflops", "latency"], budgets=dict(max_latency_ms=6.0),
                     latency_fn=latency, seed=1, **FAST)
    assert res.pareto and all(e["latency_ms"] <= 6.0 for e in res.pareto)
    assert all(not dominated(a, b, ("mflops", "latency_ms")) for a in res.pareto for b in res.pareto)
    with pytest.raises(ConfigError, match="needs a latency table"):
        run(accuracy, objectives=["latency"], **FAST)


def test_measured_accuracy_evaluates_each_arch_once(tmp_path):
    seen = []

    def evaluate(arch):
        seen.append(arch.key())
        return float(accuracy(SPACE.encode(arch)[None])[0])

    cache = tmp_path / "measured.jsonl"
    res = run(None, accuracy_source="measured", evaluate_fn=evaluate, measured_cache=cache,
                     budgets=dict(max_mflops=2.0), pop_size=10, generations=3, seed=0)
    assert len(seen) == len(set(seen)) == res.n_measured == res.n_evaluations
    assert all(e["accuracy_source"] == "measured" for e in res.pareto)
    assert len(P.ArchDataset.load(cache)) == len(seen)  # measured archs become predictor data


def test_predicted_then_remeasured():
    calls = []

    def evaluate(arch):
        calls.append(arch)
        return float(accuracy(SPACE.encode(arch)[None])[0]) - 1.0

    res = run(accuracy, accuracy_source="predicted+remeasure", evaluate_fn=evaluate, remeasure_top=8,
                     budgets=dict(max_mflops=2.5), budget_points=[2.0], seed=0, **FAST)
    assert 8 <= len(calls) <= 8 + 3 and res.n_measured == len(calls)
    for e in res.pareto + res.budget_winners:
        assert e["accuracy_source"] == "measured"
        assert e["accuracy"] == pytest.approx(e["predicted_accuracy"] - 1.0)
        assert e["mflops"] <= 2.5


def test_remeasured_front_uses_earlier_measurements(tmp_path):
    """Archs already measured (e.g. the predictor's data, in the cache) join the measured front when
    they meet the budgets; those over budget never do."""
    from attentivenas.accuracy import ArchDataset, ArchRecord

    cost = CostModel(SPACE, 1000)
    small, big = SPACE.min_arch(), SPACE.max_arch()
    cache = ArchDataset(SPACE, num_classes=1000)
    for arch, acc in ((small, 99.0), (big, 99.5)):
        f, p = cost.flops_and_params(SPACE.encode(arch)[None])
        cache.add(ArchRecord(arch, acc, float(f[0]), float(p[0]) / 1e6))
    path = cache.save(tmp_path / "measured.jsonl")
    res = run(accuracy, accuracy_source="predicted+remeasure", measured_cache=path,
                     evaluate_fn=lambda a: float(accuracy(SPACE.encode(a)[None])[0]) - 1.0, remeasure_top=4,
                     budgets=dict(max_mflops=2.5), seed=0, **FAST)
    archs = [e["arch"] for e in res.pareto]
    assert small.to_dict() in archs and big.to_dict() not in archs
    assert all(e["accuracy_source"] == "measured" and e["mflops"] <= 2.5 for e in res.pareto)


# --------------------------------------------------------------------------- errors
def test_impossible_budget_is_one_clear_user_error():
    with pytest.raises(UserError, match=r"no arch meets max_mflops=0.5 \(the smallest subnet has 0.84 MFLOPs\)"):
        run(accuracy, budgets=dict(max_mflops=0.5), **FAST)
    with pytest.raises(UserError, match=r"max_mflops \(budget list\)=0.1"):
        run(accuracy, budget_points=[0.1, 2.0], **FAST)


def test_unknown_objective_and_bad_settings():
    with pytest.raises(ConfigError, match=r"unknown objective\(s\) \['energy'\]; allowed: \['mflops', 'params'"):
        run(accuracy, objectives=["mflops", "energy"], **FAST)
    with pytest.raises(ConfigError, match="unknown accuracy source"):
        run(accuracy, accuracy_source="guessed", **FAST)
    with pytest.raises(ConfigError, match="needs an evaluate function"):
        run(accuracy, accuracy_source="predicted+remeasure", **FAST)
    with pytest.raises(ConfigError, match="positive"):
        run(accuracy, budgets=dict(max_mflops=-1), **FAST)
    with pytest.raises(ConfigError, match="numbers separated by commas"):
        parse_budget_points("250,abc")
    assert parse_budget_points("400, 250,300") == (250.0, 300.0, 400.0)


# --------------------------------------------------------------------------- outputs
def test_outputs_follow_the_contract(tmp_path):
    res = run(accuracy, budgets=dict(max_mflops=2.0), budget_points=[1.5], seed=0, out_dir=tmp_path,
                     show_published=True, **FAST)
    entries = json.loads((tmp_path / "pareto.json").read_text())
    assert isinstance(entries, list) and len(entries) == len(res.pareto)
    assert all(set(ENTRY_KEYS) <= set(e) and set(e["arch"]) == {"resolution", "width", "depth", "kernel_size",
                                                                   "expand_ratio"} for e in entries)
    rows = list(csv.reader((tmp_path / "pareto.csv").open()))
    assert rows[0] == ["mflops", "params_m", "latency_ms", "accuracy", "accuracy_source", "resolution", "width",
                       "depth", "kernel_size", "expand_ratio"]
    assert len(rows) == len(entries) + 1 and float(rows[1][0]) == pytest.approx(entries[0]["mflops"])
    assert len(rows[1][6].split()) == 9  # widths, space-separated
    assert (tmp_path / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["hypervolume"] == pytest.approx(res.hypervolume) and summary["settings"]["seed"] == 0
    assert parse_model(SearchConfig, yaml.safe_load((tmp_path / "config.yaml").read_text())) == res.config
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 5
    assert "pop_size: 20" in (tmp_path / "config.yaml").read_text()


# --------------------------------------------------------------------------- CLI
@pytest.fixture(scope="module")
def predictor_file(tmp_path_factory):
    ds = P.ArchDataset(SPACE)
    for g in P.spread_genes(SPACE, 40, np.random.default_rng(0), COST):
        f, p = COST.flops_and_params(g[None])
        ds.add(P.ArchRecord(SPACE.decode(g), float(accuracy(g)[0]), float(f[0]), float(p[0]) / 1e6))
    return P.fit_predictor(ds, "ridge").save(tmp_path_factory.mktemp("pred") / "pred.json")


def test_cli_search_with_predictor(predictor_file, tmp_path, capsys):
    out = tmp_path / "run"
    code = run_cli_code(["search", "--predictor", str(predictor_file), "--space", "tiny", "--out", str(out),
                    "--max-mflops", "2", "--budgets", "1.2,1.8", "--pop-size", "12", "--generations", "2", "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["settings"]["accuracy"]["source"] == "predicted" and summary["pareto_size"] >= 1
    assert [w["budget"] for w in summary["budget_winners"]] == [1.2, 1.8]
    assert all(e["mflops"] <= 2 for e in json.loads((out / "pareto.json").read_text()))


def test_cli_search_memory_objective(predictor_file, tmp_path, capsys):
    out = tmp_path / "mem"
    code = run_cli_code(["search", "--predictor", str(predictor_file), "--out", str(out), "--objectives", "mflops,memory",
                    "--max-memory-mb", "3.5", "--pop-size", "12", "--generations", "2", "--json"])
    assert code == 0 and json.loads(capsys.readouterr().out)["pareto_size"] >= 1
    entries = json.loads((out / "pareto.json").read_text())
    assert all(2.5 < e["memory_mb"] <= 3.5 for e in entries)
    assert "memory_mb" in (out / "pareto.csv").read_text().splitlines()[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-mflops", "0.5"], "no arch meets max_mflops=0.5 (the smallest subnet has 0.84 MFLOPs)"),
        (["--space", "attentivenas"], "fitted on space 'tiny', not 'attentivenas'"),
        (["--objectives", "mflops,energy"], "unknown objective(s) ['energy']"),
        (["--max-latency-ms", "5"], "need --latency-table"),
        (["--max-memory-mb", "1"], "no arch meets max_memory_mb=1 (the smallest subnet has 2.54 MB)"),
        (["--latency-table", "missing.json"], "latency table not found"),
        (["--accuracy", "measured"], "needs --checkpoint"),
    ],
)
def test_cli_search_errors_exit_2(predictor_file, tmp_path, capsys, args, message):
    code = run_cli_code(["search", "--predictor", str(predictor_file), "--out", str(tmp_path / "o"), *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "o" / "pareto.json").exists()


def test_predictor_of_another_space_rejected_in_library(predictor_file):
    from attentivenas.search import search_with_predictor
    from attentivenas.space import ATTENTIVENAS_SPACE

    with pytest.raises(CheckpointError, match="not 'attentivenas'"):
        search_with_predictor(ATTENTIVENAS_SPACE, P.load_predictor(predictor_file), SearchConfig())


# --------------------------------------------------------------------------- search --config
def test_cli_search_config_file_overrides_and_flags(predictor_file, tmp_path, capsys):
    cfg = tmp_path / "search.yaml"
    cfg.write_text(yaml.safe_dump({"predictor": str(predictor_file), "space": "tiny", "seed": 3,
                                   "budgets": {"max_mflops": 2.5, "points": [1.2, 1.8]},
                                   "evolution": {"pop_size": 16, "generations": 3}}))
    out = tmp_path / "run"
    code = run_cli_code(["search", "--config", str(cfg), "evolution.generations=2", "--max-mflops", "2",
                         "--out", str(out), "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    settings = summary["settings"]
    assert settings["seed"] == 3 and settings["evolution"] == {"pop_size": 16, "generations": 2, "mutation_prob": 0.1,
                                                               "crossover_prob": 0.9}
    assert settings["budgets"]["max_mflops"] == 2.0 and settings["budgets"]["points"] == [1.2, 1.8]  # the flag wins
    assert settings["accuracy"]["source"] == "predicted"  # resolved from what was given
    assert all(e["mflops"] <= 2 for e in json.loads((out / "pareto.json").read_text()))
    # the resolved config runs the same search again
    again = tmp_path / "again"
    assert run_cli_code(["search", "--config", str(out / "config.yaml"), "--out", str(again), "--json"]) == 0
    capsys.readouterr()
    assert (again / "pareto.json").read_text() == (out / "pareto.json").read_text()
    assert (again / "config.yaml").read_text() == (out / "config.yaml").read_text()


@pytest.mark.parametrize(("args", "message"), [
    (["evolution.pop_sise=8"], "unknown config key 'evolution.pop_sise'; did you mean 'evolution.pop_size'?"),
    (["budgets.max_mflops=-2"], "budget max_mflops must be a positive number, got -2"),
    (["accuracy.source=guessed"], "unknown accuracy source 'guessed'"),
    (["objectives=[mflops,energy]"], "unknown objective(s) ['energy']"),
    (["--budgets", "1,abc"], "budget list must hold numbers separated by commas"),
    (["--config", "missing.yaml"], "config file not found: missing.yaml"),
    (["seed=-1"], "config key 'seed': Input should be greater than or equal to 0 (got -1)"),
    (["--seed", "-1"], "config key 'seed': Input should be greater than or equal to 0 (got -1)"),
    (["evolution.pop_size=100000000"], "config key 'evolution.pop_size': Input should be less than or equal to 5000"),
])
def test_cli_search_config_errors_exit_2(predictor_file, tmp_path, capsys, args, message):
    code = run_cli_code(["search", "--predictor", str(predictor_file), "--out", str(tmp_path / "o"), *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()



@pytest.mark.parametrize(("override", "key"), [
    ("seed=-1", "seed"), ("seed=4294967296", "seed"), ("accuracy.calib_seed=-3", "accuracy.calib_seed"),
    ("evolution.pop_size=100000000", "evolution.pop_size"), ("evolution.pop_size=3", "evolution.pop_size"),
    ("evolution.generations=100001", "evolution.generations"), ("evolution.generations=0", "evolution.generations"),
    ("accuracy.remeasure_top=100001", "accuracy.remeasure_top"),
    ("auto_predictor.num_archs=100001", "auto_predictor.num_archs"),
])
def test_search_counts_and_seeds_are_bounded(override, key):
    """Seeds in [0, 2**32), population 4..5,000 (what runs on 24 GB: issue 42), generations 1..100,000 (and
    population x generations at most 2,000,000): one line naming the key."""
    with pytest.raises(ConfigError, match=f"config key '{key}': Input should be") as info:
        load_search_config(None, [override])
    assert "\n" not in str(info.value)
    ok = load_search_config(None, ["seed=4294967295", "evolution.pop_size=20", "evolution.generations=100000"])
    assert (ok.seed, ok.evolution.pop_size, ok.evolution.generations) == (2**32 - 1, 20, 100_000)
    assert load_search_config(None, ["evolution.pop_size=5000"]).evolution.pop_size == 5000
