"""What an ImageFolder holds (:func:`inspect_folder`) and a training config made for it
(:func:`config_for_folder`): the library side of ``attentivenas init --data DIR``.

The folder is ``DIR/train/<class>/*`` with ``DIR/val/<class>/*`` as the test split (the ImageNet
layout). Image sizes and channels are read from the headers of a seeded sample of at most
:data:`SAMPLE_IMAGES` images per split; counts and class balance from the file lists. The config
keeps small images whole (no random-resized crop, evaluation of the whole image, no AutoAugment),
trains the ``tiny`` space on them, holds out :func:`~attentivenas.data.splits.holdout_floor` images
for search and sizes the run to about :data:`IMAGES_BUDGET` training images.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from .folders import image_folder, require_dir
from .plan import SMALL_IMAGE_PX
from .splits import holdout_floor

#: images whose header is read per split (sizes, channels)
SAMPLE_IMAGES = 500
#: training images seen in the whole run of a config made by :func:`config_for_folder`
IMAGES_BUDGET = 60_000
#: channels of PIL's image modes
MODE_CHANNELS = {"1": 1, "L": 1, "LA": 2, "P": 3, "RGB": 3, "RGBA": 4, "CMYK": 4, "YCbCr": 3, "I": 1, "F": 1,
                 "I;16": 1}


@dataclass
class SplitReport:
    """One split of a folder: its images per class and what a sample of their headers says."""

    folder: str
    counts: dict[str, int]
    sizes: dict[str, int] = field(default_factory=dict)  # "WxH" -> images of the sample
    channels: dict[int, int] = field(default_factory=dict)  # channels -> images of the sample
    sampled: int = 0

    @property
    def images(self) -> int:
        return sum(self.counts.values())

    def to_dict(self) -> dict[str, Any]:
        return {"folder": self.folder, "images": self.images, "classes": len(self.counts), "counts": self.counts,
                "sizes": self.sizes, "channels": {str(k): v for k, v in self.channels.items()},
                "sampled": self.sampled}


@dataclass
class FolderReport:
    """What :func:`inspect_folder` found."""

    root: str
    train: SplitReport
    test: SplitReport

    @property
    def classes(self) -> list[str]:
        return sorted(self.train.counts)

    @property
    def image_side(self) -> int:
        """The images' shorter side (the median over the sample of both splits)."""
        sides = [min(int(v) for v in k.split("x")) for r in (self.train, self.test) for k, n in r.sizes.items()
                 for _ in range(n)]
        return int(statistics.median(sides))

    @property
    def balance(self) -> float:
        """The smallest class's training images over the largest's (1: balanced)."""
        counts = list(self.train.counts.values())
        return min(counts) / max(counts)

    def summary(self) -> list[str]:
        """Lines for the terminal."""
        lines = []
        for name, r in (("train", self.train), ("test", self.test)):
            counts = list(r.counts.values())
            sizes = ", ".join(f"{k} ({n})" for k, n in sorted(r.sizes.items(), key=lambda kv: -kv[1])[:3])
            chans = ", ".join(f"{c} ({n})" for c, n in sorted(r.channels.items()))
            lines.append(f"{name}: {r.folder}: {r.images:,} images in {len(counts)} classes "
                         f"({min(counts)}-{max(counts)} per class); sizes of {r.sampled} read: {sizes}; "
                         f"channels: {chans}")
        if self.balance < 0.5:
            lines.append(f"warning: the classes are unbalanced (smallest / largest = {self.balance:.2f}); "
                         "top-1 weighs the large classes")
        return lines

    def to_dict(self) -> dict[str, Any]:
        return {"root": self.root, "classes": self.classes, "image_side": self.image_side,
                "balance": round(self.balance, 4), "train": self.train.to_dict(), "test": self.test.to_dict()}


