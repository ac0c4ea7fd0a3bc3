"""Stage 2 measures an authors' checkpoint as its authors did (issue 24): AlphaNet's (bicubic, calibration seed 5)
or AttentiveNAS's (bilinear, seed 2), on the test split when the checkpoint held nothing out; flags still win."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from attentivenas.accuracy import resolve_data
from attentivenas.config import DataConfig
from attentivenas.data import build_data
from attentivenas.nn import Supernet, cache_calibration_batches, calibrate_bn, load_supernet, save_supernet
from attentivenas.space import TINY_SPACE

from .cli_helpers import run_cli
from .official_reference import ALPHANET_ARGS, ATTENTIVENAS_ARGS, save_small_authors_checkpoint

SMALL = ["--data", "digits", "--calib-batches", "1", "--calib-batch-size", "16", "--device", "cpu"]


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory) -> dict[str, Path]:
    """Tiny-space checkpoints (10 classes): the authors' layout with AlphaNet's or AttentiveNAS's args, and ours
    with a hold-out record of the digits' hold-out (``holdout``) or of none (``nothing-held-out``)."""
    root = tmp_path_factory.mktemp("kinds")
    record = dict(build_data(DataConfig(name="digits", image_size=32)).holdout)
    torch.manual_seed(0)
    net = Supernet(TINY_SPACE, 10).eval()
    return {
        "alphanet": save_small_authors_checkpoint(root / "alphanet.pth.tar", TINY_SPACE, 10, ALPHANET_ARGS),
        "attentivenas": save_small_authors_checkpoint(root / "attentivenas.pth.tar", TINY_SPACE, 10,
                                                      ATTENTIVENAS_ARGS),
        "holdout": save_supernet(root / "holdout.pt", net, extra={"holdout": record}),
        "nothing-held-out": save_supernet(root / "none.pt", net, extra={"holdout": dict(record, held_out=0)}),
    }


def _evaluate(ckpt: Path, *flags: str) -> tuple[dict, str]:
    r = run_cli("evaluate", "--checkpoint", str(ckpt), "--arch", "min", *SMALL, "--json", *flags)
    assert r.code == 0, r.err
    return json.loads(r.out), r.err


@pytest.mark.parametrize(("name", "expected"), [
    ("alphanet", ("alphanet", "test", "bicubic", 5)),
    ("attentivenas", ("attentivenas", "test", "bilinear", 2)),
    ("holdout", ("ours", "holdout", "bilinear", 0)),
    ("nothing-held-out", ("ours", "test", "bilinear", 0)),
])
def test_evaluate_defaults_follow_the_checkpoint(ckpts, name: str, expected: tuple) -> None:
    out, err = _evaluate(ckpts[name])
    assert (out["kind"], out["split"], out["interpolation"], out["calib_seed"]) == expected
    assert "warning" not in err  # the default split never holds images the checkpoint trained on
    assert out["samples"] == 270  # the digits: 270 held out, 270 in the test split


def test_explicit_flags_win_and_an_explicit_holdout_still_warns(ckpts) -> None:
    out, err = _evaluate(ckpts["alphanet"], "--split", "holdout", "--interpolation", "bilinear", "--calib-seed", "0")
    assert (out["kind"], out["split"], out["interpolation"], out["calib_seed"]) == ("alphanet", "holdout", "bilinear",
                                                                                   0)
    assert "warning: --split holdout: the authors' checkpoint trained on all of ImageNet train/" in err
    out, _ = _evaluate(ckpts["attentivenas"], "--seed", "7")  # --seed: the same option as --calib-seed
    assert (out["interpolation"], out["calib_seed"]) == ("bilinear", 7)
    out, err = _evaluate(ckpts["nothing-held-out"], "--split", "holdout", "--data", "digits")
    assert out["split"] == "holdout" and "held out none" in err


