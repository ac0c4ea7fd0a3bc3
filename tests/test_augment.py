"""The augmentation policies cannot stop a run: every op of every offered policy at every magnitude,
with noise, on RGB images of several sizes; thousands of seeded images through the recipe's whole
training transform; and a failing op named with its image file."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from attentivenas.config import DataConfig
from attentivenas.data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    RAND_AUGMENT_OPS,
    V0_POLICY,
    Chain,
    LabelledOp,
    SeededTransformDataset,
    augment_op,
    image_folder,
    train_transform,
)
from attentivenas.data.augment import timm_hparams, timm_op
from attentivenas.errors import DataError

IMAGENET = DataConfig(name="imagenet", path="/x")
SIZES = ((224, 224), (33, 97), (301, 200))  # (width, height)


def _image(width: int, height: int, seed: int) -> Image.Image:
    """An RGB image with structure (gradients) and noise over the whole 0-255 range."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([255 * xx / max(1, width - 1), 255 * yy / max(1, height - 1),
                     127 + 127 * np.sin(xx / 5.0 + yy / 7.0)], axis=-1)
    noisy = base + rng.normal(0, 20, base.shape)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB")


def _check(img: Image.Image, size: tuple[int, int], what: str) -> None:
    arr = np.asarray(img)
    assert img.mode == "RGB" and img.size == size, what
    assert int(arr.max()) > int(arr.min()), f"{what}: the image came out flat"


def test_v0_is_the_tf_policy_with_the_authors_posterize_resampling_noise_and_fill() -> None:
    from timm.data.auto_augment import auto_augment_policy

    hp = timm_hparams(IMAGENET, IMAGENET_MEAN, authors_resampling=True)
    timm_v0 = auto_augment_policy("v0", hp)
    ours = augment_op(IMAGENET, IMAGENET_MEAN).policy  # timm's AutoAugment of our labelled ops
    assert len(V0_POLICY) == len(ours) == len(timm_v0) == 25
    for sub, theirs in zip(ours, timm_v0, strict=True):
        for op, t in zip(sub, theirs, strict=True):
            inner = op.op
            assert (inner.prob, inner.magnitude) == (t.prob, t.magnitude)
            # the same ops as timm's "v0", but Posterize keeps 4-8 bits as in the authors' code
            assert inner.name == ("PosterizeOriginal" if t.name == "Posterize" else t.name)
            assert inner.magnitude_std == 0.5 and inner.kwargs["fillcolor"] == (124, 116, 104)
            assert set(inner.kwargs["resample"]) == {Image.Resampling.NEAREST, Image.Resampling.BILINEAR,
                                                     Image.Resampling.BICUBIC}
    posterize = timm_op("Posterize", 1.0, 0, hp, "v0").op
    bits = [posterize.level_fn(m, hp)[0] for m in range(11)]
    assert bits == [int(m / 10 * 4) + 4 for m in range(11)] and min(bits) == 4 and max(bits) == 8


def test_randaugment_uses_the_same_safe_posterize_and_torchvision_policies_are_labelled() -> None:
    ra = augment_op(DataConfig(name="imagenet", path="/x", auto_augment="randaugment"), IMAGENET_MEAN)
    names = [op.op.name for op in ra.ops]
    assert len(names) == len(RAND_AUGMENT_OPS) and "PosterizeOriginal" in names and "Posterize" not in names
    assert ra.num_layers == 2 and all(op.op.magnitude == 9 for op in ra.ops)
    tv = augment_op(DataConfig(name="imagenet", path="/x", auto_augment="imagenet"), IMAGENET_MEAN)
    assert type(tv.op).__module__.startswith("torchvision") and "imagenet" in tv.label


def test_every_timm_op_at_every_magnitude_with_noise_neither_raises_nor_flattens() -> None:
    hp = timm_hparams(IMAGENET, IMAGENET_MEAN, authors_resampling=True)
    names = sorted({n for sub in V0_POLICY for n, _, _ in sub} | set(RAND_AUGMENT_OPS))
    assert len(names) == 15
    images = [(_image(w, h, i), (w, h)) for i, (w, h) in enumerate(SIZES)]
    for name in names:
        for magnitude in range(11):
            op = timm_op(name, 1.0, magnitude, hp, "test")
            for seed in range(3):  # the noise draws magnitudes around the nominal one, clipped to 0-10
                random.seed(seed)
                for img, size in images:
                    _check(op(img), size, f"{name} at magnitude {magnitude}, seed {seed}, size {size}")


