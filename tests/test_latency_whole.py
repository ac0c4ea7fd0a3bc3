"""Whole-model latency predictors (issue 40, item 4): fitted on whole-subnet measurements from each
arch's analytic per-stage costs, written as a file the search, training's latency constraint and
``latency measure --table`` take like a table, compared with the per-op table on held-out subnets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from attentivenas.costs import layer_specs
from attentivenas.errors import UserError
from attentivenas.latency import LatencyTable, WholeModel, load_latency_predictor
from attentivenas.latency.whole_fit import MIN_WHOLE_SUBNETS, errors, fit_whole
from attentivenas.space import TINY_SPACE, Arch, SearchSpace

from .cli_helpers import run_cli
from .synthetic import synthetic_latency_table

SP = TINY_SPACE
#: a fused runtime's time per MMAC of each stage (high-resolution early stages are memory-bound: slower)
STAGE_RATE = (4.0, 3.5, 2.5, 1.5, 1.0, 0.8, 0.6)


def stage_mmacs(space: SearchSpace, arch: Arch, elements: bool = False) -> tuple[list[float], float]:
    """MMACs (or millions of output elements) of each stage of ``arch`` and of its first conv plus
    head, from the layer specs."""
    per = [0.0] * space.num_stages
    ends = 0.0
    for layer in layer_specs(space, arch, 10):
        v = (layer.c_out * layer.size_out**2 if elements else layer.macs) / 1e6
        if layer.name.startswith("stage"):
            per[int(layer.name[5:].split(".")[0]) - 1] += v
        else:
            ends += v
    return per, ends


def fused_ms(arch: Arch) -> float:
    """A runtime that fuses each stage into one kernel, one launch per stage: each stage takes the
    longer of its compute (a rate per stage) and its memory traffic (not additive over ops)."""
    (per, ends), (elems, _) = stage_mmacs(SP, arch), stage_mmacs(SP, arch, elements=True)
    stages = sum(max(r * m, 55.0 * e) for r, m, e in zip(STAGE_RATE, per, elems, strict=True))
    return 0.3 + stages + 0.7 * ends + 0.02 * SP.num_stages


def _archs(n: int, seed: int) -> list[Arch]:
    return [SP.decode(g) for g in SP.sample_genes(np.random.default_rng(seed), n)]


def _records(archs: list[Arch]) -> list[dict[str, Any]]:
    return [{"arch": a.to_dict(), "ms": fused_ms(a)} for a in archs]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A per-op table storing 60 calibration and 40 held-out subnets of the fused runtime, and the
    whole model ``fit-model`` fitted on it."""
    d = tmp_path_factory.mktemp("whole")
    table = synthetic_latency_table(SP, 10, model="scaled", meta={"calibration_subnets": _records(_archs(60, 1)),
                                                                  "holdout_subnets": _records(_archs(40, 2))})
    table.save(d / "table.json")
    synthetic_latency_table(SP, 10).save(d / "bare.json")
    r = run_cli("latency", "fit-model", str(d / "table.json"), "--out", str(d / "model.json"), "--json")
    assert r.code == 0, r.err
    (d / "fit.json").write_text(r.out)
    return {"table": d / "table.json", "bare": d / "bare.json", "model": d / "model.json", "fit": d / "fit.json",
            "dir": d}


def test_a_linear_in_stage_flops_law_is_recovered() -> None:
    archs = _archs(150, 3)
    rates = np.linspace(3.0, 0.5, SP.num_stages)
    ms = [0.2 + float(np.dot(rates, stage_mmacs(SP, a)[0])) for a in archs]
    coef, floor, info = fit_whole(SP, 10, archs[:80], ms[:80])
    model = WholeModel(space={"name": SP.name, "supernet_config": json.loads(json.dumps(SP.to_supernet_config()))},
                       coefficients=coef, floor_ms=floor, num_classes=10)
    held = errors(model.predict_genes(SP, SP.encode_many(archs[80:])), ms[80:])
    assert held["mape_percent"] < 0.5 and held["kendall_tau"] > 0.99, (held, info)
    assert all(v >= 0 for v in coef.values())


