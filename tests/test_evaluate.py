"""BN recalibration on cached batches, accuracy of a subnet, and `attentivenas evaluate`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from attentivenas.accuracy import evaluate_arch, evaluate_subnet
from attentivenas.costs import count_flops, count_params
from attentivenas.nn import CalibrationDataError, Supernet, cache_calibration_batches, calibrate_bn, save_supernet
from attentivenas.space import TINY_SPACE

from .cli_helpers import run_cli


def _images(n: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_cache_from_dataset_is_seeded_and_bounded() -> None:
    ds = TensorDataset(_images(50, 8), torch.arange(50))
    a = cache_calibration_batches(ds, num_batches=3, batch_size=8, seed=1)
    b = cache_calibration_batches(ds, num_batches=3, batch_size=8, seed=1)
    c = cache_calibration_batches(ds, num_batches=3, batch_size=8, seed=2)
    assert [t.shape for t in a] == [torch.Size([8, 3, 8, 8])] * 3
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(a[0], c[0])
    # drawn without replacement: 24 distinct images of the dataset
    flat = torch.cat(a).flatten(1)
    assert len({tuple(row[:4].tolist()) for row in flat}) == 24
    small = cache_calibration_batches(ds, num_batches=64, batch_size=16, seed=0)
    assert [len(t) for t in small] == [16, 16, 16, 2]  # fewer images than asked: all of them, once


def test_cache_from_loader_takes_first_batches() -> None:
    ds = TensorDataset(_images(20, 8), torch.arange(20))
    loader = DataLoader(ds, batch_size=6, shuffle=False)
    got = cache_calibration_batches(loader, num_batches=2)
    assert len(got) == 2 and torch.equal(got[1], ds.tensors[0][6:12])


def test_empty_calibration_data_is_a_user_error(tiny_net: Supernet) -> None:
    empty = TensorDataset(torch.empty(0, 3, 8, 8), torch.empty(0, dtype=torch.long))
    with pytest.raises(CalibrationDataError, match="calibration data is empty"):
        cache_calibration_batches(empty)
    with pytest.raises(CalibrationDataError, match="calibration data is empty"):
        cache_calibration_batches(DataLoader(empty, batch_size=4))
    with pytest.raises(CalibrationDataError, match="calibration data is empty"):
        calibrate_bn(tiny_net.extract(TINY_SPACE.min_arch()), [])
    with pytest.raises(CalibrationDataError, match=">= 1"):
        cache_calibration_batches(TensorDataset(_images(4, 8)), num_batches=0)


def test_calibrate_bn_is_cumulative_average(tiny_net: Supernet) -> None:
    sub = tiny_net.extract(TINY_SPACE.min_arch())
    bn = sub.first_conv.bn
    bn.momentum = 0.1
    sub.eval()
    batches = [_images(4, 24, seed=s) for s in range(3)]
    calibrate_bn(sub, batches)
    with torch.no_grad():
        outs = [sub.first_conv.conv(x) for x in batches]
    mean = torch.stack([o.mean((0, 2, 3)) for o in outs]).mean(0)
    var = torch.stack([o.var((0, 2, 3), unbiased=True) for o in outs]).mean(0)
    torch.testing.assert_close(bn.running_mean, mean, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(bn.running_var, var, rtol=1e-4, atol=1e-5)
    assert int(bn.num_batches_tracked) == 3
    assert bn.momentum == 0.1 and not sub.training and not bn.training  # restored


def test_calibrating_supernet_equals_calibrating_subnet(tiny_net: Supernet) -> None:
    arch = TINY_SPACE.sample(np.random.default_rng(4))
    batches = [_images(4, 32, seed=s) for s in range(2)]
    direct = calibrate_bn(tiny_net.extract(arch), batches)
    net = Supernet(TINY_SPACE, 10)
    net.load_state_dict(tiny_net.state_dict())
    net.set_arch(arch)
    net.set_regularization(dropout=0.5, drop_connect=0.5)  # must stay off while calibrating
    calibrate_bn(net, batches)
    via_supernet = net.extract(arch)
    for (name, a), b in zip(direct.named_buffers(), via_supernet.buffers(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=name)


def test_evaluate_subnet_top1_top5_loss(tiny_net: Supernet) -> None:
    sub = tiny_net.extract(TINY_SPACE.min_arch())
    x = _images(30, 24, seed=7)
    with torch.no_grad():
        logits = sub(x)
    own = logits.argmax(1)
    res = evaluate_subnet(sub, TensorDataset(x, own), batch_size=8)
    assert res["top1"] == 100.0 and res["top5"] == 100.0 and res["samples"] == 30
    assert res["loss"] == pytest.approx(float(F.cross_entropy(logits, own)), rel=1e-5)
    worst = logits.argmin(1)  # never in the top 5 of 10 classes
    res = evaluate_subnet(sub, DataLoader(TensorDataset(x, worst), batch_size=7))
    assert res["top1"] == 0.0 and res["top5"] == 0.0
    fifth = logits.topk(5, 1).indices[:, 4]  # in the top 5 but not top 1
    res = evaluate_subnet(sub, TensorDataset(x, fifth))
    assert res["top1"] == 0.0 and res["top5"] == 100.0


def test_evaluate_arch_leaves_supernet_stats_alone(tiny_net: Supernet) -> None:
    arch = TINY_SPACE.sample(np.random.default_rng(5))
    before = {k: v.clone() for k, v in tiny_net.state_dict().items()}
    val = TensorDataset(_images(12, 32, seed=9), torch.arange(12) % 10)
    res = evaluate_arch(tiny_net, arch, [_images(8, 32, seed=1)], val, "cpu")
    assert all(torch.equal(before[k], v) for k, v in tiny_net.state_dict().items())
    assert res["mflops"] == pytest.approx(count_flops(TINY_SPACE, arch, 10))
    assert res["params_m"] == pytest.approx(count_params(TINY_SPACE, arch, 10) / 1e6)
    sub = calibrate_bn(tiny_net.extract(arch), [_images(8, 32, seed=1)])
    assert res["top1"] == evaluate_subnet(sub, val)["top1"]
    assert res["arch"] == arch.to_dict()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tiny_net: Supernet):
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_supernet(path, tiny_net)
    return path


def test_cli_evaluate_json_on_digits_val(checkpoint) -> None:
    r = run_cli("evaluate", "--checkpoint", str(checkpoint), "--arch", "min", "--data", "digits",
                "--calib-batches", "2", "--calib-batch-size", "16", "--device", "cpu", "--json")
    assert r.code == 0, r.err
    out = json.loads(r.out)
    assert {"top1", "top5", "mflops", "params_m"} <= set(out)
    assert out["split"] == "holdout" and out["samples"] == 270 and out["calib_batches"] == 2  # 15% of 1797 digits
    assert 0.0 <= out["top1"] <= out["top5"] <= 100.0
    assert out["mflops"] == pytest.approx(count_flops(TINY_SPACE, TINY_SPACE.min_arch(), 10), abs=1e-3)


def test_cli_evaluate_names_the_split_and_gives_the_interval(checkpoint) -> None:
    """Issue 38: the split's printed name and a Wilson 95% interval on the images measured."""
    from attentivenas.accuracy import wilson_interval

    base = ["evaluate", "--checkpoint", str(checkpoint), "--arch", "min", "--data", "digits", "--split", "test",
            "--max-images", "50", "--calib-batches", "1", "--calib-batch-size", "16", "--device", "cpu"]
    r = run_cli(*base)
    assert r.code == 0, r.err
    top1 = json.loads(run_cli(*base, "--json").out)["top1"]
    lo, hi = wilson_interval(top1, 50)
    assert "split     test: test (50 images)" in r.out
    assert f"(Wilson 95% interval {lo:.2f}-{hi:.2f} on 50 images)" in r.out