def test_the_calibration_seed_picks_the_calibration_batches(ckpts) -> None:
    default, _ = _evaluate(ckpts["alphanet"])
    same, _ = _evaluate(ckpts["alphanet"], "--split", "test", "--interpolation", "bicubic", "--calib-seed", "5")
    assert same["top1"] == default["top1"] and same["loss"] == default["loss"]
    other, _ = _evaluate(ckpts["alphanet"], "--calib-seed", "6")
    assert other["loss"] != default["loss"]  # other crops: other BN statistics


def test_predictor_build_measures_as_evaluate_does(ckpts, tmp_path: Path) -> None:
    out, _ = _evaluate(ckpts["alphanet"])
    data = tmp_path / "archs.jsonl"
    r = run_cli("predictor", "build", "--checkpoint", str(ckpts["alphanet"]), "--out", str(data), "--num-archs", "2",
                *SMALL)
    assert r.code == 0, r.err
    assert "warning" not in r.err
    records = [json.loads(line) for line in data.read_text().splitlines()[1:]]
    smallest = next(rec for rec in records if rec["arch"] == TINY_SPACE.min_arch().to_dict())
    assert smallest["accuracy"] == pytest.approx(out["top1"], abs=1e-3)  # test split, bicubic, seed 5


def test_search_records_the_settings_it_measured_with(ckpts, tmp_path: Path) -> None:
    common = ["--accuracy", "measured", "--pop-size", "4", "--generations", "1", *SMALL, "accuracy.max_images=40",
              "--json"]
    r = run_cli("search", "--checkpoint", str(ckpts["alphanet"]), "--out", str(tmp_path / "a"), *common)
    assert r.code == 0, r.err
    acc = json.loads(r.out)["settings"]["accuracy"]
    assert (acc["split"], acc["interpolation"], acc["calib_seed"]) == ("test", "bicubic", 5)
    assert "calib_seed: 5" in (tmp_path / "a" / "config.yaml").read_text()
    r = run_cli("search", "--checkpoint", str(ckpts["alphanet"]), "--out", str(tmp_path / "b"), *common,
                "--calib-seed", "1", "--split", "val-search")
    assert r.code == 0, r.err
    acc = json.loads(r.out)["settings"]["accuracy"]
    assert (acc["split"], acc["interpolation"], acc["calib_seed"]) == ("val-search", "bicubic", 1)
    r = run_cli("search", "--checkpoint", str(ckpts["alphanet"]), "--out", str(tmp_path / "c"), *common,
                "--report-split", "val-report")  # the default split (test) holds the report half
    assert r.code == 2 and "accuracy.report_split=val-report overlaps accuracy.split=test" in r.err


def test_export_calibrates_on_the_checkpoints_batches(ckpts, tmp_path: Path) -> None:
    out = tmp_path / "min.pt2"
    r = run_cli("export", "--checkpoint", str(ckpts["alphanet"]), "--arch", "min", "--out", str(out),
                "--calibrate-bn", "--data", "digits", "--calib-batches", "1", "--calib-batch-size", "16")
    assert r.code == 0, r.err
    net, meta = load_supernet(ckpts["alphanet"])
    bundle = resolve_data("digits", net.space, meta, seed=5, interpolation="bicubic")
    expected = calibrate_bn(net.extract(TINY_SPACE.min_arch()), cache_calibration_batches(bundle.train, 1, 16, 5))
    exported = dict(torch.export.load(str(out)).module().state_dict())  # the default format: torch-export
    means = [k for k in expected.state_dict() if k.endswith("running_mean")]
    assert means and all(torch.allclose(exported[k], expected.state_dict()[k]) for k in means)
    r = run_cli("export", "--checkpoint", str(ckpts["alphanet"]), "--arch", "min", "--out", str(out),
                "--calibrate-bn", "--data", "digits", "--calib-batches", "1", "--calib-batch-size", "16",
                "--calib-seed", "6")
    assert r.code == 0, r.err
    exported = dict(torch.export.load(str(out)).module().state_dict())
    assert not all(torch.allclose(exported[k], expected.state_dict()[k]) for k in means)
