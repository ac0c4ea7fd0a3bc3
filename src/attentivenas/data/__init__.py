"""Data: the data sets, their splits, the recipe's transforms and the training / evaluation loaders.

Lives here: ``splits`` (:class:`DataBundle` of train / hold-out / test, the seeded hold-out and its
record, halves, stratified subsets), ``transforms`` (the recipe's transforms, per-sample seeding and
per-image failure messages), ``augment`` (the AutoAugment / RandAugment policies on timm's and
torchvision's ops), ``ops`` (transform chains that name a failing op), ``idx`` (IDX files read safely), ``tensors`` (the embedded digits and
Fashion-MNIST, held in memory), ``folders`` (ImageFolder and CIFAR files), ``loaders`` (seeded,
sharded, resumable batches), ``device`` (those batches made on the device from a tensor data set held
there, ``data.on_device``) and :func:`build_data`, which builds a ``DataConfig``'s bundle.

May import: ``attentivenas.config``, ``errors``, ``rng``.

Multi-resolution: images are loaded at ``data.image_size`` (digits and Fashion-MNIST: the space's
largest resolution) and every subnet sees them resized (bicubic) to its own resolution, as in the
authors' network; the training step resizes each batch once per resolution and shares it between
the subnets of that resolution (see :mod:`attentivenas.train.sandwich`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Subset, TensorDataset

from ..config import DataConfig
from ..errors import ConfigError
from .augment import RAND_AUGMENT_OPS, TORCHVISION_POLICIES, V0_POLICY, augment_op
from .device import DeviceSource, DeviceTrainLoader, device_source, epoch_batches, supports_device, use_device_data
from .folders import cifar_data, image_folder, imagefolder_data, load_image, require_dir
from .idx import read_idx
from .loaders import SkipSampler, batches_per_epoch, check_batch_size, eval_loader, per_rank_samples, train_loader
from .ops import Chain, LabelledOp, TransformFailure
from .plan import (
    HOLDOUT_NAME,
    SMALL_IMAGE_PX,
    TEST_NAME,
    AugmentPlan,
    augment_plan,
    data_warnings,
    describe_eval,
    describe_pipeline,
    describe_train,
    eval_area_fraction,
    eval_resize_of,
    pipeline_lines,
    points_per_image,
    split_lines,
)
from .splits import (
    DEFAULT_VAL_FRACTION,
    HOLDOUT_FLOOR,
    DataBundle,
    check_holdout_bounds,
    halves,
    holdout_count,
    holdout_floor,
    holdout_record,
    holdout_split,
    stratified_subset,
)
from .tensors import (
    DIGITS_MEAN,
    DIGITS_STD,
    FASHION_MNIST_DIR,
    GreyImages,
    digits_bundle,
    digits_data,
    digits_split,
    fashion_mnist_data,
    fashion_mnist_files,
)
from .transforms import (
    CIFAR_MEAN,
    CIFAR_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    RandomFlip,
    RandomShift,
    SeededTransformDataset,
    eval_transform,
    interpolation_mode,
    tensor_train_transform,
    train_transform,
)

BUILDERS = {"digits": digits_data, "fashion_mnist": fashion_mnist_data, "imagefolder": imagefolder_data,
            "imagenet": imagefolder_data, "cifar10": cifar_data, "cifar100": cifar_data}


def labels_of(dataset: Dataset) -> np.ndarray:
    """The class labels of a data set of ours, without reading its images."""
    if isinstance(dataset, SeededTransformDataset):
        return labels_of(dataset.base)[np.asarray(dataset.indices, dtype=np.int64)]
    if isinstance(dataset, Subset):
        return labels_of(dataset.dataset)[np.asarray(dataset.indices, dtype=np.int64)]
    if isinstance(dataset, TensorDataset):
        return dataset.tensors[1].numpy()
    targets = getattr(dataset, "targets", None)
    if targets is None:
        raise ConfigError(f"data.train_size: cannot read the labels of a {type(dataset).__name__}")
    return np.asarray(targets)


def subset_of(dataset: Dataset, keep: np.ndarray) -> Dataset:
    """The items ``keep`` of a data set, keeping its per-sample seeding."""
    if isinstance(dataset, SeededTransformDataset):
        out = SeededTransformDataset(dataset.base, [dataset.indices[int(k)] for k in keep], dataset.transform,
                                     dataset.seed, dataset.random)
        out.epoch = dataset.epoch
        return out
    if isinstance(dataset, TensorDataset):
        t = torch.from_numpy(np.asarray(keep, dtype=np.int64))
        return TensorDataset(*(x[t] for x in dataset.tensors))
    return Subset(dataset, [int(k) for k in keep])


def build_data(cfg: DataConfig, seed: int = 0) -> DataBundle:
    """Train / hold-out (for search) / test datasets of ``cfg``; ``seed`` drives augmentation.

    ``digits`` needs no files; ``fashion_mnist`` reads the four IDX files in ``data.path`` (default
    the Debian package's folder); ``imagefolder``/``imagenet`` read ``data.path/train`` (a seeded
    hold-out of it, or ``data.val_dir``) and ``data.path/val`` as test; ``cifar10``/``cifar100`` read
    torchvision's files under ``data.path`` (no download unless ``data.download``). With
    ``data.train_size``, training uses a seeded, class-stratified subset of that many images.
    """
    bundle = BUILDERS[cfg.name](cfg, seed)
    if cfg.train_size is not None and cfg.train_size < len(bundle.train):  # type: ignore[arg-type]
        keep = stratified_subset(labels_of(bundle.train), cfg.train_size, cfg.split_seed)
        record: dict[str, Any] = dict(bundle.holdout, train_size=int(cfg.train_size))
        calib = subset_of(bundle.calib, keep) if bundle.calib is not None else None
        bundle = DataBundle(bundle.name, subset_of(bundle.train, keep), bundle.val, bundle.test, bundle.num_classes,
                            bundle.image_size, record, calib)
    return bundle


__all__ = [
    "AugmentPlan", "HOLDOUT_FLOOR", "SMALL_IMAGE_PX", "augment_plan", "check_holdout_bounds", "describe_eval",
    "describe_pipeline", "describe_train", "eval_area_fraction", "eval_resize_of", "holdout_floor",
    "tensor_train_transform", "HOLDOUT_NAME", "TEST_NAME", "data_warnings", "pipeline_lines", "points_per_image",
    "split_lines",
    "BUILDERS", "CIFAR_MEAN", "CIFAR_STD", "Chain", "DEFAULT_VAL_FRACTION", "DIGITS_MEAN", "DIGITS_STD",
    "DataBundle", "DeviceSource", "DeviceTrainLoader", "FASHION_MNIST_DIR", "GreyImages", "IMAGENET_MEAN", "IMAGENET_STD", "LabelledOp",
    "RAND_AUGMENT_OPS", "RandomFlip", "RandomShift", "SeededTransformDataset", "SkipSampler", "TORCHVISION_POLICIES",
    "TransformFailure", "V0_POLICY", "augment_op", "batches_per_epoch",
    "build_data", "check_batch_size", "cifar_data", "device_source", "epoch_batches", "digits_bundle", "digits_data", "digits_split", "eval_loader", "eval_transform",
    "fashion_mnist_data", "fashion_mnist_files", "halves", "holdout_count", "holdout_record", "holdout_split",
    "image_folder", "imagefolder_data", "interpolation_mode", "labels_of", "load_image", "per_rank_samples",
    "read_idx", "require_dir", "stratified_subset", "subset_of", "supports_device", "train_loader", "train_transform", "use_device_data",
]
