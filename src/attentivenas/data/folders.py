"""Data sets read from files: ImageFolder roots (the ImageNet layout) and torchvision's CIFAR files."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from ..config import DataConfig
from ..errors import ConfigError
from .plan import augment_plan
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


def _inside(path: str, folder: str) -> bool:
    """Whether the real path ``path`` is ``folder`` or lies under it (both resolved)."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _short_list(names: list[str], shown: int = 5) -> str:
    """``a, b, c, d, e and 7 more``: a few names of a long list."""
    head = ", ".join(names[:shown])
    return head + (f" and {len(names) - shown} more" if len(names) > shown else "")


def tree_samples(root: str, class_to_idx: dict[str, int], is_valid: Callable[[str], bool],
                 skipped: list[str]) -> list[tuple[str, int]]:
    """(path, class) of every image under each class folder of ``root``, read as a tree: torchvision
    walks with ``os.walk(followlinks=True)``, so a link back up (``a/loop -> ..``) is read about 40
    levels deep and the images of other classes under class ``a``. Here a linked folder or image is
    followed once, unless it points back into ``root`` (another class, or an ancestor: a loop) or at a
    folder already read; those are left out and named in ``skipped`` (paths relative to ``root``).
    Paths and their order are torchvision's for a folder without such links (the seeded hold-out
    draws by position)."""
    root_real = os.path.realpath(root)
    seen: set[str] = set()  # real paths of the folders read, and of linked images
    samples: list[tuple[str, int]] = []
    for name in sorted(class_to_idx):
        top = os.path.join(root, name)
        if not os.path.isdir(top):
            continue
        seen.add(os.path.realpath(top))
        found: list[tuple[str, list[str]]] = []
        stack = [top]
        while stack:
            folder = stack.pop()
            files: list[str] = []
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError:  # unreadable or vanished: as os.walk, leave it out
                continue
            for entry in entries:
                path = os.path.join(folder, entry.name)
                link = entry.is_symlink()
                try:
                    is_dir = entry.is_dir()
                except OSError:
                    is_dir = False
                if is_dir:
                    real = os.path.realpath(path)
                    if real in seen or _inside(root_real, real) or (link and _inside(real, root_real)):
                        skipped.append(os.path.relpath(path, root))
                        continue
                    seen.add(real)
                    stack.append(path)
                elif link:
                    real = os.path.realpath(path)
                    if real in seen or _inside(real, root_real):
                        skipped.append(os.path.relpath(path, root))
                        continue
                    seen.add(real)
                    files.append(entry.name)
                else:
                    files.append(entry.name)
            found.append((folder, files))
        for folder, files in sorted(found):
            samples.extend((p, class_to_idx[name]) for p in (os.path.join(folder, f) for f in sorted(files))
                           if is_valid(p))
    return samples


_TREE_FOLDER: type | None = None


def _tree_folder_class() -> type:
    """``TreeImageFolder``: torchvision's ImageFolder whose classes and images are found by
    :func:`tree_samples` (empty classes kept: :func:`image_folder` names them; the links left out in
    its ``skipped``). Made on first use (torchvision is heavy) and reachable as this module's
    attribute, so that data-loader workers started by spawn can unpickle it."""
    global _TREE_FOLDER
    if _TREE_FOLDER is None:
        from torchvision.datasets import ImageFolder  # heavy: torchvision loads only when images need it
        from torchvision.datasets.folder import IMG_EXTENSIONS, has_file_allowed_extension

        def is_image(path: str) -> bool:
            return has_file_allowed_extension(path, IMG_EXTENSIONS)

        class TreeImageFolder(ImageFolder):
            def __init__(self, root: str, loader: Callable[[str], Any]) -> None:
                self.skipped: list[str] = []
                super().__init__(root, loader=loader)
                self.skipped.sort()

            def find_classes(self, directory: str | Path) -> tuple[list[str], dict[str, int]]:
                top = os.path.realpath(directory)
                classes = []
                with os.scandir(directory) as entries:
                    for entry in entries:
                        if not entry.is_dir():
                            continue
                        real = os.path.realpath(entry.path)
                        if entry.is_symlink() and (_inside(top, real) or _inside(real, top)):
                            self.skipped.append(entry.name)  # a loop, or another class under a second name
                        else:
                            classes.append(entry.name)
                if not classes:
                    raise FileNotFoundError(f"Couldn't find any class folder in {directory}.")
                classes.sort()
                return classes, {c: i for i, c in enumerate(classes)}

            def make_dataset(self, directory: str | Path, class_to_idx: dict[str, int], *args: Any,
                             **kwargs: Any) -> list[tuple[str, int]]:
                return tree_samples(str(directory), class_to_idx, is_image, self.skipped)

        TreeImageFolder.__module__, TreeImageFolder.__qualname__ = __name__, "TreeImageFolder"
        _TREE_FOLDER = TreeImageFolder
    return _TREE_FOLDER


