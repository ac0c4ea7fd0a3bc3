"""Stage 2's measurement protocol (the authors' published evaluation by default), hold-out records and
the authors' augmentation and init (issue 8, items 2-6)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from attentivenas.accuracy import (
    SubnetEvaluator,
    holdout_warning,
    split_of,
    stage2_data_config,
)
from attentivenas.config import (
    DataConfig,
    MeasureSettings,
    default_split,
    held_nothing_out,
    measure_from_flags,
    parse_config,
)
from attentivenas.data import build_data, eval_resize_of, holdout_record, train_transform
from attentivenas.errors import UserError
from attentivenas.nn import Supernet
from attentivenas.rng import seeded_cpu_rngs
from attentivenas.space import TINY_SPACE

from .cli_helpers import run_cli


def _folder(root: Path, train: int = 6, val: int = 5, size: tuple[int, int] = (40, 48)) -> Path:
    rng = np.random.default_rng(0)
    for split, n in (("train", train), ("val", val)):
        for cls in ("cat", "dog"):
            d = root / split / cls
            d.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(d / f"{i}.png")
    return root


# ----------------------------------------------------------------------------- data: augmentation, hold-out
def test_seeded_cpu_rngs_seeds_python_numpy_and_torch_and_restores_them() -> None:
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    before = (random.random(), np.random.rand(), float(torch.rand(1)))
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    with seeded_cpu_rngs(7):
        inside = (random.random(), np.random.rand(), float(torch.rand(1)))
    after = (random.random(), np.random.rand(), float(torch.rand(1)))
    with seeded_cpu_rngs(7):
        again = (random.random(), np.random.rand(), float(torch.rand(1)))
    assert after == before and inside == again and inside != before


@pytest.mark.parametrize("policy", ["v0", "randaugment", "imagenet", "none"])
def test_augmentations_are_seeded_per_sample(tmp_path: Path, policy: str) -> None:
    _folder(tmp_path, train=3, val=1)
    cfg = DataConfig(name="imagefolder", path=str(tmp_path), image_size=32, eval_resize=36, val_size=1,
                     auto_augment=policy, random_erasing=0.5)
    b = build_data(cfg, seed=3)
    x = b.train[0][0]
    assert x.shape == (3, 32, 32) and torch.isfinite(x).all()
    random.seed(99), np.random.seed(99)  # the global state must not matter
    assert torch.equal(b.train[0][0], x)
    b.train.set_epoch(1)
    assert not torch.equal(b.train[0][0], x)


def test_random_erasing_is_the_last_op() -> None:
    from attentivenas.data import IMAGENET_MEAN, IMAGENET_STD

    t = train_transform(DataConfig(name="imagenet", path="/x", random_erasing=0.25), IMAGENET_MEAN, IMAGENET_STD)
    assert type(t.ops[-1]).__name__ == "RandomErasing" and t.ops[-1].probability == 0.25


def test_no_holdout_trains_on_everything_and_is_recorded(tmp_path: Path) -> None:
    _folder(tmp_path, train=4, val=1)
    b = build_data(DataConfig(name="imagefolder", path=str(tmp_path), image_size=16, eval_resize=18,
                              val_fraction=0.0), seed=0)
    assert (len(b.train), len(b.val)) == (8, 0)
    assert (b.holdout["pool"], b.holdout["held_out"]) == (8, 0)
    d = build_data(DataConfig(name="digits", image_size=16, val_fraction=0.0))
    assert len(d.val) == 0 and len(d.train) + len(d.test) == 1797
    with pytest.raises(UserError, match="holds out no training images"):
        split_of(d, "holdout")


def test_holdout_record_names_the_images() -> None:
    a = holdout_record("imagenet", 100, [5, 3], 0)
    assert a == holdout_record("imagenet", 100, [3, 5], 0) and a["held_out"] == 2
    assert a["indices_sha256"] != holdout_record("imagenet", 100, [3, 6], 0)["indices_sha256"]


def test_a_recipe_that_holds_out_nothing_must_validate_on_test() -> None:
    with pytest.raises(Exception, match="eval.split=holdout measures on the hold-out"):
        parse_config({"data": {"name": "imagenet", "path": "/x", "val_fraction": 0.0}})
    c = parse_config({"data": {"name": "imagenet", "path": "/x", "val_fraction": 0.0}, "eval": {"split": "test"}})
    assert c.eval.split == "test"
    assert parse_config({"eval": {"split": "val"}}).eval.split == "holdout"  # the old name still loads


# ----------------------------------------------------------------------------- the protocol
def test_the_default_protocol_is_the_published_evaluation() -> None:
    p = MeasureSettings()
    assert (p.pipeline, p.calib_batches, p.calib_batch_size) == ("authors", 64, 256)
    assert (p.split, p.interpolation, p.calib_seed) == (None, None, None)  # the checkpoint's (resolved)
    with pytest.raises(UserError, match="--pipeline 'x' is not one of"):
        measure_from_flags(pipeline="x")
    with pytest.raises(UserError, match="--calib-batch-size must be >= 1"):
        measure_from_flags(calib_batch_size=0)


def test_stage2_images_are_224_crops_resized_in_the_network_unless_per_resolution() -> None:
    meta = {"config": {"data": {"name": "imagenet", "path": "/old", "val_fraction": 0.0, "split_seed": 4,
                                "interpolation": "bicubic"}}}
    authors = stage2_data_config("/new", TINY_SPACE, meta)
    assert (authors.name, authors.path, authors.image_size, eval_resize_of(authors)) == ("imagenet", "/new", 224, 256)
    assert (authors.interpolation, authors.val_fraction, authors.split_seed) == ("bilinear", 0.0, 4)  # splits kept
    per_res = stage2_data_config("/new", TINY_SPACE, meta, resolution=192, interpolation=None)
    assert (per_res.image_size, per_res.eval_resize, per_res.interpolation) == (192, 219, "bicubic")
    digits = stage2_data_config("digits", TINY_SPACE, None)
    assert (digits.name, digits.image_size) == ("digits", 32)


def test_val_search_and_val_report_are_disjoint_halves_of_the_test_split() -> None:
    b = build_data(DataConfig(name="digits", image_size=16))
    search, report = split_of(b, "val-search"), split_of(b, "test-report")
    assert len(search) + len(report) == len(b.test) and abs(len(search) - len(report)) <= 1
    assert set(search.indices).isdisjoint(report.indices)
    assert split_of(b, "test-search").indices == search.indices  # seeded: the same every time


def test_holdout_warnings() -> None:
    b = build_data(DataConfig(name="digits", image_size=16))
    assert holdout_warning({"holdout": dict(b.holdout)}, b, "holdout") is None
    assert holdout_warning({"source": "authors"}, b, "test") is None
    assert "authors' checkpoint trained on all of ImageNet train/" in holdout_warning({"source": "authors"}, b,
                                                                                      "holdout")
    assert "does not record" in holdout_warning({}, b, "holdout")
    none_held = dict(b.holdout, held_out=0)
    assert "held out none" in holdout_warning({"holdout": none_held}, b, "holdout")
    other = build_data(DataConfig(name="digits", image_size=16, split_seed=1))
    assert "is not the one the checkpoint held out" in holdout_warning({"holdout": dict(other.holdout)}, b, "holdout")


def test_per_resolution_evaluator_builds_one_loader_per_resolution(tmp_path: Path) -> None:
    _folder(tmp_path)
    torch.manual_seed(0)
    net = Supernet(TINY_SPACE, 2).eval()
    meta = {"config": {"data": {"name": "imagefolder", "path": str(tmp_path), "val_size": 2}}}
    p = MeasureSettings(split="val-report", pipeline="per-resolution", calib_batches=1, calib_batch_size=4)
    ev = SubnetEvaluator.for_supernet(net, meta, None, p, "cpu")
    assert ev.calib[0].shape == (4, 3, 224, 224)  # shared calibration crops at the recipe's 224
    small, big = TINY_SPACE.min_arch(), TINY_SPACE.max_arch()
    assert next(iter(ev.loader_for(small)))[0].shape[-1] == small.resolution
    assert next(iter(ev.loader_for(big)))[0].shape[-1] == big.resolution
    assert ev.evaluate(small)["samples"] == 5  # half of the 10 val/ images
    authors = SubnetEvaluator.for_supernet(net, meta, None, MeasureSettings(split="val-report", calib_batches=1,
                                                                     calib_batch_size=4), "cpu")
    assert next(iter(authors.loader_for(small)))[0].shape[-1] == 224


def test_our_checkpoints_record_their_holdout_and_stage2_checks_it(tmp_path: Path) -> None:
    from attentivenas.train import train

    from .synthetic import config_with

    cfg = config_with({"seed": 0, "space": "tiny", "data": {"name": "digits", "image_size": 32, "batch_size": 16},
                       "optim": {"epochs": 1}, "eval": {"every_epochs": 0},
                       "runtime": {"device": "cpu", "threads": 1, "steps_per_epoch": 1},
                       "log": {"progress": False, "tensorboard": False}})
    res = train(cfg, tmp_path / "run")
    ckpt = res.checkpoint
    common = ["evaluate", "--checkpoint", str(ckpt), "--arch", "min", "--calib-batches", "1",
              "--calib-batch-size", "16", "--device", "cpu", "--json"]
    r = run_cli(*common)
    assert r.code == 0 and "warning" not in r.err, r.err
    r = run_cli(*common, "--data", "digits")  # the same data named on the command line: its split is kept
    assert r.code == 0 and "warning" not in r.err, r.err
    out = json.loads(r.out)
    assert (out["pipeline"], out["split"], out["kind"], out["calib_seed"]) == ("authors", "holdout", "ours", 0)
    other = torch.load(ckpt, weights_only=True)
    assert other["holdout"]["held_out"] == 270


def test_published_calibration_defaults_reach_the_search_config() -> None:
    from attentivenas.config import SearchConfig

    acc = SearchConfig().accuracy
    assert (acc.calib_batches, acc.calib_batch_size, acc.pipeline) == (64, 256, "authors")
    assert (acc.split, acc.interpolation, acc.calib_seed) == (None, None, None)  # the checkpoint's


# ----------------------------------------------------------------------------- per checkpoint kind (issue 24)
ALPHANET_META = {"source": "authors", "kind": "alphanet", "epoch": 360}
ATTENTIVENAS_META = {"source": "authors", "kind": "attentivenas", "epoch": 360}


def _record(held_out: int, val_dir: str | None = None) -> dict:
    return {"dataset": "imagenet", "pool": 100, "held_out": held_out, "split_seed": 0, "indices_sha256": "x",
            "val_dir": val_dir}


@pytest.mark.parametrize(("meta", "seed", "expected"), [
    (ALPHANET_META, 0, ("test", "bicubic", 5)),  # AlphaNet's eval config: no interpolation (bicubic), seed 5
    (ATTENTIVENAS_META, 0, ("test", "bilinear", 2)),  # AttentiveNAS's: bilinear, seed 2
    ({"source": "authors"}, 0, ("test", "bilinear", 2)),  # authors' metadata without a kind: AttentiveNAS's
    ({}, 0, ("holdout", "bilinear", 0)),  # ours without a hold-out record: unchanged
    ({"kind": "ours", "holdout": _record(10)}, 3, ("holdout", "bilinear", 3)),  # ours: the command's seed
    ({"kind": "ours", "holdout": _record(0)}, 0, ("test", "bilinear", 0)),  # held out nothing
    ({"kind": "ours", "holdout": _record(0, "/data/heldout")}, 0, ("holdout", "bilinear", 0)),  # a held-out folder
])
def test_unset_settings_are_the_checkpoints(meta: dict, seed: int, expected: tuple) -> None:
    p = MeasureSettings(calib_batches=3).resolved(meta, seed)
    assert (p.split, p.interpolation, p.calib_seed) == expected and p.calib_batches == 3
    assert default_split(meta) == expected[0] and held_nothing_out(meta) == (expected[0] == "test")
    given = MeasureSettings(split="val-report", interpolation="bilinear", calib_seed=0).resolved(meta, seed)
    assert (given.split, given.interpolation, given.calib_seed) == ("val-report", "bilinear", 0)  # flags win


@pytest.mark.parametrize(("meta", "interpolation", "seed"), [
    (ALPHANET_META, "bicubic", 5), (ATTENTIVENAS_META, "bilinear", 2), ({}, "bilinear", 7)])
def test_the_evaluator_calibrates_as_the_checkpoints_authors_did(tmp_path: Path, meta: dict, interpolation: str,
                                                                  seed: int) -> None:
    from attentivenas.accuracy import resolve_data
    from attentivenas.nn import cache_calibration_batches

    _folder(tmp_path)
    torch.manual_seed(0)
    net = Supernet(TINY_SPACE, 2).eval()
    warnings: list[str] = []
    ev = SubnetEvaluator.for_supernet(net, meta, str(tmp_path), MeasureSettings(calib_batches=1, calib_batch_size=4), "cpu",
                                      seed=7, warn=warnings.append)
    assert ev.settings is not None
    assert (ev.settings.interpolation, ev.settings.calib_seed) == (interpolation, seed)
    expected_split = "holdout" if meta == {} else "test"
    assert ev.split == ev.settings.split == expected_split
    assert ("does not record" in warnings[0]) if meta == {} else warnings == []  # the default split: no warning

    def batches(interp: str, s: int) -> list[torch.Tensor]:
        bundle = resolve_data(str(tmp_path), TINY_SPACE, meta, seed=s, interpolation=interp)
        return cache_calibration_batches(bundle.train, 1, 4, s)

    assert torch.equal(ev.calib[0], batches(interpolation, seed)[0])  # these crops, this seed
    other = "bilinear" if interpolation == "bicubic" else "bicubic"
    assert not torch.equal(ev.calib[0], batches(other, seed)[0])
    assert not torch.equal(ev.calib[0], batches(interpolation, seed + 1)[0])


def test_an_explicit_holdout_on_the_authors_checkpoint_still_warns(tmp_path: Path) -> None:
    _folder(tmp_path)
    net = Supernet(TINY_SPACE, 2).eval()
    warnings: list[str] = []
    ev = SubnetEvaluator.for_supernet(net, ALPHANET_META, str(tmp_path), MeasureSettings(split="holdout", calib_batches=1,
                                      calib_batch_size=4), "cpu", warn=warnings.append)
    assert ev.split == "holdout" and len(warnings) == 1
    assert "the authors' checkpoint trained on all of ImageNet train/" in warnings[0]


def test_init_pytorch_is_the_default_and_kaiming_is_a_named_option() -> None:
    torch.manual_seed(0)
    authors = Supernet(TINY_SPACE, 10)
    torch.manual_seed(0)
    ours = Supernet(TINY_SPACE, 10, init="kaiming_fan_out")
    a, o = dict(authors.named_parameters()), dict(ours.named_parameters())
    key = next(k for k in a if "depth_conv" in k and a[k].dim() == 4)
    # kaiming fan-out counts every channel of a depthwise conv as fan-out: a much smaller std than PyTorch's default
    assert float(o[key].detach().std()) < float(a[key].detach().std()) / 1.5
    # the class keeps either init plain; model.zero_init_residual (default true, the authors' constructor)
    # then zeroes the last BN weight of every block (test_supernet counts the authors' 37)
    last_bn = [k for k in a if "point_linear.bn" in k and k.endswith("weight")]
    assert last_bn and all(a[k].all() and o[k].all() for k in last_bn)
    assert parse_config({}).model.zero_init_residual is True
    with pytest.raises(ValueError, match="init must be"):
        Supernet(TINY_SPACE, 10, init="xavier")
    assert parse_config({}).model.init == "pytorch"
