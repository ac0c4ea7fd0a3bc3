"""The whole pipeline (`attentivenas quickstart`), shortened: train, predictor, search, export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from .cli_helpers import run_cli

SHORT = ["optim.epochs=1", "runtime.steps_per_epoch=6", "optim.warmup_epochs=0", "sampler.prior_samples=2000",
         "eval.calibration_batches=2", "log.tensorboard=false", "log.progress=false"]


@pytest.mark.slow
def test_quickstart_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "qs"
    r = run_cli("quickstart", "--out", str(out), "--num-archs", "8", "--folds", "2", "--pop-size", "8",
                "--generations", "3", "--remeasure-top", "3", *SHORT)
    assert r.code == 0, r.err
    for name in ("checkpoints/last.pt", "metrics.jsonl", "config.yaml", "pareto.json", "pareto.csv", "pareto.png",
                 "predictor/predictor.json", "models/index.json"):
        assert (out / name).is_file(), name
    pareto = json.loads((out / "pareto.json").read_text())
    index = json.loads((out / "models" / "index.json").read_text())
    assert len(index) == len(pareto) >= 1
    for rec, entry in zip(index, pareto, strict=True):
        assert rec["arch"] == entry["arch"] and rec["val_top1"] == entry["accuracy"]
        assert 0.0 <= rec["test_top1"] <= 100.0
        assert rec["format"] == "torch-export" and rec["batch"] == "dynamic"  # the default: .pt2
        model = torch.export.load(str(out / "models" / rec["file"])).module()
        res = rec["arch"]["resolution"]  # a program takes images at its subnet's resolution (no resize inside)
        assert model(torch.randn(2, 3, res, res)).shape == (2, 10)
    assert "plot:" in r.out and "models:" in r.out and "checkpoint:" in r.out

    # a second run resumes the finished training and reuses the measured archs
    r2 = run_cli("quickstart", "--out", str(out), "--num-archs", "8", "--folds", "2", "--pop-size", "8",
                 "--generations", "3", "--remeasure-top", "3", *SHORT)
    assert r2.code == 0, r2.err
    assert len((out / "predictor" / "archs.jsonl").read_text().splitlines()) == 9
    assert "measuring again" not in r2.out + r2.err and not list(out.glob("*/*.stale"))  # the same weights


def test_quickstart_bad_override(tmp_path: Path) -> None:
    r = run_cli("quickstart", "--out", str(tmp_path), "sampler.k=0")
    assert r.code == 2 and "sampler.k" in r.err
