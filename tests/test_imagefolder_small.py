"""Issue 38's data path: the augmentation keys and their small-image defaults, BN calibration on the
evaluation transform, eval_resize following image_size, the start-of-run warnings, the hold-out's
floor and bounds, ``attentivenas init`` and the split names in ``train``'s output."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from attentivenas.config import DataConfig, load_config, parse_config
from attentivenas.data import (
    augment_plan,
    build_data,
    data_warnings,
    describe_pipeline,
    eval_resize_of,
    holdout_count,
    split_lines,
    tensor_train_transform,
    train_transform,
)
from attentivenas.data.inspect import inspect_folder
from attentivenas.errors import ConfigError
from tests.cli_helpers import run_cli
from tests.synthetic import write_small_imagefolder


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_small_imagefolder(tmp_path_factory.mktemp("small") / "images", 6, 2, size=16, seed=0)


def _folder_cfg(path: Path, **kw: object) -> DataConfig:
    return DataConfig(name="imagefolder", path=str(path), image_size=16, **kw)


def test_crop_keys_are_validated() -> None:
    with pytest.raises(ConfigError, match="data.crop_scale"):
        parse_config({"data": {"crop_scale": [0.5, 0.2]}})
    with pytest.raises(ConfigError, match="random_shift=2 is the padding of data.crop=pad_random_crop"):
        parse_config({"data": {"crop": "none", "random_shift": 2}})
    with pytest.raises(ConfigError, match="data.crop"):
        parse_config({"data": {"crop": "random"}})
    with pytest.raises(ConfigError, match="data.calib_transform"):
        parse_config({"data": {"calib_transform": "test"}})


def test_small_images_get_no_random_resized_crop_and_large_ones_keep_it(folder: Path) -> None:
    small = augment_plan(_folder_cfg(folder))
    assert (small.crop, small.auto_augment, small.calib, small.eval_resize) == ("none", "none", "eval", 16)
    ops = [type(op).__name__ for op in train_transform(_folder_cfg(folder), (0.5,) * 3, (0.5,) * 3).ops]
    assert "RandomResizedCrop" not in ops and ops[:2] == ["Resize", "CenterCrop"]
    large = augment_plan(DataConfig(name="imagefolder", path="x"))  # 224: ImageNet's augmentation
    assert (large.crop, large.auto_augment, large.eval_resize, large.crop_scale) == ("random_resized", "v0", 256,
                                                                                   (0.08, 1.0))
    chosen = augment_plan(_folder_cfg(folder, crop="random_resized", crop_scale=(0.5, 1.0)))
    assert chosen.crop == "random_resized" and chosen.crop_scale == (0.5, 1.0)
    padded = augment_plan(_folder_cfg(folder, random_shift=2))
    assert (padded.crop, padded.pad) == ("pad_random_crop", 2)
    assert "RandomCrop" in [type(op).__name__ for op in train_transform(_folder_cfg(folder, random_shift=2),
                                                                          (0.5,) * 3, (0.5,) * 3).ops]


def test_the_built_in_loaders_keep_their_augmentation() -> None:
    digits = augment_plan(DataConfig(name="digits", image_size=32, random_shift=2))
    assert (digits.crop, digits.pad, digits.flip, digits.auto_augment, digits.calib) == (
        "pad_random_crop", 2, False, "none", "train")
    fashion = augment_plan(DataConfig(name="fashion_mnist"))
    assert (fashion.crop, fashion.flip, fashion.auto_augment) == ("none", True, "none")
    # the quick start's digits: the same single op as before (a 2-pixel shift filled with the background)
    ops = tensor_train_transform(DataConfig(name="digits", image_size=32, random_shift=2), 0.5, 0.5).ops
    assert [type(op).__name__ for op in ops] == ["RandomShift"] and (ops[0].max_shift, ops[0].fill) == (2, -1.0)
    ops = tensor_train_transform(DataConfig(name="fashion_mnist"), 0.286, 0.353).ops
    assert [type(op).__name__ for op in ops] == ["RandomFlip"]
    assert tensor_train_transform(DataConfig(name="digits", image_size=32), 0.5, 0.5) is None


def test_every_key_applies_to_the_in_memory_digits() -> None:
    cfg = DataConfig(name="digits", image_size=32, crop="random_resized", crop_scale=(0.5, 1.0), random_flip=True,
                     auto_augment="cifar10", calib_transform="eval")
    b = build_data(cfg, seed=0)
    names = [type(op).__name__ for op in b.train.transform.ops]
    assert names == ["TensorRandomResizedCrop", "RandomFlip", "ViaPIL"]
    x = b.train[0][0]
    assert x.shape == (3, 32, 32) and torch.isfinite(x).all()
    b.train.set_epoch(1)
    assert not torch.equal(x, b.train[0][0])  # augmented, differently per epoch
    assert b.calibration_set() is b.calib and b.calib is b.train.base  # the same images, not augmented


def test_eval_resize_follows_image_size_unless_set() -> None:
    assert eval_resize_of(DataConfig(name="imagefolder", path="x", image_size=28)) == 28
    assert eval_resize_of(DataConfig(name="imagefolder", path="x", image_size=224)) == 256
    assert eval_resize_of(DataConfig(name="imagefolder", path="x", image_size=28, eval_resize=40)) == 40
    text = describe_pipeline(DataConfig(name="imagefolder", path="x", image_size=28))
    assert text["eval"] == "Resize 28 / CenterCrop 28 (bicubic)" and "256" not in str(text)


def test_bn_calibration_reads_the_evaluation_transform(folder: Path) -> None:
    b = build_data(_folder_cfg(folder, crop="random_resized"), seed=0)
    assert b.calib is not None and b.calibration_set() is b.calib
    assert b.calib.indices == b.train.indices and not b.calib.random
    x0, x1 = b.calib[0][0], b.calib[0][0]
    assert torch.equal(x0, x1)  # no random crop in the calibration images
    assert torch.equal(x0, b.val.transform(b.calib.base[b.calib.indices[0]][0]))  # the evaluation transform
    authors = build_data(_folder_cfg(folder, crop="random_resized", calib_transform="train"), seed=0)
    assert authors.calib is None and authors.calibration_set() is authors.train


def test_warnings_for_a_cropping_evaluation_and_a_small_holdout() -> None:
    cfg = DataConfig(name="imagefolder", path="x", image_size=28, eval_resize=256)
    crop, small = data_warnings(cfg, 60)
    assert "central 1% of each image" in crop and "data.eval_resize" in crop
    assert small.startswith("hold-out has 60 images: one image is 1.7 points")
    assert data_warnings(DataConfig(name="imagefolder", path="x", image_size=28), 600) == []
    line = split_lines(cfg, 2400, 600, 1000)[0]
    assert "test = x/val (1,000 images)" in line and "hold-out = 600 images carved from x/train" in line


def test_the_holdout_has_a_floor_and_bounds() -> None:
    cfg = DataConfig(name="imagefolder", path="x")
    assert holdout_count(cfg, 3000, 10) == 600  # not 2% (60): min(1000, a fifth)
    assert holdout_count(cfg, 100_000, 10) == 2000  # the fraction where it is more
    for frac in (0.001, 0.9999):
        with pytest.raises(ConfigError, match="every class needs an image on each side"):
            holdout_count(DataConfig(name="imagefolder", path="x", val_fraction=frac), 3000, 10)


def test_holdout_fractions_out_of_bounds_exit_2(tmp_path: Path) -> None:
    for frac in (0.005, 0.9999):  # issue 42: tracebacks before (scikit-learn's split of the digits)
        with pytest.raises(ConfigError, match=r"data.val_fraction=.* every class needs an image on each side"):
            build_data(DataConfig(name="digits", image_size=32, val_fraction=frac))
    res = run_cli("train", "--config", "configs/quickstart.yaml", "data.val_fraction=0.005", "--out",
                  str(tmp_path / "run"))
    assert res.code == 2 and "Traceback" not in res.err
    assert res.err.count("\n") == 1 and "data.val_fraction" in res.err and "each side" in res.err


def test_init_writes_a_config_that_matches_the_folder(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "cfg.yaml"
    res = run_cli("init", "--data", str(folder), "--out", str(out))
    assert res.code == 0, res.err
    assert "60 images in 10 classes (6-6 per class)" in res.err and "16x16" in res.err
    cfg = load_config(out)
    assert (cfg.space, cfg.data.name, cfg.data.image_size, cfg.data.eval_resize) == ("tiny", "imagefolder", 16, None)
    assert Path(str(cfg.data.path)) == folder.resolve() and cfg.data.crop == "none"
    assert cfg.data.val_size == 12 and "# " in out.read_text()  # commented
    report = inspect_folder(folder)
    assert len(report.classes) == 10 and report.image_side == 16 and report.test.images == 20
    assert run_cli("init", "--data", str(folder), "--out", str(out)).code == 2  # no silent overwrite
    bad = run_cli("init", "--data", str(folder / "train"), "--out", str(tmp_path / "x.yaml"))
    assert bad.code == 2 and "val/" in bad.err


def test_train_names_its_splits(folder: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "cfg.yaml"
    assert run_cli("init", "--data", str(folder), "--out", str(cfg)).code == 0
    with pytest.warns(RuntimeWarning, match="hold-out has 12 images: one image is 8.3 points"):
        res = run_cli("train", "--config", str(cfg), "--out", str(tmp_path / "run"), "data.batch_size=8",
                      "optim.epochs=1", "runtime.steps_per_epoch=1", "eval.calib_batches=1",
                      "sampler.prior_samples=200", "runtime.threads=1", "log.progress=false", "runtime.device=cpu")
    assert res.code == 0, res.err
    assert f"data: test = {folder.resolve()}/val (20 images); hold-out = 12 images carved from" in res.err
    assert "data: train transform: Resize 16 / CenterCrop 16 (bicubic)" in res.err
    assert "hold-out top-1 min" in res.err and "val top-1" not in res.err
    start = yaml.safe_load((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
    assert start["data_pipeline"]["eval"] == "Resize 16 / CenterCrop 16 (bicubic)"
    assert start["splits"] == {"train": 48, "holdout": 12, "test": 20}
