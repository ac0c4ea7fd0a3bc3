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


def holdout_record(dataset: str, pool: int, held_out: Sequence[int] | np.ndarray, split_seed: int,
                   val_dir: str | None = None) -> dict[str, Any]:
    """What a checkpoint records of its hold-out: the data set, the number of images the hold-out
    was drawn from (``pool``), how many were held out, the seed, and a SHA-256 of their sorted
    indices (or the folder, for ``data.val_dir``). Stage 2 compares it with the split it measures on."""
    ids = np.sort(np.asarray(held_out, dtype=np.int64))
    return {"dataset": dataset, "pool": int(pool), "held_out": int(ids.size), "split_seed": int(split_seed),
            "indices_sha256": hashlib.sha256(ids.tobytes()).hexdigest(), "val_dir": val_dir}


def holdout_count(cfg: DataConfig, n: int) -> int:
    """How many of ``n`` training images ``data.val_size`` / ``data.val_fraction`` hold out (0: none)."""
    if n == 0:
        raise ConfigError(f"data.path: the {cfg.name} training data holds no images; nothing to train on or hold out")
    if cfg.val_size is not None:
        count = cfg.val_size
    else:
        frac = cfg.val_fraction if cfg.val_fraction is not None else DEFAULT_VAL_FRACTION[cfg.name]
        count = int(round(n * frac))
        if frac > 0:
            count = max(1, count)
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
