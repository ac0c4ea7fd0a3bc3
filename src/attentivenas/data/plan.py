"""What a data config's ``auto`` augmentation settings resolve to (:func:`augment_plan`), the
evaluation resize that follows ``data.image_size`` (:func:`eval_resize_of`), and one-line
descriptions of the transforms that run (:func:`describe_pipeline`), which logs and result files
record instead of a fixed recipe's.

Small images (``data.image_size`` under :data:`SMALL_IMAGE_PX`) and the in-memory digits and
Fashion-MNIST get no random-resized crop and no AutoAugment unless a config asks for them: at 28 px
a crop of 8-100% of the area throws away most of what the image shows (docs/training.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..config import DataConfig

#: images below this size (``data.image_size``, pixels) are small: no random-resized crop, no
#: AutoAugment and evaluation of the whole image unless the config says otherwise
SMALL_IMAGE_PX = 64
#: data sets held in memory as tensors (their training transform works on tensors)
TENSOR_SOURCES = ("digits", "fashion_mnist")
#: the centre crop's share of the resized side at ImageNet's 224 / 256
CENTRE_CROP_RATIO = 0.875


@dataclass(frozen=True)
class AugmentPlan:
    """The resolved training augmentation and calibration images of a data config."""

    crop: str  # none | random_resized | pad_random_crop
    crop_scale: tuple[float, float]
    pad: int  # pad_random_crop: pixels of padding (the largest shift)
    flip: bool
    auto_augment: str  # a policy name or "none"
    calib: str  # eval | train: the transform of the BN-calibration images
    eval_resize: int  # file sources: the evaluation's resize of the shorter side

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def is_small(cfg: DataConfig) -> bool:
    """Whether the config's images are small (``data.image_size`` under :data:`SMALL_IMAGE_PX`)."""
    return cfg.image_size < SMALL_IMAGE_PX


def eval_resize_of(cfg: DataConfig) -> int:
    """``data.eval_resize``, or when unset the size that follows ``data.image_size``: the image size
    itself for small images (the whole image is evaluated), else ``image_size / 0.875`` (256 at 224)."""
    if cfg.eval_resize is not None:
        return int(cfg.eval_resize)
    return cfg.image_size if is_small(cfg) else int(round(cfg.image_size / CENTRE_CROP_RATIO))


