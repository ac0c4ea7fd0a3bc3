"""The sampler's choice record in metrics.jsonl and ``attentivenas sampling-report`` on a tiny run."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from attentivenas.errors import UserError
from attentivenas.space import TINY_SPACE
from attentivenas.train import train
from attentivenas.train.choices import expected_range, pick_credit, summarise, wilson
from attentivenas.train.sampling import ArchSampler, choice_record, read_choices, record_interval

from .cli_helpers import run_cli
from .synthetic import config_with


def _cfg(**over: Any):
    data: dict[str, Any] = {
        "seed": 0, "space": "tiny",
        "data": {"name": "digits", "image_size": 32, "batch_size": 8, "eval_batch_size": 128, "random_shift": 1},
        "optim": {"epochs": 2, "warmup_epochs": 0.5, "lr": 0.4},
        "sampler": {"method": "bestup", "k": 3, "num_middle": 2, "bin_width": 0.25, "prior_samples": 2000,
                    "record_every": 2, "record_max": 100},
        "eval": {"every_epochs": 0},
        "checkpoint": {"every_steps": 100, "keep_last": 1},
        "runtime": {"device": "cpu", "threads": 1, "steps_per_epoch": 5},
        "log": {"progress": False, "tensorboard": False, "every_steps": 5},
    }
    return config_with(data, **over)


def test_record_interval_bounds_the_records() -> None:
    assert record_interval(1000, 10, 200) == 10  # 100 records
    assert record_interval(100_000, 10, 200) == 500  # widened: at most 200
    assert record_interval(100_000, 0, 200) == record_interval(100, 10, 0) == 0
    for total in (1, 7, 999, 12345):
        every = record_interval(total, 3, 17)
        assert total // every <= 17


def test_choice_record_format_and_uniform_steps() -> None:
    s = ArchSampler(TINY_SPACE, "worstup", k=3, num_middle=2, seed=1, num_classes=10)
    groups = s.propose()
    scores = np.array([[0.1, 0.5, float("nan")], [0.3, 0.2, 0.9]])
    chosen = s.choose(groups, scores)
    rec = choice_record(s, 20, 10, "loss")
    assert rec is not None and rec["method"] == "worstup" and rec["k"] == 3 and rec["estimator"] == "loss"
    assert [g["picked"] for g in rec["groups"]] == [0, 1]  # the worst, NaN ignored
    assert rec["groups"][0]["scores"] == [0.1, 0.5, None]
    for g, mf, target in zip(rec["groups"], chosen.mflops, groups.targets, strict=True):
        assert len(g["genes"]) == len(g["mflops"]) == 3 and g["target"] == list(target)
        assert math.isclose(g["mflops"][g["picked"]], mf, abs_tol=1e-3)
        assert target[0] <= min(g["mflops"]) and max(g["mflops"]) <= target[1]
    json.dumps(rec, allow_nan=False)
    assert choice_record(s, 21, 10, "loss") is None  # not due
    s.warmup = True  # uniform: nothing chosen, nothing recorded
    s.choose(s.propose())
    assert choice_record(s, 30, 10, "loss") is None


def test_training_writes_a_bounded_record(tmp_path: Path) -> None:
    out = tmp_path / "run"
    train(_cfg(), out)  # 10 steps: a record every 2
    recs = read_choices(out / "metrics.jsonl")
    assert [r["global_step"] for r in recs] == [2, 4, 6, 8, 10]
    assert all(len(r["groups"]) == 2 and len(r["groups"][0]["scores"]) == 3 for r in recs)
    capped = tmp_path / "capped"
    train(_cfg(sampler__record_max=3), capped)  # widened to every 4 steps: 2 records
    assert [r["global_step"] for r in read_choices(capped / "metrics.jsonl")] == [4, 8]
    off = tmp_path / "off"
    train(_cfg(sampler__record_every=0), off)
    assert read_choices(off / "metrics.jsonl") == []

    res = run_cli("sampling-report", str(out), "--calib-batches", "1", "--calib-batch-size", "32",
                  "--max-images", "64", "--max-groups", "4", "--threads", "1", "--device", "cpu")
    assert res.code == 0, res.err
    assert "agreement" in res.out and "verdict    attentive sampling had" in res.out
    rep = json.loads((out / "sampling_report.json").read_text())
    assert rep["groups_measured"] == 4 and rep["groups_recorded"] == 10 and rep["images"] == 64
    assert rep["split"] == "holdout" and rep["chance"] == pytest.approx(1 / 3)
    lo, hi = rep["agreement"]["ci95"]
    assert 0 <= lo <= rep["agreement"]["rate"] <= hi <= 1
    for g in rep["groups"]:
        assert len(g["top1"]) == 3 and all(0 <= v <= 100 for v in g["top1"])

    bad = run_cli("sampling-report", str(off))
    assert bad.code == 2 and "no sampler records" in bad.err


def test_agreement_credit_and_interval() -> None:
    assert pick_credit([80.0, 90.0, 85.0], 1, "bestup") == 1.0
    assert pick_credit([80.0, 90.0, 85.0], 0, "worstup") == 1.0
    assert pick_credit([90.0, 90.0, 85.0], 1, "bestup") == 0.5
    assert pick_credit([80.0, 90.0, 85.0], 2, "bestup") == 0.0
    lo, hi = wilson(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-3) and hi == pytest.approx(0.7634, abs=1e-3)
    assert expected_range(3) == pytest.approx(1.693, abs=0.01)


def test_verdict_tells_spread_from_noise() -> None:
    about = {"method": "bestup", "k": 3, "estimator": "loss", "records": 1, "groups_recorded": 2, "steps": [1, 9]}

    def groups(spread: float) -> list[dict[str, Any]]:
        return [{"step": s, "target": [1, 1.25], "mflops": [1.1, 1.2, 1.1], "scores": [0, 1, 2], "picked": 2,
                 "top1": [90.0, 90.0 + spread / 2, 90.0 + spread]} for s in (1, 9)]

    wide = summarise(groups(5.0), about, 10_000)  # noise range about 0.5 points on 10,000 images
    assert wide["had_choice"] and wide["verdict"].startswith("attentive sampling had something")
    assert wide["agreement"]["rate"] == 1.0
    flat = summarise(groups(0.2), about, 10_000)
    assert not flat["had_choice"] and "nothing to choose between" in flat["verdict"]
    with pytest.raises(UserError):
        from attentivenas.train.choices import recorded_groups

        recorded_groups(Path("/nonexistent-run"))