def __getattr__(name: str) -> Any:
    if name == "TreeImageFolder":
        return _tree_folder_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def image_folder(root: Path, key: str) -> Any:
    """torchvision's ImageFolder of ``root`` (at least two class folders, each with images), read as a
    tree (:func:`tree_samples`), images read by :func:`load_image`."""
    from torchvision.datasets.folder import IMG_EXTENSIONS  # heavy: torchvision loads only when images need it

    try:
        folder = _tree_folder_class()(str(root), load_image)
    except (FileNotFoundError, RuntimeError) as exc:
        raise ConfigError(f"{key}: no class folders with images in {root} ({exc})") from None
    skipped = folder.skipped
    if skipped:
        warnings.warn(f"{key}: {root}: left out {len(skipped)} linked folder(s) or image(s) that loop or point back "
                      f"into the folder ({_short_list(skipped, 3)}); each image is read once, under its own class",
                      RuntimeWarning, stacklevel=2)
    if len(folder.classes) < 2:
        raise ConfigError(f"{key}: {root} holds {len(folder.classes)} class folder; a classifier needs at least 2")
    held = sorted(set(folder.targets))
    if len(held) < len(folder.classes):
        full = [folder.classes[i] for i in held]
        empty = sorted(set(folder.classes) - set(full))
        which = f"images only in {len(full)}: {_short_list(full)}" if full else "no class folder holds any"
        raise ConfigError(
            f"{key}: {len(empty)} of {len(folder.classes)} class folders in {root} hold no images "
            f"({_short_list(empty)}); {which} (image files: {', '.join(IMG_EXTENSIONS)})"
        )
    return folder


def imagefolder_data(cfg: DataConfig, seed: int) -> DataBundle:
    """``data.path/train`` (its hold-out, or ``data.val_dir``) and ``data.path/val`` as test."""
    root = require_dir(Path(str(cfg.path)).expanduser(), "data.path", "dataset")
    train_root = require_dir(root / cfg.train_dir, "data.train_dir", "training")
    test_root = require_dir(root / cfg.test_dir, "data.test_dir", "test")
    base = image_folder(train_root, "data.path")
    tr_t = train_transform(cfg, IMAGENET_MEAN, IMAGENET_STD)
    ev_t = eval_transform(cfg, IMAGENET_MEAN, IMAGENET_STD)
    idx_train: list[int] | None = None
    if cfg.val_dir:
        val_base = image_folder(require_dir(root / cfg.val_dir, "data.val_dir", "validation"), "data.val_dir")
        if val_base.classes != base.classes:
            raise ConfigError(f"data.val_dir: the classes of {root / cfg.val_dir} differ from {train_root}")
        train = SeededTransformDataset(base, None, tr_t, seed)
        val: Dataset = SeededTransformDataset(val_base, None, ev_t, random=False)
        record = holdout_record(cfg.name, len(base), [], cfg.split_seed, val_dir=cfg.val_dir)
    else:
        count = holdout_count(cfg, len(base), len(base.classes), stratified=False)
        split_train, idx_val = holdout_split(len(base), count, cfg.split_seed)
        idx_train = split_train.tolist()
        train = SeededTransformDataset(base, idx_train, tr_t, seed)
        val = SeededTransformDataset(base, idx_val, ev_t, random=False)
        record = holdout_record(cfg.name, len(base), idx_val, cfg.split_seed)
    test_base = image_folder(test_root, "data.test_dir")
    if test_base.classes != base.classes:
        raise ConfigError(f"data.test_dir: the classes of {test_root} differ from {train_root}")
    test = SeededTransformDataset(test_base, None, ev_t, random=False)
    calib = SeededTransformDataset(base, idx_train, ev_t, random=False) if augment_plan(cfg).calib == "eval" else None
    return DataBundle(cfg.name, train, val, test, len(base.classes), cfg.image_size, record, calib)


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
    count = holdout_count(cfg, len(base), len(base.classes), stratified=False)
    idx_train, idx_val = holdout_split(len(base), count, cfg.split_seed)
    train = SeededTransformDataset(base, idx_train, tr_t, seed)
    val = SeededTransformDataset(base, idx_val, ev_t, random=False)
    test = SeededTransformDataset(test_base, None, ev_t, random=False)
    record = holdout_record(cfg.name, len(base), idx_val, cfg.split_seed)
    calib = SeededTransformDataset(base, idx_train, ev_t, random=False) if augment_plan(cfg).calib == "eval" else None
    return DataBundle(cfg.name, train, val, test, len(base.classes), cfg.image_size, record, calib)