@pytest.mark.parametrize(("args", "message"), [
    (["--arch", "min", "--data", "digits", "--calib-batches", "0"], "--calib-batches must be >= 1"),
    (["--arch", "a0", "--data", "digits"], "not in space 'tiny'"),
    (["--arch", "min"], "pass --data"),
    (["--arch", "min", "--data", "/nonexistent/imagenet"], "not found"),
])
def test_cli_evaluate_bad_input_exits_2(checkpoint, args, message) -> None:
    r = run_cli("evaluate", "--checkpoint", str(checkpoint), "--device", "cpu", *args)
    assert r.code == 2 and message in r.err and len(r.err.strip().splitlines()) == 1
    assert r.out == ""


def test_cli_evaluate_on_the_test_split_and_capped(checkpoint) -> None:
    r = run_cli("evaluate", "--checkpoint", str(checkpoint), "--arch", "min", "--data", "digits", "--split", "test",
                "--max-images", "50", "--calib-batches", "1", "--calib-batch-size", "16", "--device", "cpu", "--json")
    assert r.code == 0, r.err
    out = json.loads(r.out)
    assert out["split"] == "test" and out["samples"] == 50
    r = run_cli("evaluate", "--checkpoint", str(checkpoint), "--arch", "min", "--data", "digits", "--split", "train")
    assert r.code == 2 and "--split 'train' is not one of ['holdout', 'test', 'val', 'val-search'" in r.err
    r = run_cli("evaluate", "--checkpoint", str(checkpoint), "--data", "digits")
    assert r.code == 2 and "give exactly one of --arch ARCH or --published" in r.err


