"""Data sets held in memory as tensors: scikit-learn's digits (embedded) and Fashion-MNIST (the
Debian package's IDX files, read without a download)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, TensorDataset

from ..config import DataConfig
from ..errors import ConfigError
from ..rng import mix_seed
from .idx import read_idx
from .plan import augment_plan
from .splits import (
    DEFAULT_VAL_FRACTION,
    DataBundle,
    check_holdout_bounds,
    holdout_count,
    holdout_record,
    stratified_subset,
)
from .transforms import SeededTransformDataset, tensor_train_transform

DIGITS_MEAN = 0.5


DIGITS_STD = 0.5


def digits_split(labels: np.ndarray, seed: int = 0, val_fraction: float = 0.15,
                 test_fraction: float = 0.15) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stratified (train, hold-out, test) positions of the digits from ``seed`` (the hold-out may be empty)."""
    from sklearn.model_selection import train_test_split  # heavy (about 0.5 s): only the digits need it here

    idx = np.arange(len(labels))
    idx_trainval, idx_test = train_test_split(idx, test_size=test_fraction, random_state=seed, stratify=labels)
    if val_fraction > 0:
        rel_val = val_fraction / (1.0 - test_fraction)
        idx_train, idx_val = train_test_split(idx_trainval, test_size=rel_val, random_state=seed,
                                              stratify=labels[idx_trainval])
    else:  # nothing held out: train on all of the training part
        idx_train, idx_val = idx_trainval, idx_trainval[:0]
    return np.sort(idx_train), np.sort(idx_val), np.sort(idx_test)


def digits_bundle(image_size: int = 32, seed: int = 0, val_fraction: float = 0.15,
                  test_fraction: float = 0.15) -> DataBundle:
    """scikit-learn's 1797 handwritten digits, upscaled (bilinear) to ``image_size``, as 3-channel
    tensors normalised to about [-1, 1]; a stratified split into train, val and test from ``seed``."""
    from sklearn.datasets import load_digits  # heavy (about 0.5 s): only the digits need scikit-learn here

    digits = load_digits()
    x = torch.from_numpy(digits.images.astype(np.float32) / 16.0).unsqueeze(1)
    x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False)
    x = ((x - DIGITS_MEAN) / DIGITS_STD).expand(-1, 3, -1, -1).contiguous()
    y = torch.from_numpy(digits.target.astype(np.int64))
    idx_train, idx_val, idx_test = digits_split(digits.target, seed, val_fraction, test_fraction)
    idx_trainval = np.concatenate([idx_train, idx_val])

    def subset(ids: np.ndarray) -> TensorDataset:
        t = torch.from_numpy(np.sort(ids))
        return TensorDataset(x[t], y[t])

    record = holdout_record("digits", len(idx_trainval), idx_val, seed)
    return DataBundle("digits", subset(idx_train), subset(idx_val), subset(idx_test), 10, image_size, record)


def digits_data(cfg: DataConfig, seed: int) -> DataBundle:
    """The digits of ``cfg`` (hold-out fraction, split seed, the augmentation of ``data.crop`` /
    ``random_shift``, ``random_flip`` and ``auto_augment``)."""
    frac = cfg.val_fraction if cfg.val_fraction is not None else DEFAULT_VAL_FRACTION["digits"]
    pool = 1797 - math.ceil(1797 * 0.15)  # the digits' train + hold-out part (the test split is 15%)
    if frac > 0:  # scikit-learn's count of the stratified hold-out (digits_split)
        check_holdout_bounds(cfg, math.ceil(pool * frac / 0.85), pool, 10)
    b = digits_bundle(image_size=cfg.image_size, seed=cfg.split_seed, val_fraction=frac)
    augment = tensor_train_transform(cfg, DIGITS_MEAN, DIGITS_STD)
    if augment is not None:
        calib = b.train if augment_plan(cfg).calib == "eval" else None
        train = SeededTransformDataset(b.train, None, augment, seed)
        b = DataBundle(b.name, train, b.val, b.test, b.num_classes, b.image_size, b.holdout, calib)
    return b


# --------------------------------------------------------------------------- Fashion-MNIST
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"  #: where Debian's dataset-fashion-mnist puts it
FASHION_MNIST_MEAN = 0.2860  # of the training images, in [0, 1]
FASHION_MNIST_STD = 0.3530
FASHION_MNIST_FILES = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
                       "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte"}