def test_whole_model_beats_the_per_op_sum_where_ops_fuse(files: dict[str, Path]) -> None:
    held = json.loads(files["fit"].read_text())["holdout"]
    whole, per_op = held["whole"], held["per_op"]
    assert held["subnets"] == 40 and "error" not in per_op
    assert whole["mape_percent"] < 3.5 and whole["mape_percent"] < per_op["mape_percent"] / 2.5, held  # 2.2 vs 9.6
    assert whole["kendall_tau"] > per_op["kendall_tau"] + 0.05 and whole["kendall_tau"] > 0.9, held  # 0.94 vs 0.79
    model = load_latency_predictor(files["model"])
    assert isinstance(model, WholeModel) and model.meta["fitted_on"] == 60
    assert model.meta["holdout"] == held  # what it printed is what the file keeps


def test_fit_model_prints_mape_and_tau_of_both(files: dict[str, Path]) -> None:
    out = files["dir"] / "m50.json"
    r = run_cli("latency", "fit-model", str(files["table"]), "--out", str(out), "--subnets", "50")
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert "fitted on 50 measured subnets" in lines[0]
    whole = next(x for x in lines if "whole model" in x and "held-out" in x)
    per_op = next(x for x in lines if "per-op table" in x)
    assert "MAPE" in whole and "Kendall tau" in whole and "MAPE" in per_op and "Kendall tau" in per_op
    assert "same 50 subnets" in per_op


@pytest.mark.parametrize(("table", "flags", "words"), [
    ("bare", [], "stores no measured calibration subnets"),
    ("table", ["--subnets", str(MIN_WHOLE_SUBNETS - 1)], f">= {MIN_WHOLE_SUBNETS} measured subnets"),
    ("table", ["--subnets", "61"], "stores 60 calibration subnets"),
])
def test_fit_model_refusals_are_one_line(files: dict[str, Path], table: str, flags: list[str], words: str) -> None:
    out = files["dir"] / "refused.json"
    r = run_cli("latency", "fit-model", str(files[table]), "--out", str(out), *flags)
    assert r.code == 2 and words in r.err and len(r.err.strip().splitlines()) == 1, r.err
    assert not out.exists()


def test_the_file_round_trips(files: dict[str, Path], tmp_path: Path) -> None:
    model = load_latency_predictor(files["model"])
    again = load_latency_predictor(model.save(tmp_path / "again.json"))
    assert again.to_dict() == model.to_dict()
    genes = SP.sample_genes(np.random.default_rng(5), 200)
    pred = again.predict_genes(SP, genes)
    assert np.array_equal(pred, model.gene_fn(SP)(genes)) and np.all(pred > 0)
    assert again.predict(SP, SP.decode(genes[3])) == pytest.approx(pred[3], rel=1e-12)
    assert isinstance(load_latency_predictor(files["table"]), LatencyTable)
    assert model.budget_ms(SP, "p50") == pytest.approx(model.meta["space_range"]["p50_ms"])