def _image_folder(root, classes: int) -> None:
    from PIL import Image

    for split in ("train", "val"):
        for c in range(classes):
            folder = root / split / f"n{c:05d}"
            folder.mkdir(parents=True)
            Image.new("RGB", (8, 8), (c % 256, (7 * c) % 256, (13 * c) % 256)).save(folder / "0.png")


@pytest.fixture(scope="module")
def alphanet_checkpoint(tmp_path_factory) -> Path:
    """A checkpoint in the authors' layout whose args are AlphaNet's training config."""
    from .official_reference import ALPHANET_ARGS, official_keys, random_authors_state, save_authors_checkpoint

    path = tmp_path_factory.mktemp("alphanet") / "alphanet_pretrained.pth.tar"
    save_authors_checkpoint(path, random_authors_state(official_keys(), seed=1), args=ALPHANET_ARGS)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["attentivenas", "alphanet"])
def test_cli_evaluate_published_table_on_an_authors_checkpoint(authors_checkpoint, alphanet_checkpoint, tmp_path,
                                                               kind: str) -> None:
    from attentivenas.space import NAMED_ARCHS, PUBLISHED_MFLOPS, PUBLISHED_TOP1
    from attentivenas.space.presets import ALPHANET_TOP1

    _image_folder(tmp_path, 1000)
    ckpt = authors_checkpoint[0] if kind == "attentivenas" else alphanet_checkpoint
    args = ["evaluate", "--checkpoint", str(ckpt), "--published", "--data", str(tmp_path),
            "--max-images", "2", "--calib-batches", "1", "--calib-batch-size", "2", "--device", "cpu"]
    r = run_cli(*args, "--json")
    assert r.code == 0, r.err
    assert "warning" not in r.err  # no --split: the test split of a checkpoint that held nothing out
    out = json.loads(r.out)
    expected = {"attentivenas": ("AttentiveNAS", "bilinear", 2, PUBLISHED_TOP1),
                "alphanet": ("AlphaNet", "bicubic", 5, ALPHANET_TOP1)}[kind]
    assert (out["kind"], out["split"], out["published_source"], out["interpolation"], out["calib_seed"]) == (
        kind, "test", *expected[:3])
    assert [row["model"] for row in out["rows"]] == list(NAMED_ARCHS)
    for row in out["rows"]:
        assert row["mflops"] == pytest.approx(PUBLISHED_MFLOPS[row["model"]], abs=0.01)
        assert row["published_top1"] == expected[3].get(row["model"]) and row["samples"] == 2
        if row["published_top1"] is None:
            assert row["diff"] is None
        else:
            assert row["diff"] == pytest.approx(row["top1"] - row["published_top1"])
        assert 0.0 <= row["top1"] <= row["top5"] <= 100.0
    rows = {row["model"]: row["published_top1"] for row in out["rows"]}
    if kind == "alphanet":  # AlphaNet's README: A0-A4, its own A5 (small), A5-1 (base), A6; none for AttentiveNAS's A5
        assert [rows[m] for m in ("a0", "a1", "a2", "a3", "a4", "alphanet-a5", "a6", "alphanet-a5-base")] == [
            77.87, 78.94, 79.20, 79.41, 80.01, 80.29, 80.78, 80.62]
        assert rows["a5"] is None
    r = run_cli(*args)
    assert r.code == 0 and "alphanet-a5-base" in r.out and "80.62" in r.out
    title = {"attentivenas": "AttentiveNAS's checkpoint", "alphanet": "AlphaNet's checkpoint"}[kind]
    text = " ".join(r.out.split())  # the title and caption as words, wherever the table wraps them
    assert title in text and f"published: {expected[0]}'s top-1" in text and f"(seed {expected[2]})" in text


