"""Data sets read from files: ImageFolder roots (the ImageNet layout) and torchvision's CIFAR files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from ..config import DataConfig
from ..errors import ConfigError
from .splits import DataBundle, holdout_count, holdout_record, holdout_split
from .transforms import (
    CIFAR_MEAN,
    CIFAR_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    SeededTransformDataset,
    eval_transform,
    train_transform,
)


def require_dir(path: Path, key: str, what: str) -> Path:
    """``path`` when it is a folder, else one :class:`ConfigError` line naming ``key``."""
    if not path.is_dir():
        raise ConfigError(f"{key}: {what} folder not found: {path}")
    return path


def load_image(path: str) -> Any:
    """An image file as RGB; an unreadable one is one :class:`ConfigError` line naming it (also when
    read in a loader worker)."""
    from PIL import Image  # heavy: PIL loads only when images are read

    try:
        with open(path, "rb") as f:
            return Image.open(f).convert("RGB")
    except (OSError, ValueError, SyntaxError) as exc:  # PIL.UnidentifiedImageError is an OSError
        raise ConfigError(f"data: cannot read image {path} ({type(exc).__name__}); remove or replace the file") from None


def image_folder(root: Path, key: str) -> Any:
    """torchvision's ImageFolder of ``root`` (at least two class folders), images read by :func:`load_image`."""
    from torchvision.datasets import ImageFolder  # heavy: torchvision loads only when images need it

    try:
        folder = ImageFolder(str(root), loader=load_image)
    except (FileNotFoundError, RuntimeError) as exc:
        raise ConfigError(f"{key}: no class folders with images in {root} ({exc})") from None
    if len(folder.classes) < 2:
        raise ConfigError(f"{key}: {root} holds {len(folder.classes)} class folder; a classifier needs at least 2")
    return folder


def imagefolder_data(cfg: DataConfig, seed: int) -> DataBundle:
    """``data.path/train`` (its hold-out, or ``data.val_dir``) and ``data.path/val`` as test."""
    root = require_dir(Path(str(cfg.path)).expanduser(), "data.path", "dataset")
    train_root = require_dir(root / cfg.train_dir, "data.train_dir", "training")
    test_root = require_dir(root / cfg.test_dir, "data.test_dir", "test")
    base = image_folder(train_root, "data.path")
    tr_t = train_transform(cfg, IMAGENET_MEAN, IMAGENET_STD)
    ev_t = eval_transform(cfg, IMAGENET_MEAN, IMAGENET_STD)
    if cfg.val_dir:
        val_base = image_folder(require_dir(root / cfg.val_dir, "data.val_dir", "validation"), "data.val_dir")
        if val_base.classes != base.classes:
            raise ConfigError(f"data.val_dir: the classes of {root / cfg.val_dir} differ from {train_root}")
        train = SeededTransformDataset(base, None, tr_t, seed)
        val: Dataset = SeededTransformDataset(val_base, None, ev_t, random=False)
        record = holdout_record(cfg.name, len(base), [], cfg.split_seed, val_dir=cfg.val_dir)
    else:
        idx_train, idx_val = holdout_split(len(base), holdout_count(cfg, len(base)), cfg.split_seed)
        train = SeededTransformDataset(base, idx_train, tr_t, seed)
        val = SeededTransformDataset(base, idx_val, ev_t, random=False)
        record = holdout_record(cfg.name, len(base), idx_val, cfg.split_seed)
    test_base = image_folder(test_root, "data.test_dir")
    if test_base.classes != base.classes:
        raise ConfigError(f"data.test_dir: the classes of {test_root} differ from {train_root}")
    test = SeededTransformDataset(test_base, None, ev_t, random=False)
    return DataBundle(cfg.name, train, val, test, len(base.classes), cfg.image_size, record)


def cifar_data(cfg: DataConfig, seed: int) -> DataBundle:
    """torchvision's CIFAR-10/100 files under ``data.path``, a seeded hold-out of the training set."""
    from torchvision import datasets  # heavy: torchvision loads only when images need it

    cls = datasets.CIFAR10 if cfg.name == "cifar10" else datasets.CIFAR100
    label = "CIFAR-10" if cfg.name == "cifar10" else "CIFAR-100"
    root = Path(str(cfg.path)).expanduser()
    try:
        base = cls(str(root), train=True, download=cfg.download)
        test_base = cls(str(root), train=False, download=cfg.download)
    except RuntimeError:
        raise ConfigError(
            f"data.path: {label} files not found under {root} (expected {cls.base_folder}/); put them there "
            "or set data.download=true"
        ) from None
    tr_t = train_transform(cfg, CIFAR_MEAN, CIFAR_STD)
    ev_t = eval_transform(cfg, CIFAR_MEAN, CIFAR_STD)
    idx_train, idx_val = holdout_split(len(base), holdout_count(cfg, len(base)), cfg.split_seed)
    train = SeededTransformDataset(base, idx_train, tr_t, seed)
    val = SeededTransformDataset(base, idx_val, ev_t, random=False)
    test = SeededTransformDataset(test_base, None, ev_t, random=False)
    record = holdout_record(cfg.name, len(base), idx_val, cfg.split_seed)
    return DataBundle(cfg.name, train, val, test, len(base.classes), cfg.image_size, record)