def _tampered(files: dict[str, Path], tmp_path: Path, change: Any) -> Path:
    data = json.loads(files["model"].read_text())
    change(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    return path


def _set(key: str, value: Any) -> Any:
    return lambda d: d.__setitem__(key, value)


def _coef(value: Any) -> Any:
    def change(d: dict) -> None:
        d["coefficients"][d["features"][1]] = value
    return change


def _rename(d: dict) -> None:
    d["coefficients"] = {("bogus" if i == 0 else k): v for i, (k, v) in enumerate(d["coefficients"].items())}
    d["features"] = list(d["coefficients"])


@pytest.mark.parametrize(("change", "words"), [
    (_set("format", "something-else"), "not an attentivenas latency table"),
    (_set("version", 9), "version 9"),
    (_set("kind", "per-op"), "kind 'per-op'"),
    (_coef(-1.0), "not a finite number >= 0"),
    (_coef(float("nan")), "not a finite number >= 0"),
    (_coef(1e308), "not finite"),
    (_rename, "unknown features"),
    (_set("features", ["net.one"]), "must name the coefficients"),
    (_set("coefficients", {f"f{i}": 0.0 for i in range(600)}), "1..512 entries"),
    (_set("floor_ms", 0), "floor_ms"),
    (_set("runtime", "tvm"), "runtime 'tvm'"),
    (_set("threads", "1"), "threads"),
    (_set("device_name", "x" * 1000), "device_name"),
    (_set("space", {"name": "tiny"}), "supernet_config"),
    (_set("space", {"name": "tiny", "supernet_config": {"foo": 1}}), "its space: supernet_config"),
])
def test_hostile_model_files_are_refused_in_one_line(files: dict[str, Path], tmp_path: Path, change: Any,
                                                     words: str) -> None:
    path = _tampered(files, tmp_path, change)
    with pytest.raises(UserError) as exc:
        load_latency_predictor(path)
    msg = str(exc.value)
    assert words in msg and "\n" not in msg and str(path) in msg, msg


def test_search_takes_a_whole_model(files: dict[str, Path], tmp_path: Path) -> None:
    from attentivenas.accuracy import ArchDataset, ArchRecord, fit_predictor
    from attentivenas.costs import CostModel

    cost = CostModel(SP, 10)
    genes = SP.sample_genes(np.random.default_rng(0), 12)
    data = ArchDataset(SP, [ArchRecord(SP.decode(g), float(cost.flops(g[None])[0]), float(cost.flops(g[None])[0]), 0.1)
                            for g in genes], 10)
    pred = fit_predictor(data, "ridge").save(tmp_path / "pred.json")
    out = tmp_path / "s"
    r = run_cli("search", "--predictor", str(pred), "--objectives", "latency", "--latency-table",
                str(files["model"]), "--max-latency", "p50", "--pop-size", "8", "--generations", "1", "--out", str(out))
    assert r.code == 0, r.err
    model = load_latency_predictor(files["model"])
    pareto = json.loads((out / "pareto.json").read_text())
    assert pareto
    for e in pareto:
        assert e["latency_ms"] == pytest.approx(model.predict(SP, Arch.from_dict(e["arch"])), rel=1e-6)
    r = run_cli("search", "--predictor", str(pred), "--objectives", "latency", "--latency-table", str(files["model"]),
                "--precision", "int8", "--checkpoint", "x.pt", "--out", str(tmp_path / "t"))
    assert r.code == 2 and "measured in fp32, not int8" in r.err and len(r.err.strip().splitlines()) == 1, r.err


def test_latency_measure_predicts_with_a_whole_model(files: dict[str, Path]) -> None:
    r = run_cli("latency", "measure", "--arch", "min", "--space", "tiny", "--repeats", "1", "--warmup", "0",
                "--threads", "1", "--num-classes", "10", "--table", str(files["model"]), "--json")
    assert r.code == 0, r.err
    model = load_latency_predictor(files["model"])
    assert json.loads(r.out)["predicted_ms"] == pytest.approx(model.predict(SP, SP.min_arch()), abs=1e-4)
    r = run_cli("latency", "measure", "--arch", "min", "--space", "tiny", "--repeats", "1", "--warmup", "0",
                "--num-classes", "10", "--batch", "2", "--table", str(files["model"]))
    assert r.code == 2 and "batch 1 (asked: 2)" in r.err and len(r.err.strip().splitlines()) == 1, r.err


def test_training_constraint_takes_a_whole_model(files: dict[str, Path]) -> None:
    from attentivenas.errors import ConfigError
    from attentivenas.train.sampling.constraints import build_constraint

    fn = build_constraint(SP, "latency", 10, files["model"])
    genes = SP.sample_genes(np.random.default_rng(7), 50)
    assert np.array_equal(fn(genes), load_latency_predictor(files["model"]).predict_genes(SP, genes))
    with pytest.raises(ConfigError, match="fitted for 10 classes|built for 10 classes"):
        build_constraint(SP, "latency", 1000, files["model"])
