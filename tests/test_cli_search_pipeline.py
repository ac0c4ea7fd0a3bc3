"""Stage 2 through the command line on a tiny checkpoint: build a dataset, fit, search with
re-measurement, export the Pareto set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from attentivenas.nn import Supernet, save_supernet
from attentivenas.space import TINY_SPACE

from .cli_helpers import run_cli


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    return save_supernet(tmp_path_factory.mktemp("c") / "tiny.pt", Supernet(TINY_SPACE, 10))


def test_build_fit_search_export(tiny_ckpt: Path, tmp_path: Path) -> None:
    data = tmp_path / "archs.jsonl"
    common = ["--data", "digits", "--calib-batches", "1", "--device", "cpu"]
    r = run_cli("predictor", "build", "--checkpoint", str(tiny_ckpt), "--out", str(data), "--num-archs", "8",
                *common, "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["archs"] == 8 and len(data.read_text().splitlines()) == 9  # header + 8 records
    # a second build measures nothing new: the file is the cache
    r = run_cli("predictor", "build", "--checkpoint", str(tiny_ckpt), "--out", str(data), "--num-archs", "8",
                *common, "--json")
    assert r.code == 0 and len(data.read_text().splitlines()) == 9

    pred = tmp_path / "pred.json"
    r = run_cli("predictor", "fit", "--dataset", str(data), "--out", str(pred), "--kinds", "ridge", "--folds", "2",
                "--json")
    assert r.code == 0, r.err and pred.is_file()

    out = tmp_path / "search"
    r = run_cli("search", "--predictor", str(pred), "--checkpoint", str(tiny_ckpt), *common, "--out", str(out),
                "--pop-size", "8", "--generations", "2", "--remeasure-top", "3", "--max-mflops", "3", "--json")
    assert r.code == 0, r.err
    pareto = json.loads((out / "pareto.json").read_text())
    assert pareto and all(e["mflops"] <= 3 for e in pareto)
    assert {e["accuracy_source"] for e in pareto} <= {"measured", "predicted"}
    assert any(e["accuracy_source"] == "measured" for e in pareto)

    models = tmp_path / "models"
    r = run_cli("export", "--checkpoint", str(tiny_ckpt), "--pareto", str(out / "pareto.json"), "--out", str(models),
                "--no-calibrate-bn")
    assert r.code == 0, r.err
    assert len(json.loads((models / "index.json").read_text())) == len(pareto)


def test_search_with_checkpoint_of_other_classes(tiny_ckpt: Path, tmp_path: Path) -> None:
    r = run_cli("search", "--checkpoint", str(tiny_ckpt), "--data", "digits", "--space", "attentivenas",
                "--out", str(tmp_path))
    assert r.code == 2 and "does not match space" in r.err
