"""Issue 42, item 4: a search under any budget that some subnet meets ends with a front (budgets just
above the smallest subnet's cost: pymoo gives infeasible individuals no rank, which the state save
could not write), one that no subnet meets is one line before any work, and every count a search
user can pass has a bound the machine holds (population, generations, calibration, Pareto files)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from attentivenas import accuracy as P
from attentivenas.config import SearchConfig, load_search_config, parse_model
from attentivenas.costs import CostModel, MemoryModel
from attentivenas.errors import ConfigError, UserError
from attentivenas.export.formats import ExportError
from attentivenas.export.pareto import MAX_PARETO_ARCHS, read_pareto_archs
from attentivenas.search import CostEvaluator, read_pareto_json, run_search
from attentivenas.search.problem import SearchState, repair_to_budget
from attentivenas.space import TINY_SPACE

from .cli_helpers import run_cli
from .synthetic import synthetic_latency_table

SPACE = TINY_SPACE
COST = CostModel(SPACE, 10)
MIN_GENES = np.zeros((1, SPACE.num_genes), np.int64)
TABLE = synthetic_latency_table()
LATENCY = TABLE.gene_fn(SPACE)
MEMORY = MemoryModel(SPACE, 10).memory_mb
#: budget key -> (cost column, objective)
BUDGETS = {"max_mflops": "mflops", "max_params_m": "params_m", "max_latency_ms": "latency_ms",
           "max_memory_mb": "memory_mb"}


def accuracy(genes: np.ndarray) -> np.ndarray:
    return 50.0 + 5.0 * np.log(COST.flops(np.atleast_2d(genes)))


def _config(budgets: dict, pop_size: int = 6, generations: int = 2) -> SearchConfig:
    return parse_model(SearchConfig, {"budgets": budgets, "evolution": {"pop_size": pop_size,
                                                                         "generations": generations}}, "test")


def _min_cost(col: str) -> float:
    return float(CostEvaluator(SPACE, 10, LATENCY, MEMORY)(MIN_GENES)[col][0])


@pytest.mark.parametrize("budget", list(BUDGETS))
def test_a_budget_just_above_the_smallest_subnet_ends_with_a_front(budget: str, tmp_path: Path) -> None:
    col = BUDGETS[budget]
    limit = _min_cost(col) * 1.001
    result = run_search(SPACE, _config({budget: limit}), accuracy, num_classes=10, latency_fn=LATENCY,
                        memory_fn=MEMORY, state_path=tmp_path / "state.npz")
    assert result.pareto and all(e[col] <= limit for e in result.pareto)
    assert (tmp_path / "state.npz").is_file()  # the state of a population with infeasible offspring is written


def test_a_tight_search_resumed_ends_as_one_never_interrupted(tmp_path: Path) -> None:
    """Ranks pymoo left unset (infeasible individuals) are written and read back as they were."""
    budget = {"max_mflops": _min_cost("mflops") * 1.05}
    whole = run_search(SPACE, _config(budget, generations=4), accuracy, num_classes=10, state_path=tmp_path / "a.npz")
    run_search(SPACE, _config(budget, generations=2), accuracy, num_classes=10, state_path=tmp_path / "b.npz")
    resumed = run_search(SPACE, _config(budget, generations=4), accuracy, num_classes=10,
                         state_path=tmp_path / "b.npz")
    assert resumed.pareto == whole.pareto and resumed.n_evaluations == whole.n_evaluations


def test_repair_moves_archs_over_a_budget_towards_the_smallest_subnet() -> None:
    costs = CostEvaluator(SPACE, 10)
    limit = _min_cost("mflops") * 1.02
    state = SearchState(SPACE, accuracy, costs, ["mflops"], [("max_mflops", "mflops", limit)])
    genes = np.concatenate([SPACE.gene_sizes[None] - 1, SPACE.sample_genes(np.random.default_rng(0), 20), MIN_GENES])
    fixed = repair_to_budget(state, genes, np.random.default_rng(1))
    assert (costs(fixed)["mflops"] <= limit).all() and (fixed <= genes).all()
    np.testing.assert_array_equal(fixed[-1], MIN_GENES[0])  # a feasible arch is left as it is


def test_a_budget_no_subnet_meets_is_one_line_before_any_work(tmp_path: Path) -> None:
    low = _min_cost("mflops") * 0.99
    with pytest.raises(UserError, match="no arch meets max_mflops"):
        run_search(SPACE, _config({"max_mflops": low}), accuracy, num_classes=10)
    pred = _predictor(tmp_path)
    out = tmp_path / "o"
    r = run_cli("search", "--predictor", str(pred), "--max-mflops", f"{low:.4f}", "--out", str(out))
    assert r.code == 2 and "no arch meets max_mflops" in r.err and r.err.count("\n") == 1
    assert not (out / "pareto.json").exists()


def _predictor(tmp_path: Path) -> Path:
    ds = P.ArchDataset(SPACE, num_classes=10)
    for g in P.spread_genes(SPACE, 20, np.random.default_rng(0), COST):
        f, p = COST.flops_and_params(g[None])
        ds.add(P.ArchRecord(SPACE.decode(g), float(accuracy(g)[0]), float(f[0]), float(p[0]) / 1e6))
    return P.fit_predictor(ds, "rf").save(tmp_path / "pred.json")


def test_cli_search_at_a_tight_budget_writes_its_front(tmp_path: Path) -> None:
    pred, out = _predictor(tmp_path), tmp_path / "tight"
    limit = _min_cost("mflops") * 1.001
    r = run_cli("search", "--predictor", str(pred), "--max-mflops", f"{limit:.6f}", "--pop-size", "8",
                "--generations", "2", "--out", str(out), "--json")
    assert r.code == 0, r.err
    front = json.loads((out / "pareto.json").read_text())
    assert front and all(e["mflops"] <= limit for e in front)


# --------------------------------------------------------------------------- bounds
@pytest.mark.parametrize(("override", "key"), [
    ("evolution.pop_size=5001", "evolution.pop_size"),
    ("accuracy.calib_batches=1025", "accuracy.calib_batches"),
    ("accuracy.calib_batch_size=4097", "accuracy.calib_batch_size"),
    ("accuracy.batch_size=4097", "accuracy.batch_size"),
    ("int8.calib_images=8193", "int8.calib_images"),
])
def test_search_sizes_are_bounded_by_what_the_machine_holds(override: str, key: str) -> None:
    with pytest.raises(ConfigError, match=f"config key '{key}'") as info:
        load_search_config(None, [override])
    assert "\n" not in str(info.value)


def test_population_times_generations_and_calibration_images_are_bounded() -> None:
    with pytest.raises(ConfigError, match="evaluations; at most 2,000,000"):
        load_search_config(None, ["evolution.pop_size=5000", "evolution.generations=401"])
    with pytest.raises(ConfigError, match="calibration images, held in memory; at most 32,768"):
        load_search_config(None, ["accuracy.calib_batches=1024", "accuracy.calib_batch_size=64"])
    ok = load_search_config(None, ["evolution.pop_size=5000", "evolution.generations=400",
                                   "accuracy.calib_batches=128", "accuracy.calib_batch_size=256"])
    assert ok.evolution.pop_size == 5000


def test_cli_pop_size_over_the_bound_is_refused_before_work(tmp_path: Path) -> None:
    r = run_cli("search", "--predictor", str(_predictor(tmp_path)), "--pop-size", "100000", "--out",
                str(tmp_path / "o"))
    assert r.code == 2 and "evolution.pop_size" in r.err and r.err.count("\n") == 1
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------- Pareto files
def _arch_dict(float_numbers: bool = False) -> dict:
    d = SPACE.min_arch().to_dict()
    if float_numbers:
        d["resolution"] = float(d["resolution"])
        d["depth"] = [float(v) for v in d["depth"]]
    return d


def test_a_pareto_file_with_one_subnet_many_times_is_one_subnet(tmp_path: Path) -> None:
    entries = [{"arch": _arch_dict()}] * 50 + [{"arch": _arch_dict(True)}] * 50
    path = tmp_path / "pareto.json"
    path.write_text(json.dumps(entries))
    with pytest.warns(UserWarning, match="99 repeated subnet"):
        archs = read_pareto_archs(path, SPACE)
    assert archs == [SPACE.min_arch()]
    with pytest.warns(UserWarning, match="99 repeated subnet"):
        assert len(read_pareto_json(path)) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(read_pareto_archs([{"arch": _arch_dict()}, {"arch": SPACE.max_arch().to_dict()}], SPACE)) == 2


def test_a_pareto_file_past_the_bound_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pareto.json"
    path.write_text(json.dumps([{"arch": _arch_dict()}] * (MAX_PARETO_ARCHS + 1)))
    with pytest.raises(ExportError, match="at most 1,000"):
        read_pareto_archs(path, SPACE)
    with pytest.raises(UserError, match="at most 1,000"):
        read_pareto_json(path)


def test_the_memory_benchmark_runs_and_reports_one_row(capsys: pytest.CaptureFixture[str]) -> None:
    from .bench_helpers import load_benchmark

    row = load_benchmark("search_memory").main(["6", "2", "--space", "tiny"])
    assert json.loads(capsys.readouterr().out) == row
    assert row["evaluations"] >= 6 and row["peak_rss_mb"] > 0 and row["num_genes"] == SPACE.num_genes