def augment_plan(cfg: DataConfig) -> AugmentPlan:
    """The augmentation ``cfg`` asks for, with every ``auto`` resolved (see the config's comments)."""
    plain = is_small(cfg) or cfg.name in TENSOR_SOURCES
    crop = cfg.crop
    if crop == "auto":
        crop = "pad_random_crop" if cfg.random_shift > 0 else "none" if plain else "random_resized"
    pad = (cfg.random_shift or max(1, cfg.image_size // 8)) if crop == "pad_random_crop" else 0
    flip = cfg.name != "digits" if cfg.random_flip == "auto" else bool(cfg.random_flip)
    policy = cfg.auto_augment if cfg.auto_augment != "auto" else "none" if plain else "v0"
    calib = cfg.calib_transform
    if calib == "auto":
        calib = "train" if cfg.name in TENSOR_SOURCES else "eval"
    return AugmentPlan(crop, (float(cfg.crop_scale[0]), float(cfg.crop_scale[1])), int(pad), flip, policy, calib,
                       eval_resize_of(cfg))


def eval_area_fraction(cfg: DataConfig) -> float:
    """The share of a (square) image's area that the evaluation's centre crop keeps."""
    return min(1.0, cfg.image_size / eval_resize_of(cfg)) ** 2


def describe_eval(cfg: DataConfig) -> str:
    """The evaluation transform in words, e.g. ``Resize 256 / CenterCrop 224 (bicubic)``."""
    if cfg.name in TENSOR_SOURCES:
        return f"whole image at {cfg.image_size} px (bilinear), no crop"
    return f"Resize {eval_resize_of(cfg)} / CenterCrop {cfg.image_size} ({cfg.interpolation})"


def describe_train(cfg: DataConfig) -> str:
    """The training transform in words, e.g. ``RandomResizedCrop 224 scale 0.08-1, flip, AutoAugment v0``."""
    p = augment_plan(cfg)
    if p.crop == "random_resized":
        parts = [f"RandomResizedCrop {cfg.image_size} scale {p.crop_scale[0]:g}-{p.crop_scale[1]:g} "
                 f"({cfg.interpolation})"]
    else:
        parts = [describe_eval(cfg)]
        if p.crop == "pad_random_crop":
            parts.append(f"pad {p.pad} + random crop {cfg.image_size}")
    if p.flip:
        parts.append("flip")
    if p.auto_augment != "none":
        parts.append(f"AutoAugment {p.auto_augment}")
    if cfg.random_erasing > 0 and cfg.name not in TENSOR_SOURCES:
        parts.append(f"RandomErasing {cfg.random_erasing:g}")
    return ", ".join(parts)


def describe_pipeline(cfg: DataConfig) -> dict[str, str]:
    """The transforms that run for ``cfg``: ``train``, ``eval`` and ``calibration`` (BN recalibration images)."""
    p = augment_plan(cfg)
    calib = describe_eval(cfg) if p.calib == "eval" else describe_train(cfg)
    return {"train": describe_train(cfg), "eval": describe_eval(cfg),
            "calibration": f"training images, {p.calib} transform: {calib}"}


#: a hold-out with fewer images warns at the start of a run (one image is worth 0.4 points or more)
SMALL_HOLDOUT = 250
#: evaluation that keeps less than this share of each image's area warns at the start of a run
EVAL_AREA_WARN = 0.5
#: the printed names of the splits
HOLDOUT_NAME, TEST_NAME = "hold-out", "test"


def points_per_image(n: int) -> float:
    """What one image is worth in points of top-1 on a split of ``n`` images."""
    return 100.0 / n if n else float("nan")


def split_lines(cfg: DataConfig, n_train: int, n_holdout: int, n_test: int) -> list[str]:
    """Which images are which split, in words: for an ImageFolder, which folder is the test split and
    where the hold-out comes from (``n_*``: the images of each split, ``n_train`` those trained on)."""
    if cfg.name in ("imagefolder", "imagenet"):
        root = str(cfg.path).rstrip("/")
        test = f"{TEST_NAME} = {root}/{cfg.test_dir} ({n_test:,} images)"
        if cfg.val_dir:
            hold = f"{HOLDOUT_NAME} = {root}/{cfg.val_dir} ({n_holdout:,} images)"
        else:
            hold = f"{HOLDOUT_NAME} = {n_holdout:,} images carved from {root}/{cfg.train_dir}"
        where = f"{root}/{cfg.train_dir}"
    else:
        test = f"{TEST_NAME} = the {cfg.name} test split ({n_test:,} images)"
        hold = f"{HOLDOUT_NAME} = {n_holdout:,} images carved from its training images"
        where = "the rest"
    if n_holdout:
        hold += f" (one image = {points_per_image(n_holdout):.2g} points)"
    return [f"data: {test}; {hold}; training on {n_train:,} images of {where}"]


def pipeline_lines(cfg: DataConfig) -> list[str]:
    """The transforms that run, one line each (see :func:`describe_pipeline`)."""
    d = describe_pipeline(cfg)
    return [f"data: train transform: {d['train']}", f"data: eval transform: {d['eval']}; BN calibration: "
            f"{d['calibration']}"]


def data_warnings(cfg: DataConfig, n_holdout: int, holdout_used: bool = True) -> list[str]:
    """One-line warnings about a config's data: an evaluation that crops most of each image, and a
    hold-out so small that one image moves top-1 by 0.4 points or more (when ``holdout_used``)."""
    out = []
    if cfg.name not in TENSOR_SOURCES and eval_area_fraction(cfg) < EVAL_AREA_WARN:
        out.append(f"data.eval_resize={eval_resize_of(cfg)} with data.image_size={cfg.image_size}: evaluation "
                   f"keeps the central {100 * eval_area_fraction(cfg):.0f}% of each image; unset data.eval_resize "
                   "(it follows image_size) or set it near image_size")
    if holdout_used and 0 < n_holdout < SMALL_HOLDOUT:
        ppi = points_per_image(n_holdout)
        out.append(f"hold-out has {n_holdout} images: one image is {ppi:.2g} points of top-1, so subnets closer than "
                   f"about {2 * 100 * (0.25 / n_holdout) ** 0.5:.0f} points cannot be told apart; hold out more "
                   f"(data.val_size, at least {SMALL_HOLDOUT})")
    return out