def test_predictor_build_and_search_measure_on_the_split_asked_for(checkpoint, tmp_path) -> None:
    common = ["--data", "digits", "--calib-batches", "1", "--calib-batch-size", "64", "--device", "cpu"]
    accs = {}
    for split in ("holdout", "test"):
        r = run_cli("evaluate", "--checkpoint", str(checkpoint), "--arch", "min", "--split", split, *common, "--json")
        assert r.code == 0, r.err
        accs[split] = json.loads(r.out)["top1"]
        data = tmp_path / f"{split}.jsonl"
        r = run_cli("predictor", "build", "--checkpoint", str(checkpoint), "--out", str(data), "--num-archs", "2",
                    "--split", split, *common)
        assert r.code == 0, r.err
        records = [json.loads(line) for line in data.read_text().splitlines()[1:]]
        smallest = next(rec for rec in records if rec["arch"] == TINY_SPACE.min_arch().to_dict())
        assert smallest["accuracy"] == pytest.approx(accs[split], abs=1e-3)
    assert accs["holdout"] != accs["test"]
    r = run_cli("search", "--checkpoint", str(checkpoint), "--split", "test", "--pop-size", "4", "--generations", "1",
                *common, "--out", str(tmp_path / "s"), "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["settings"]["accuracy"]["split"] == "test"


def test_search_on_one_half_of_the_test_split_reports_on_the_other(checkpoint, tmp_path) -> None:
    common = ["--data", "digits", "--calib-batches", "1", "--calib-batch-size", "64", "--device", "cpu"]
    out = tmp_path / "s"
    r = run_cli("search", "--checkpoint", str(checkpoint), "--split", "val-search", "--report-split", "val-report",
                "--pop-size", "4", "--generations", "1", *common, "--out", str(out), "--json")
    assert r.code == 0, r.err
    pareto = json.loads((out / "pareto.json").read_text())
    assert pareto and all(e["report_split"] == "val-report" for e in pareto)
    first = pareto[0]
    r = run_cli("evaluate", "--checkpoint", str(checkpoint), "--arch", json.dumps(first["arch"]),
                "--split", "val-report", *common, "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["top1"] == pytest.approx(first["report_top1"], abs=1e-3)
    assert "report_top1" in (out / "pareto.csv").read_text().splitlines()[0]
    r = run_cli("search", "--checkpoint", str(checkpoint), "--split", "val-search", "--report-split", "test",
                *common, "--out", str(tmp_path / "bad"))
    assert r.code == 2 and "accuracy.report_split=test overlaps accuracy.split=val-search" in r.err


def test_split_overlap() -> None:
    from attentivenas.config.search import splits_overlap

    assert splits_overlap("val", "test") and splits_overlap("test", "val-report")
    assert not splits_overlap("val-search", "test-report") and not splits_overlap("holdout", "test")
    assert splits_overlap("val-search", "test-search")