def _read_headers(paths: list[str], seed: int) -> tuple[dict[str, int], dict[int, int], int]:
    """Sizes and channels of a seeded sample of ``paths`` (headers only; unreadable files are named)."""
    from PIL import Image  # heavy: PIL loads only when images are read

    rng = np.random.default_rng(seed)
    pick = rng.choice(len(paths), size=min(SAMPLE_IMAGES, len(paths)), replace=False)
    sizes: Counter[str] = Counter()
    channels: Counter[int] = Counter()
    for i in sorted(int(j) for j in pick):
        try:
            with Image.open(paths[i]) as img:
                sizes[f"{img.width}x{img.height}"] += 1
                channels[MODE_CHANNELS.get(img.mode, 3)] += 1
        except (OSError, ValueError, SyntaxError) as exc:
            raise ConfigError(f"--data: cannot read image {paths[i]} ({type(exc).__name__}); "
                              "remove or replace the file") from None
    return dict(sizes), dict(channels), len(pick)


def _split(folder: Path, key: str, seed: int) -> SplitReport:
    ds = image_folder(folder, key)
    counts = Counter(ds.classes[t] for t in ds.targets)
    sizes, channels, n = _read_headers([p for p, _ in ds.samples], seed)
    return SplitReport(str(folder), {c: counts.get(c, 0) for c in ds.classes}, sizes, channels, n)


def inspect_folder(root: str | Path, train_dir: str = "train", test_dir: str = "val", seed: int = 0) -> FolderReport:
    """Inspect ``root/train_dir`` and ``root/test_dir`` (see the module doc); one :class:`ConfigError`
    line when the layout or the classes do not fit."""
    base = require_dir(Path(root).expanduser(), "--data", "dataset")
    if not (base / train_dir).is_dir() or not (base / test_dir).is_dir():
        raise ConfigError(f"--data: {base} needs {train_dir}/ and {test_dir}/ sub-folders, each with one folder "
                          f"per class (the test split is {test_dir}/); for a single folder of classes, move about a "
                          f"fifth of each class's images into {base / test_dir}/<class>/ and the rest into "
                          f"{base / train_dir}/<class>/")
    train = _split(base / train_dir, "--data", seed)
    test = _split(base / test_dir, "--data", seed + 1)
    if sorted(test.counts) != sorted(train.counts):
        missing = sorted(set(train.counts) ^ set(test.counts))
        raise ConfigError(f"--data: the class folders of {base / test_dir} differ from {base / train_dir} "
                          f"({', '.join(missing[:5])})")
    return FolderReport(str(base), train, test)


def _points(n: int) -> str:
    return f"{100.0 / n:.2g}" if n else "-"


