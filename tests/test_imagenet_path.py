"""The ImageNet path at a real size: a generated 1000-class ImageFolder through the recipe's loaders,
one training step of ``configs/attentivenas_imagenet.yaml`` and ``evaluate --published --split val``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from attentivenas.cli import _one_line
from attentivenas.config import load_config
from attentivenas.data import build_data, train_loader
from attentivenas.errors import DataError

from .cli_helpers import run_cli

RECIPE = Path(__file__).resolve().parents[1] / "configs" / "attentivenas_imagenet.yaml"
CLASSES = 1000


@pytest.fixture(scope="module")
def imagenet_like(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1000 class folders in ``train/`` and ``val/``, one small JPEG of its own size in each."""
    root = tmp_path_factory.mktemp("imagenet")
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in range(CLASSES):
            folder = root / split / f"n{c:08d}"
            folder.mkdir(parents=True)
            w, h = (int(v) for v in rng.integers(40, 80, 2))
            yy, xx = np.mgrid[0:h, 0:w]
            img = np.stack([xx * 255 / w, yy * 255 / h, np.full_like(xx, c % 256)], -1) + rng.normal(0, 25, (h, w, 3))
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(folder / f"{split}_{c}.JPEG", quality=85)
    return root


def _recipe_loader(root: Path, overrides: list[str]) -> torch.utils.data.DataLoader:
    cfg = load_config(RECIPE, [f"data.path={root}", "data.batch_size=50", "data.num_workers=2", *overrides])
    bundle = build_data(cfg.data, cfg.seed)
    assert bundle.num_classes == CLASSES and len(bundle.train) == CLASSES  # all of train/, as the authors
    return train_loader(bundle.train, cfg.data.batch_size, seed=cfg.seed, epoch=0, num_workers=cfg.data.num_workers)


@pytest.mark.slow
def test_every_training_image_goes_through_the_recipes_transform_in_workers(imagenet_like: Path) -> None:
    seen = 0
    for x, y in _recipe_loader(imagenet_like, []):
        assert x.shape == (50, 3, 224, 224) and torch.isfinite(x).all()
        assert bool((x.flatten(1).std(1) > 0).all()) and int(y.max()) < CLASSES
        seen += x.shape[0]
    assert seen == CLASSES  # 40 draws of each of the 25 sub-policies on average


@pytest.mark.slow
def test_timms_own_v0_posterize_would_stop_the_run_and_says_where_in_one_line(
        imagenet_like: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import attentivenas.data.augment as augment

    monkeypatch.setattr(augment, "TIMM_OP", {})  # timm's "v0" Posterize: 0-4 bits, refused by Pillow 13
    with pytest.raises(DataError) as info:
        for _ in _recipe_loader(imagenet_like, []):
            pass
    line = _one_line(str(info.value))
    assert "\n" not in line and ".JPEG" in line and str(imagenet_like) in line
    assert "AutoAugment v0 Posterize" in line and "bits" in line


@pytest.mark.slow
def test_one_step_of_the_imagenet_recipe_then_the_published_table(imagenet_like: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    res = run_cli("train", "--config", str(RECIPE), f"data.path={imagenet_like}", "data.batch_size=4",
                  "data.num_workers=0", "runtime.max_steps=1", "sampler.prior_samples=1000", "log.progress=false",
                  "log.tensorboard=false", "--out", str(out))
    assert res.code == 0, res.err
    ckpt = out / "checkpoints" / "last.pt"
    assert ckpt.is_file()
    res = run_cli("evaluate", "--checkpoint", str(ckpt), "--published", "--data", str(imagenet_like), "--split",
                  "val", "--calib-batches", "1", "--calib-batch-size", "16", "--max-images", "16", "--batch-size",
                  "16", "--json")
    assert res.code == 0, res.err
    table = json.loads(res.out)
    assert table["split"] == "val" and len(table["rows"]) == 9
    for row in table["rows"]:
        assert row["samples"] == 16 and 0.0 <= row["top1"] <= 100.0 and row["published_top1"] > 77
