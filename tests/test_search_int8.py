"""INT8-aware search (issue 26, item 4): ``search --precision int8`` re-measures its best candidates and
budget winners quantized, writes fp32 and INT8 top-1 for every point, and refuses a latency table of
another precision."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from attentivenas.accuracy import Int8SubnetEvaluator, SubnetEvaluator, score_predictions
from attentivenas.config import MeasureSettings, SearchConfig
from attentivenas.config.search import Int8Config
from attentivenas.nn import Supernet, save_supernet, to_model_resolution
from attentivenas.runtimes import quantize
from attentivenas.space import TINY_SPACE

from .cli_helpers import run_cli
from .synthetic import synthetic_latency_table

SMALL = ["--data", "digits", "--calib-batches", "1", "--device", "cpu", "--num-archs", "4", "--pop-size", "8",
         "--generations", "2", "--remeasure-top", "2", "--int8-calib-images", "16", "--threads", "1",
         "auto_predictor.folds=2", "auto_predictor.kinds=[ridge]", "accuracy.max_images=64"]


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    return save_supernet(tmp_path_factory.mktemp("c") / "tiny.pt", Supernet(TINY_SPACE, 10))


@pytest.fixture()
def fake_int8(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """``int8_predict_fn`` replaced by a fast stand-in whose predictions differ from the float model's
    (the logits negated): a search reporting the float top-1 as INT8 would be caught. Records each call."""
    calls: list[dict] = []

    def fake(model: torch.nn.Module, runtime: str, calib: torch.Tensor, example: torch.Tensor,
             threads: int = 1) -> Callable[[torch.Tensor], torch.Tensor]:
        calls.append({"runtime": runtime, "calib": tuple(calib.shape), "example": tuple(example.shape),
                      "threads": threads, "training": model.training})
        return lambda x: -model(x).detach()

    monkeypatch.setattr(quantize, "int8_predict_fn", fake)
    return calls


def test_config_values_match_the_quantizer() -> None:
    from typing import get_args

    assert get_args(SearchConfig.model_fields["precision"].annotation) == quantize.PRECISIONS
    assert Int8Config.model_fields["runtime"].annotation is str  # checked against the records (test_config_literals)
    assert Int8Config().runtime in quantize.INT8_RUNTIMES
    assert SearchConfig().precision == "fp32" and SearchConfig().int8.runtime == "onnxruntime"


def test_int8_search_writes_both_accuracies(tiny_ckpt: Path, tmp_path: Path, fake_int8: list[dict]) -> None:
    out = tmp_path / "s"
    r = run_cli("search", "--checkpoint", str(tiny_ckpt), *SMALL, "--max-mflops", "3", "--budgets", "1.5,3",
                "--precision", "int8", "--out", str(out), "--json")
    assert r.code == 0, r.err
    pareto = json.loads((out / "pareto.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    assert pareto and all(e["mflops"] <= 3 for e in pareto)
    for e in pareto + [w for w in summary["budget_winners"] if w.get("arch")]:
        assert e["accuracy_source"] == "measured"
        assert e["accuracy"] == e["top1_int8"] and isinstance(e["top1_fp32"], float)
    # the INT8 measurements are those of the stand-in, not the float model's
    records = [json.loads(x) for x in (out / "measured_int8.jsonl").read_text().splitlines()]
    header, rows = records[0], records[1:]
    assert len(rows) == len(fake_int8) == summary["n_measured_int8"] > 0
    fp32 = {json.loads(x)["key"]: json.loads(x)["accuracy"]
            for x in (out / "measured.jsonl").read_text().splitlines()[1:]}
    assert any(r["accuracy"] != fp32[r["key"]] for r in rows)
    assert {e["top1_fp32"] for e in pareto} <= set(fp32.values())
    mw = header["measured_with"]
    assert (mw["precision"], mw["int8_runtime"], mw["int8_calib_images"]) == ("int8", "onnxruntime", 16)
    assert all(c["runtime"] == "onnxruntime" and c["calib"][0] == 16 and c["threads"] == 1 and not c["training"]
               for c in fake_int8)
    # every budget winner was measured in INT8 (the best of those measured under its budget)
    assert all(w["mflops"] <= w["budget"] for w in summary["budget_winners"] if w.get("arch"))
    rows_csv = list(csv.DictReader((out / "pareto.csv").open()))
    assert rows_csv and {"top1_fp32", "top1_int8", "accuracy"} <= set(rows_csv[0])
    assert all(float(x["accuracy"]) == float(x["top1_int8"]) for x in rows_csv)
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["precision"] == "int8" and cfg["int8"] == {"runtime": "onnxruntime", "calib_images": 16}
    assert (out / "pareto.png").stat().st_size > 0

    # the same command again measures nothing: both caches are reused
    before = len(fake_int8)
    r = run_cli("search", "--checkpoint", str(tiny_ckpt), *SMALL, "--max-mflops", "3", "--budgets", "1.5,3",
                "--precision", "int8", "--out", str(out), "--json")
    assert r.code == 0, r.err and len(fake_int8) == before
    assert json.loads((out / "pareto.json").read_text()) == pareto
    # config.yaml runs it again
    r = run_cli("search", "--config", str(out / "config.yaml"), "--out", str(out), "--json")
    assert r.code == 0, r.err and len(fake_int8) == before


def test_int8_search_reports_both_on_the_report_split(tiny_ckpt: Path, tmp_path: Path, fake_int8: list[dict]) -> None:
    out = tmp_path / "s"
    r = run_cli("search", "--checkpoint", str(tiny_ckpt), *SMALL, "--max-mflops", "1.5", "--precision", "int8",
                "--split", "val-search", "--report-split", "val-report", "--out", str(out), "--json")
    assert r.code == 0, r.err
    pareto = json.loads((out / "pareto.json").read_text())
    assert pareto and all({"report_top1", "report_top1_int8"} <= set(e) for e in pareto)
    assert any(e["report_top1_int8"] != e["report_top1"] for e in pareto)  # the stand-in's, not the float top-1
    header = (out / "pareto.csv").read_text().splitlines()[0].split(",")
    assert header.index("report_top1") < header.index("report_top1_int8") < header.index("report_split")


@pytest.mark.slow  # one real quantization: about 8 s on a quiet core, 20 s on a loaded one
def test_int8_accuracy_is_the_quantized_models() -> None:
    """The real ONNX Runtime path: the INT8 predictions are close to the float subnet's, not equal, and
    the INT8 top-1 is theirs."""
    pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    net = Supernet(TINY_SPACE, 10)
    base = SubnetEvaluator(net, _digits(), MeasureSettings(calib_batches=1, max_images=32, batch_size=16), "cpu")
    ev = Int8SubnetEvaluator(base, Int8Config(calib_images=16), threads=1)
    arch = TINY_SPACE.decode(TINY_SPACE.gene_sizes * 0)  # the min subnet: random weights quantize worse when deep
    sub, predict = ev.quantized(arch)
    x = next(iter(base.loader_for(arch)))[0]
    with torch.no_grad():
        ref = sub(to_model_resolution(x, sub))
    got = predict(x)
    assert got.shape == ref.shape and not torch.equal(got, ref)  # quantized: not the float logits ...
    corr = float(torch.corrcoef(torch.stack([got.flatten(), ref.flatten()]))[0, 1])
    assert corr > 0.5  # ... but close to them (0.75 here: random weights, logits of +-0.1)
    top1 = score_predictions(predict, base.loader_for(arch))["top1"]
    assert ev(arch) == pytest.approx(top1)
    assert ev.provenance()["precision"] == "int8" and ev.provenance()["int8_runtime"] == "onnxruntime"


def _digits():
    from attentivenas.accuracy import resolve_data

    return resolve_data("digits", TINY_SPACE, {})


def test_table_of_another_precision_is_refused(tiny_ckpt: Path, tmp_path: Path) -> None:
    fp32_table = synthetic_latency_table().save(tmp_path / "fp32.json")
    int8_table = synthetic_latency_table(meta={"precision": "int8"}).save(tmp_path / "int8.json")
    common = ["--checkpoint", str(tiny_ckpt), *SMALL, "--objectives", "latency"]
    r = run_cli("search", *common, "--latency-table", str(fp32_table), "--precision", "int8",
                "--out", str(tmp_path / "a"))
    assert r.code == 2 and _error_lines(r.err) == 1 and "measured in fp32, not int8" in r.err, r.err
    r = run_cli("search", *common, "--latency-table", str(int8_table), "--out", str(tmp_path / "b"))
    assert r.code == 2 and _error_lines(r.err) == 1 and "measured in int8, not fp32" in r.err, r.err
    assert not (tmp_path / "b" / "measured.jsonl").exists()  # refused before anything is measured


def test_int8_search_ranks_on_an_int8_table(tiny_ckpt: Path, tmp_path: Path, fake_int8: list[dict]) -> None:
    table = synthetic_latency_table(meta={"precision": "int8"}).save(tmp_path / "int8.json")
    out = tmp_path / "s"
    r = run_cli("search", "--checkpoint", str(tiny_ckpt), *SMALL, "--objectives", "latency", "--latency-table",
                str(table), "--max-mflops", "3", "--precision", "int8", "--out", str(out), "--json")
    assert r.code == 0, r.err
    pareto = json.loads((out / "pareto.json").read_text())
    assert pareto and fake_int8
    assert all(e["latency_ms"] > 0 and e["accuracy"] == e["top1_int8"] for e in pareto)


def _error_lines(err: str) -> int:
    """Lines of stderr besides the hold-out warning."""
    return len([line for line in err.strip().splitlines() if not line.startswith("warning:")])


def test_int8_needs_a_checkpoint(tmp_path: Path) -> None:
    pred = tmp_path / "pred.json"
    from attentivenas.accuracy import ArchDataset, ArchRecord, fit_predictor
    from attentivenas.costs import CostModel

    rng = np.random.default_rng(0)
    cost = CostModel(TINY_SPACE, 10)
    genes = TINY_SPACE.sample_genes(rng, 12)
    data = ArchDataset(TINY_SPACE, [ArchRecord(TINY_SPACE.decode(g), float(cost.flops(g[None])[0]),
                                               float(cost.flops(g[None])[0]), 0.1) for g in genes], 10)
    fit_predictor(data, "ridge").save(pred)
    r = run_cli("search", "--predictor", str(pred), "--precision", "int8", "--pop-size", "8", "--generations", "1",
                "--out", str(tmp_path / "s"))
    assert r.code == 2 and "--checkpoint" in r.err and _error_lines(r.err) == 1, r.err
    r = run_cli("search", "--predictor", str(pred), "--precision", "int16", "--out", str(tmp_path / "t"))
    assert r.code == 2 and "precision" in r.err


@pytest.mark.slow  # real ONNX Runtime quantization of each front subnet: about 10 s each on a loaded machine
def test_int8_search_with_the_real_quantizer(tiny_ckpt: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    out = tmp_path / "s"
    small = [a if a != "2" or SMALL[i - 1] != "--remeasure-top" else "1" for i, a in enumerate(SMALL)]
    r = run_cli("search", "--checkpoint", str(tiny_ckpt), *small, "--max-mflops", "1.2", "--precision", "int8",
                "--out", str(out), "--json")
    assert r.code == 0, r.err
    pareto = json.loads((out / "pareto.json").read_text())
    assert pareto and all(e["accuracy"] == e["top1_int8"] for e in pareto)
    rows = (out / "measured_int8.jsonl").read_text().splitlines()[1:]
    assert len(rows) == json.loads((out / "summary.json").read_text())["n_measured_int8"] >= len(pareto)
