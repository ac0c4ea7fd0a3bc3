"""Splits of a data set: the bundle of train / hold-out / test, the seeded hold-out and its record,
halves of a split, and seeded class-stratified subsets."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from ..config import DataConfig
from ..errors import ConfigError
from ..rng import mix_seed

DEFAULT_VAL_FRACTION = {"digits": 0.15, "imagefolder": 0.02, "imagenet": 0.02, "cifar10": 0.1, "cifar100": 0.1,
                        "fashion_mnist": 0.1}


@dataclass
class DataBundle:
    """Train / validation (for search and BN calibration) / test splits of one dataset."""

    name: str
    train: Dataset
    val: Dataset
    test: Dataset
    num_classes: int
    image_size: int
    #: which training images are held out (see :func:`holdout_record`); checkpoints keep it
    holdout: dict[str, Any] = field(default_factory=dict)
    #: the training images (same order as ``train``) as BN recalibration sees them (``data.calib_transform``:
    #: the evaluation transform); None: ``train`` itself
    calib: Dataset | None = None

    def calibration_set(self) -> Dataset:
        """The images BN statistics are recalibrated on: ``calib``, else ``train``."""
        return self.calib if self.calib is not None else self.train


def holdout_record(dataset: str, pool: int, held_out: Sequence[int] | np.ndarray, split_seed: int,
                   val_dir: str | None = None) -> dict[str, Any]:
    """What a checkpoint records of its hold-out: the data set, the number of images the hold-out
    was drawn from (``pool``), how many were held out, the seed, and a SHA-256 of their sorted
    indices (or the folder, for ``data.val_dir``). Stage 2 compares it with the split it measures on."""
    ids = np.sort(np.asarray(held_out, dtype=np.int64))
    return {"dataset": dataset, "pool": int(pool), "held_out": int(ids.size), "split_seed": int(split_seed),
            "indices_sha256": hashlib.sha256(ids.tobytes()).hexdigest(), "val_dir": val_dir}


#: the default hold-out is at least this many images (or a fifth of the training images, if fewer)
HOLDOUT_FLOOR = 1000


def holdout_floor(n: int) -> int:
    """The fewest images the default hold-out of ``n`` training images keeps: ``min(1000, n // 5)``."""
    return min(HOLDOUT_FLOOR, n // 5)


def check_holdout_bounds(cfg: DataConfig, count: int, n: int, num_classes: int) -> None:
    """One :class:`ConfigError` line unless a hold-out of ``count`` of ``n`` images leaves every one of
    ``num_classes`` classes room for an image on each side (``count`` 0: nothing held out, allowed)."""
    if count == 0:
        return
    key = "data.val_size" if cfg.val_size is not None else "data.val_fraction"
    value = cfg.val_size if cfg.val_size is not None else cfg.val_fraction
    what = f"{key}={value}" if value is not None else f"the default hold-out of {cfg.name}"
    if count < num_classes or n - count < num_classes:
        side = "held out" if count < num_classes else "left for training"
        lo, hi = num_classes / n, (n - num_classes) / n
        allowed = (f"data.val_size between {num_classes} and {n - num_classes}" if key == "data.val_size"
                   else f"data.val_fraction between {lo:.4g} and {hi:.4g}")
        need = (f"for {num_classes} classes; every class needs an image on each side" if num_classes > 1
                else "; both sides need an image")
        raise ConfigError(f"{what} holds out {count} of {n} training images, leaving {min(count, n - count)} "
                          f"{side} {need}: use {allowed}, or 0 for no hold-out")


def holdout_count(cfg: DataConfig, n: int, num_classes: int | None = None, stratified: bool = True) -> int:
    """How many of ``n`` training images ``data.val_size`` / ``data.val_fraction`` hold out (0: none).

    Unset, the hold-out is the data set's default fraction but at least :func:`holdout_floor` images
    (1000, or a fifth of a smaller training set): 2% of 3,000 images would be 60, each worth 1.7
    points of top-1. With ``num_classes``, a ``stratified`` hold-out (one drawn per class) that leaves a
    side with fewer images than classes is refused (:func:`check_holdout_bounds`); a plain seeded draw
    (``stratified=False``: ImageFolder, CIFAR) needs an image on each side."""
    if n == 0:
        raise ConfigError(f"data.path: the {cfg.name} training data holds no images; nothing to train on or hold out")
    if cfg.val_size is not None:
        count = cfg.val_size
    else:
        frac = cfg.val_fraction if cfg.val_fraction is not None else DEFAULT_VAL_FRACTION[cfg.name]
        count = int(round(n * frac))
        if frac > 0:
            count = max(1, count)
        if cfg.val_fraction is None:  # the default: a floor in images, and an image per class where it fits
            count = max(count, holdout_floor(n), min(num_classes or 0, n - (num_classes or 0)))
    if num_classes is not None:
        check_holdout_bounds(cfg, min(count, n), n, num_classes if stratified else 1)
    if count >= n:
        raise ConfigError(f"data.val_size/val_fraction holds out {count} of {n} training images; keep it below {n}")
    return count


def holdout_split(n: int, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of ``range(n)`` into (train, held-out) index arrays, both sorted (``count`` may be 0)."""
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[count:]), np.sort(perm[:count])


def halves(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded disjoint halves of ``range(n)`` (the first has ``n // 2``): e.g. search on one part of
    the official val/ and report on the other (``--split val-search`` / ``val-report``)."""
    rest, first = holdout_split(n, n // 2, mix_seed(seed, 0x5EA4C4))
    return first, rest


def stratified_subset(labels: Sequence[int] | np.ndarray, size: int | None, seed: int) -> np.ndarray:
    """Sorted positions of a seeded, class-stratified subset of ``size`` of ``labels`` (all for None).

    ``data.train_size`` uses it to train on part of the data: every class keeps its share.
    """
    y = np.asarray(labels)
    n = len(y)
    if size is None or size >= n:
        return np.arange(n)
    if size < 1:
        raise ConfigError(f"data.train_size must be >= 1, got {size}")
    from sklearn.model_selection import train_test_split  # heavy (about 0.5 s): only subsets need scikit-learn

    classes, counts = np.unique(y, return_counts=True)
    stratify = y if size >= len(classes) and counts.min() >= 2 else None
    keep, _ = train_test_split(np.arange(n), train_size=size, random_state=mix_seed(seed, 0x7A1) % 2**32,
                               stratify=stratify)
    return np.sort(keep)