class GreyImages(Dataset):
    """uint8 greyscale images as normalised 3-channel float tensors at ``image_size`` (bilinear),
    converted per item so that 60,000 images take 47 MB."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, image_size: int, mean: float, std: float) -> None:
        if images.dim() != 3 or len(images) != len(labels):
            raise ValueError("GreyImages needs (N, H, W) uint8 images and N labels")
        self.images, self.labels = images, labels
        self.image_size, self.mean, self.std = int(image_size), float(mean), float(std)
        self.targets = labels.tolist()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x = self.images[i].to(torch.float32).div_(255.0).sub_(self.mean).div_(self.std).unsqueeze(0)
        if x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            x = F.interpolate(x[None], size=(self.image_size, self.image_size), mode="bilinear",
                              align_corners=False)[0]
        return x.expand(3, -1, -1), int(self.labels[i])


def fashion_mnist_files(root: Path) -> dict[str, Path]:
    """The four IDX files under ``root`` (``.gz`` or not); a missing one is one :class:`ConfigError`
    line naming the folder and the Debian package."""
    found, missing = {}, []
    for key, stem in FASHION_MNIST_FILES.items():
        path = next((root / n for n in (stem + ".gz", stem) if (root / n).is_file()), None)
        if path is None:
            missing.append(stem + ".gz")
        else:
            found[key] = path
    if missing:
        raise ConfigError(
            f"data.path: Fashion-MNIST not found in {root} (missing {', '.join(missing)}); install it with "
            "`apt-get install dataset-fashion-mnist` (Debian/Ubuntu, puts it in "
            f"{FASHION_MNIST_DIR}) or point data.path at a folder with the four IDX files")
    return found


def fashion_mnist_data(cfg: DataConfig, seed: int) -> DataBundle:
    """Fashion-MNIST from its IDX files (60,000 training, 10,000 test images, 10 classes): a seeded,
    class-stratified hold-out of the training images (``data.val_fraction``, 10% by default), the
    test set as test; ``data.random_shift`` and ``data.random_flip`` augment the training images."""
    root = Path(str(cfg.path or FASHION_MNIST_DIR)).expanduser()
    files = fashion_mnist_files(root)
    arrays = {k: read_idx(p, 3 if k.endswith("images") else 1, "Fashion-MNIST file") for k, p in files.items()}
    for part in ("train", "test"):
        images, labels = arrays[f"{part}_images"], arrays[f"{part}_labels"]
        if len(images) != len(labels) or (labels.size and labels.max() > 9):
            raise ConfigError(f"data.path: Fashion-MNIST {part} files in {root} disagree ({len(images)} images, "
                              f"{len(labels)} labels, labels up to {int(labels.max()) if labels.size else 0})")
    y = arrays["train_labels"].astype(np.int64)
    n = len(y)
    for part in ("train", "test"):
        if not len(arrays[f"{part}_labels"]):
            raise ConfigError(f"data.path: the Fashion-MNIST {part} files in {root} hold 0 images "
                              f"({files[f'{part}_images'].name}, {files[f'{part}_labels'].name})")
    count = holdout_count(cfg, n, 10)
    idx_val = stratified_subset(y, count, mix_seed(cfg.split_seed, 0xFA5)) if count else np.arange(0)
    idx_train = np.setdiff1d(np.arange(n), idx_val)
    images = torch.from_numpy(arrays["train_images"].copy())
    labels = torch.from_numpy(y)

    def grey(ids: np.ndarray) -> GreyImages:
        t = torch.from_numpy(ids)
        return GreyImages(images[t], labels[t], cfg.image_size, FASHION_MNIST_MEAN, FASHION_MNIST_STD)

    train: Dataset = grey(idx_train)
    calib: Dataset | None = None
    augment = tensor_train_transform(cfg, FASHION_MNIST_MEAN, FASHION_MNIST_STD)
    if augment is not None:
        calib = train if augment_plan(cfg).calib == "eval" else None
        train = SeededTransformDataset(train, None, augment, seed)
    test = GreyImages(torch.from_numpy(arrays["test_images"].copy()),
                      torch.from_numpy(arrays["test_labels"].astype(np.int64)), cfg.image_size,
                      FASHION_MNIST_MEAN, FASHION_MNIST_STD)
    record = holdout_record("fashion_mnist", n, idx_val, cfg.split_seed)
    return DataBundle("fashion_mnist", train, grey(idx_val), test, 10, cfg.image_size, record, calib)
