"""Where stage 2 measures a subnet: the images of a ``--data`` argument, its splits, and whether a
split holds images the checkpoint trained on.

The settings (split, image pipeline, calibration) are :class:`~attentivenas.config.MeasureSettings`,
defined in ``config/``; :data:`SPLITS`, :data:`PIPELINES` and :data:`INTERPOLATIONS` are the values
they allow. ``pipeline="authors"`` prepares every image once, Resize 256 (shorter side) then
CenterCrop 224 (the recipe's ``data.eval_resize`` / ``data.image_size``), and the network resizes it
to the subnet's resolution (bicubic, align_corners False), as in training; ``"per-resolution"``
prepares the evaluation images at the subnet's resolution r (Resize r / 0.875, CenterCrop r), as a
standalone model is usually evaluated; calibration crops stay the shared 224 crops either way.

:func:`split_of` picks the measured split and :func:`holdout_warning` says when that split holds
images the checkpoint trained on.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from torch.utils.data import Dataset, Subset

from ..config import DataConfig
from ..data import DataBundle, build_data, halves
from ..errors import UserError
from ..space import SearchSpace

PIPELINES = ("authors", "per-resolution")
INTERPOLATIONS = ("bilinear", "bicubic")
#: ``holdout``: the seeded part of the training data held out for search; ``test`` (= ``val``): the
#: data set's test split, an ImageFolder's val/; ``val-search`` / ``val-report`` (= ``test-search`` /
#: ``test-report``): two seeded disjoint halves of it, to search on one and report on the other.
SPLITS = ("holdout", "test", "val", "val-search", "val-report", "test-search", "test-report")
#: keys of a checkpoint's data config that define its splits (kept when --data points elsewhere)
SPLIT_KEYS = ("train_dir", "test_dir", "val_dir", "val_fraction", "val_size", "split_seed")
#: ``--data`` kinds and the data-config names each may come from
KINDS = {"imagefolder": ("imagefolder", "imagenet"), "cifar10": ("cifar10",), "cifar100": ("cifar100",),
         "digits": ("digits",), "fashion_mnist": ("fashion_mnist",)}
#: data sets held in memory as tensors at one size: no crops, resized in the network only
TENSOR_DATA = ("digits", "fashion_mnist")


def _saved_data(meta: dict[str, Any] | None) -> dict[str, Any] | None:
    saved = (meta or {}).get("config", {})
    data = saved.get("data") if isinstance(saved, dict) else None
    return dict(data) if isinstance(data, dict) else None


def _kind(spec: str) -> tuple[str, str | None]:
    if spec == "digits":
        return "digits", None
    if spec == "fashion_mnist" or spec.startswith("fashion_mnist:"):
        return "fashion_mnist", spec.split(":", 1)[1] if ":" in spec else None
    if spec.startswith(("cifar10:", "cifar100:")):
        name, path = spec.split(":", 1)
        return name, path
    return "imagefolder", spec


def stage2_data_config(spec: str | None, space: SearchSpace, meta: dict[str, Any] | None = None,
                       resolution: int | None = None, interpolation: str | None = "bilinear") -> DataConfig:
    """The data config stage 2 reads for a ``--data`` argument (see :func:`resolve_data`)."""
    saved = _saved_data(meta)
    cfg: dict[str, Any]
    if spec is None:
        if saved is None:
            raise UserError("the checkpoint has no training data config: pass --data digits|cifar10:PATH|PATH")
        cfg = saved
    else:
        kind, path = _kind(spec)
        cfg = {"name": kind} if path is None else {"name": kind, "path": path}
        if saved is not None and saved.get("name") in KINDS[kind]:  # the same data elsewhere: keep its splits
            cfg.update({k: saved[k] for k in SPLIT_KEYS if k in saved})
            for k in ("image_size", "eval_resize", "calib_transform"):
                if k in saved and kind not in TENSOR_DATA:
                    cfg[k] = saved[k]
            cfg["name"] = saved["name"]
    if saved is None and cfg.get("name") not in TENSOR_DATA:  # the authors' checkpoints: calibrated as they did,
        cfg.setdefault("calib_transform", "train")             # on training crops (the published evaluation)
    if cfg.get("name") == "digits":
        cfg["image_size"] = max(space.resolutions)
    elif cfg.get("name") == "fashion_mnist":
        cfg["image_size"] = int((saved or {}).get("image_size", max(space.resolutions)))
    else:
        if resolution is not None:
            cfg["image_size"] = int(resolution)
            cfg["eval_resize"] = int(round(resolution / 0.875))
        if interpolation is not None:
            cfg["interpolation"] = interpolation
    try:
        return DataConfig(**cfg)
    except ValidationError as exc:  # report it as a user error
        first = str(exc).strip().splitlines()
        raise UserError(f"bad --data {spec!r}: {first[-1] if first else exc}") from None


def resolve_data(spec: str | None, space: SearchSpace, meta: dict[str, Any] | None = None,
                 resolution: int | None = None, seed: int = 0, interpolation: str | None = "bilinear") -> DataBundle:
    """The :class:`~attentivenas.data.DataBundle` of a ``--data`` argument.

    ``digits`` (the embedded digits at the space's largest resolution), ``cifar10:PATH``,
    ``cifar100:PATH``, or ``PATH`` (an ImageFolder root with ``train/`` and ``val/``); ``None`` takes
    the data section of the checkpoint's training config. When the checkpoint trained on the same
    kind of data, its split settings (hold-out size and seed, folders) and crop sizes are kept, so the
    hold-out is the one it held out. Images are prepared at the recipe's crop (224 unless the
    checkpoint says otherwise) or, with ``resolution``, at that resolution (resize ``resolution /
    0.875``, centre crop); ``interpolation`` replaces the recipe's (None keeps it).
    """
    return build_data(stage2_data_config(spec, space, meta, resolution, interpolation), seed)


def split_of(bundle: DataBundle, split: str) -> Dataset:
    """The evaluation split of a bundle (one of :data:`SPLITS`)."""
    if split not in SPLITS:
        raise UserError(f"--split {split!r} is not one of {list(SPLITS)}")
    if split == "holdout":
        if len(bundle.val) == 0:  # type: ignore[arg-type]
            raise UserError("--split holdout: this data holds out no training images (data.val_fraction=0); "
                            "use --split test, val-search or val-report")
        return bundle.val
    if split in ("test", "val"):
        return bundle.test
    search, report = halves(len(bundle.test), int(bundle.holdout.get("split_seed", 0)))  # type: ignore[arg-type]
    return Subset(bundle.test, (search if split.endswith("-search") else report).tolist())


def capped(dataset: Dataset, max_images: int | None) -> Dataset:
    """The first ``max_images`` images of a split (all of them for None)."""
    n = len(dataset)  # type: ignore[arg-type]
    return dataset if max_images is None or max_images >= n else Subset(dataset, range(max_images))


def holdout_warning(meta: dict[str, Any] | None, bundle: DataBundle, split: str) -> str | None:
    """A warning when ``split`` holds images the checkpoint trained on, else None.

    Only the hold-out can: the checkpoint's record (see :func:`attentivenas.data.holdout_record`)
    says which images it held out; the authors' checkpoint trained on all of ``train/``.
    """
    if split != "holdout":
        return None
    meta = meta or {}
    advice = "measure on --split test (or val-search / val-report) instead"
    if meta.get("source") == "authors":
        return (f"--split holdout: the authors' checkpoint trained on all of ImageNet train/, so the hold-out images "
                f"were trained on; {advice}")
    record = meta.get("holdout")
    if not isinstance(record, dict):
        return (f"--split holdout: the checkpoint does not record which training images it held out (written "
                f"before this release, or not ours); if it trained on them the accuracy is inflated; {advice}")
    mine = bundle.holdout
    if record.get("val_dir"):
        same = record.get("val_dir") == mine.get("val_dir")
    else:
        same = (int(record.get("held_out", -1)) > 0 and all(
            record.get(k) == mine.get(k) for k in ("pool", "held_out", "split_seed", "indices_sha256")))
    if same:
        return None
    if not record.get("val_dir") and int(record.get("held_out", 0)) == 0:
        return (f"--split holdout: the checkpoint trained on all {record.get('pool')} training images (it held out "
                f"none), so these images were trained on; {advice}")
    return (f"--split holdout: this hold-out ({mine.get('held_out')} of {mine.get('pool')} images, seed "
            f"{mine.get('split_seed')}) is not the one the checkpoint held out ({record.get('held_out')} of "
            f"{record.get('pool')}, seed {record.get('split_seed')}): some of its images were trained on; {advice}")