def test_every_torchvision_op_of_every_policy_at_every_magnitude_neither_raises_nor_flattens() -> None:
    from torchvision import transforms as T
    from torchvision.transforms.autoaugment import _apply_op

    for policy in ("imagenet", "cifar10", "svhn"):
        aa = augment_op(DataConfig(name="imagenet", path="/x", auto_augment=policy), IMAGENET_MEAN).op
        ops = {name for sub in aa.policies for name, _, _ in sub}
        for w, h in SIZES:
            img = _image(w, h, w)
            space = aa._augmentation_space(10, (h, w))
            for name in sorted(ops):
                magnitudes, signed = space[name]
                for m in (magnitudes.tolist() if magnitudes.ndim else [0.0]):
                    for sign in ((1, -1) if signed else (1,)):
                        out = _apply_op(img, name, sign * float(m), T.InterpolationMode.BILINEAR, [0.0, 0.0, 0.0])
                        _check(out, (w, h), f"torchvision {policy} {name} at {sign * m}, size {(w, h)}")


class _Images(torch.utils.data.Dataset):
    """Seeded random RGB images of random sizes, like a folder of photos (``samples`` names them)."""

    def __init__(self, n: int) -> None:
        rng = np.random.default_rng(7)
        self.sizes = [(int(rng.integers(24, 400)), int(rng.integers(24, 400))) for _ in range(n)]
        self.samples = [(f"/photos/{i:05d}.jpg", i % 10) for i in range(n)]

    def __len__(self) -> int:
        return len(self.sizes)

    def __getitem__(self, i: int) -> tuple[Image.Image, int]:
        w, h = self.sizes[i]
        return _image(min(w, 96), min(h, 96), i), self.samples[i][1]


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["v0", "randaugment"])
def test_thousands_of_images_through_the_recipes_training_transform(policy: str) -> None:
    cfg = DataConfig(name="imagenet", path="/x", auto_augment=policy)
    n = 2000 if policy == "v0" else 500
    ds = SeededTransformDataset(_Images(n), None, train_transform(cfg, IMAGENET_MEAN, IMAGENET_STD), seed=3)
    for i in range(n):
        x, _ = ds[i]
        assert x.shape == (3, 224, 224) and torch.isfinite(x).all(), i
        assert float(x.std()) > 0, f"image {i} came out flat"


def test_a_failing_op_is_one_error_naming_the_image_file_and_the_op(tmp_path: Path) -> None:
    from timm.data.auto_augment import AugmentOp

    for c in ("a", "b"):
        (tmp_path / c).mkdir()
        _image(40, 30, ord(c)).save(tmp_path / c / f"{c}.png")
    folder = image_folder(tmp_path, "data.path")
    # timm's own "v0" Posterize at magnitude 0 keeps 0 bits, which Pillow 13 refuses
    zero_bits = LabelledOp(AugmentOp("Posterize", 1.0, 0, {"magnitude_std": 0}), "AutoAugment v0 Posterize (p=1.0)")
    ds = SeededTransformDataset(folder, None, Chain([zero_bits]))
    try:
        ds[0]
    except DataError as exc:
        message = str(exc)
        assert "\n" not in message and str(tmp_path / "a" / "a.png") in message
        assert "AutoAugment v0 Posterize" in message and "ValueError" in message
        assert "data.auto_augment=none" in message
    else:  # an older Pillow posterizes to a black image instead: nothing to report then
        assert int(np.asarray(zero_bits(_image(40, 30, 0))).max()) == 0

    def broken(x: object) -> object:
        raise RuntimeError("boom")

    with pytest.raises(DataError, match=r"sample 1 of .*in broken: RuntimeError: boom; check or replace the file"):
        SeededTransformDataset(torch.utils.data.TensorDataset(torch.zeros(2, 3), torch.zeros(2)), None,
                               Chain([broken]))[1]