def _sizes(report: FolderReport) -> tuple[int, int, int]:
    """The hold-out images, batch size and epochs of the config made for ``report``."""
    small = report.image_side < SMALL_IMAGE_PX
    n_train, classes = report.train.images, len(report.classes)
    val_size = max(min(holdout_floor(n_train), n_train - classes), classes)
    trained = n_train - val_size
    batch = max(8, min(64 if small else 32, trained // 4))
    epochs = int(min(100, max(2, round(IMAGES_BUDGET / max(trained, 1)))))
    return val_size, batch, epochs


def _data_rows(report: FolderReport, path: str, val_size: int, batch: int) -> list[tuple[str, str]]:
    """The config's ``seed``, ``space`` and ``data`` lines, each with its comment."""
    side = report.image_side
    small = side < SMALL_IMAGE_PX
    crop_note = ("small images: no random-resized crop (it keeps 8-100% of the area)" if small
                 else "RandomResizedCrop(image_size), area scale crop_scale")
    return [
        ("seed: 0", ""),
        (f"space: {'tiny' if small else 'attentivenas'}", "resolutions 24/28/32, 0.6-4.4 MFLOPs: for small images"
         if small else "resolutions 192-288: for ImageNet-sized images (slow on a CPU)"),
        ("data:", ""),
        ("  name: imagefolder", ""),
        (f"  path: {json.dumps(path)}", ""),
        ("  train_dir: train", ""),
        ("  test_dir: val", "the test split: never used for search or choices"),
        (f"  val_size: {val_size}", f"hold-out carved from train/ for search: one image = {_points(val_size)} "
                                    "points of top-1"),
        ("", "(unset: max(2%, min(1000, a fifth of train/)) images)"),
        ("  split_seed: 0", ""),
        (f"  image_size: {side if small else min(side, 224)}", "the images' own size" if small else "the training crop"),
        ("  eval_resize: null", "follows image_size: " + ("the whole image is evaluated" if small
                                                         else "image_size / 0.875 (256 for 224)")),
        ("  interpolation: bicubic", ""),
        (f"  crop: {'none' if small else 'random_resized'}", crop_note),
        *([("", "long schedules: pad_random_crop with random_shift 2")] if small else []),
        ("  crop_scale: [0.08, 1.0]", "random_resized only"),
        ("  random_shift: 0", "pad_random_crop's padding in pixels"),
        ("  random_flip: false", "left-right flips: true when a mirrored image is the same class"),
        (f"  auto_augment: {'none' if small else 'v0'}", "off for small images and short runs" if small
         else "the authors' AutoAugment"),
        ("  calib_transform: eval", "BN recalibrated on training images through the evaluation transform"),
        (f"  batch_size: {batch}", ""),
        ("  eval_batch_size: 500", ""),
        ("  num_workers: 0", ""),
    ]


def _training_rows(small: bool, epochs: int) -> list[tuple[str, str]]:
    """The config's model, loss, optimiser, sampler, evaluation, checkpoint, runtime and log lines."""
    return [
        ("model:", ""),
        ("  bn_momentum: 0.0", "BN statistics are recalibrated before every evaluation"),
        ("  dropout: 0.1", ""),
        ("  drop_connect: 0.1", ""),
        ("  init: kaiming_fan_out", ""),
        ("loss:", ""),
        ("  label_smoothing: 0.1", ""),
        ("  distill: kd", ""),
        (f"  distill_warmup_epochs: {max(1, epochs // 2)}", "labels only at first, then in-place distillation"),
        ("optim:", ""),
        ("  lr: 0.1", "per 256 images (scaled to the batch)"),
        (f"  epochs: {epochs}", f"about {IMAGES_BUDGET:,} training images in all"),
        ("  warmup_epochs: 1", ""),
        ("  weight_decay: 5.0e-5", ""),
        ("sampler:", ""),
        ("  method: bestup", ""),
        ("  k: 3", ""),
        (f"  bin_width: {0.25 if small else 25.0}", "MFLOPs"),
        ("  constraint: flops", ""),
        ("  estimator: loss", ""),
        ("  prior_samples: 20000", ""),
        ("eval:", ""),
        ("  every_epochs: 1", ""),
        ("  split: holdout", "epoch-end checks on the hold-out; the test split stays for the end"),
        ("  calib_batches: 8", ""),
        ("checkpoint:", ""),
        ("  every_steps: 500", ""),
        ("  keep_last: 2", ""),
        ("runtime:", ""),
        ("  device: auto", ""),
        ("log:", ""),
        ("  every_steps: 20", ""),
        ("  tensorboard: false", ""),
    ]


def config_for_folder(report: FolderReport, data_path: str | None = None) -> str:
    """A commented training config (YAML text) for the folder of ``report``; ``attentivenas train
    --config FILE`` reads it as is."""
    side = report.image_side
    val_size, batch, epochs = _sizes(report)
    rows = _data_rows(report, data_path or report.root, val_size, batch) + _training_rows(side < SMALL_IMAGE_PX, epochs)
    channels = sorted(set(report.train.channels) | set(report.test.channels))
    lines = [
        f"# Made by `attentivenas init` from {report.root}:",
        f"#   train: {report.train.images:,} images in {len(report.classes)} classes ({min(report.train.counts.values())}-"
        f"{max(report.train.counts.values())} per class); test (val/): {report.test.images:,} images",
        f"#   images: shorter side {side} px (median of a sample), channels {channels} (read as RGB)",
        "# Train with: attentivenas train --config THIS_FILE --out runs/mine",
    ]
    lines += [f"{key:<26} # {note}".rstrip() if note else key for key, note in rows]
    return "\n".join(lines) + "\n"
