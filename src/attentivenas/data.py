"""Datasets and loaders: the embedded digits (scikit-learn's bundled 8x8 handwritten digits),
ImageFolder (ImageNet layout) and CIFAR-10/100, with the recipe's transforms.

Multi-resolution: images are loaded at ``data.image_size`` (digits: the space's largest
resolution) and every subnet sees them resized (bicubic) to its own resolution, as in the
authors' network; the training step resizes each batch once per resolution and shares it between
the subnets of that resolution (see :mod:`attentivenas.train.sandwich`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler, Subset, TensorDataset

from .config import DataConfig
from .errors import ConfigError
from .rng import mix_seed, seeded_cpu_rngs

DIGITS_MEAN = 0.5
DIGITS_STD = 0.5


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


def digits_bundle(image_size: int = 32, seed: int = 0, val_fraction: float = 0.15,
                  test_fraction: float = 0.15) -> DataBundle:
    """scikit-learn's 1797 handwritten digits, upscaled (bilinear) to ``image_size``, as 3-channel
    tensors normalised to about [-1, 1]; a stratified split into train, val and test from ``seed``."""
    from sklearn.datasets import load_digits  # heavy (about 0.5 s): only the digits need scikit-learn here
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = torch.from_numpy(digits.images.astype(np.float32) / 16.0).unsqueeze(1)
    x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False)
    x = ((x - DIGITS_MEAN) / DIGITS_STD).expand(-1, 3, -1, -1).contiguous()
    y = torch.from_numpy(digits.target.astype(np.int64))
    idx = np.arange(len(y))
    idx_trainval, idx_test = train_test_split(idx, test_size=test_fraction, random_state=seed, stratify=y.numpy())
    if val_fraction > 0:
        rel_val = val_fraction / (1.0 - test_fraction)
        idx_train, idx_val = train_test_split(
            idx_trainval, test_size=rel_val, random_state=seed, stratify=y.numpy()[idx_trainval]
        )
    else:  # nothing held out: train on all of the training part
        idx_train, idx_val = idx_trainval, idx_trainval[:0]

    def subset(ids: np.ndarray) -> TensorDataset:
        t = torch.from_numpy(np.sort(ids))
        return TensorDataset(x[t], y[t])

    record = holdout_record("digits", len(idx_trainval), idx_val, seed)
    return DataBundle("digits", subset(idx_train), subset(idx_val), subset(idx_test), 10, image_size, record)


# =========================================================================== training data
# Everything below builds the datasets and loaders of a :class:`~attentivenas.config.DataConfig`.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
DEFAULT_VAL_FRACTION = {"digits": 0.15, "imagefolder": 0.02, "imagenet": 0.02, "cifar10": 0.1, "cifar100": 0.1}


class SeededTransformDataset(Dataset):
    """``transform(base[indices[i]])`` with the torch RNG seeded from (seed, epoch, index).

    Random augmentations are then a pure function of the sample and the epoch: the same in any
    worker, after a resume, and independent of the global RNG (which is saved and restored).
    """

    def __init__(self, base: Dataset, indices: Sequence[int] | None, transform: Callable | None, seed: int = 0,
                 random: bool = True) -> None:
        self.base = base
        self.indices = list(range(len(base))) if indices is None else [int(i) for i in indices]  # type: ignore[arg-type]
        self.transform = transform
        self.seed = seed
        self.random = random
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x, y = self.base[self.indices[i]]
        if self.transform is not None:
            if self.random:  # torchvision draws from torch, timm from python's random and numpy
                with seeded_cpu_rngs(mix_seed(self.seed, self.epoch, self.indices[i])):
                    x = self.transform(x)
            else:
                x = self.transform(x)
        return x, int(y)


class RandomShift:
    """Translate a CHW tensor by up to ``max_shift`` pixels (zero-padding at the digits' background)."""

    def __init__(self, max_shift: int, fill: float = -1.0) -> None:
        self.max_shift = max_shift
        self.fill = fill

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        s = self.max_shift
        if s <= 0:
            return x
        dy, dx = (int(v) for v in torch.randint(-s, s + 1, (2,)))
        padded = F.pad(x, (s, s, s, s), value=self.fill)
        h, w = x.shape[-2:]
        return padded[..., s + dy : s + dy + h, s + dx : s + dx + w]


def _interp(name: str):
    from torchvision.transforms import InterpolationMode  # heavy: torchvision loads only when images need it

    return InterpolationMode.BICUBIC if name == "bicubic" else InterpolationMode.BILINEAR


#: ``data.auto_augment`` values read by torchvision (its original AutoAugment policies)
TORCHVISION_POLICIES = ("imagenet", "cifar10", "svhn")


def augment_op(cfg: DataConfig, mean: Sequence[float]) -> Callable | None:
    """The PIL-image augmentation of ``data.auto_augment``.

    ``v0`` is the authors': timm's TensorFlow-style ImageNet policy "v0" with magnitude noise
    (``data.augment_magnitude_std``, 0.5), random bilinear/bicubic resampling and the mean colour as
    fill; ``randaugment`` is timm's RandAugment (``data.rand_augment_ops`` ops of magnitude
    ``data.rand_augment_magnitude``, same noise and fill); ``imagenet``/``cifar10``/``svhn`` are
    torchvision's original AutoAugment policies (bilinear, black fill); ``none`` is none.
    """
    if cfg.auto_augment == "none":
        return None
    if cfg.auto_augment in TORCHVISION_POLICIES:
        from torchvision import transforms as T  # heavy: torchvision loads only when images need it

        return T.AutoAugment(T.AutoAugmentPolicy(cfg.auto_augment), interpolation=_interp("bilinear"))
    from timm.data.auto_augment import (  # heavy: timm loads only for its augmentations
        auto_augment_transform,
        rand_augment_transform,
    )

    hparams = {"translate_const": int(cfg.image_size * 0.45), "img_mean": tuple(round(255 * m) for m in mean)}
    std = cfg.augment_magnitude_std
    if cfg.auto_augment == "v0":
        return auto_augment_transform(f"v0-mstd{std}", hparams)
    return rand_augment_transform(f"rand-m{cfg.rand_augment_magnitude}-n{cfg.rand_augment_ops}-mstd{std}", hparams)


def train_transform(cfg: DataConfig, mean: Sequence[float], std: Sequence[float]) -> Callable:
    """The recipe's training transform: RandomResizedCrop, flip, AutoAugment, normalise, and
    RandomErasing when ``data.random_erasing`` > 0 (timm's, per-pixel noise)."""
    from torchvision import transforms as T  # heavy: torchvision loads only when images need it

    ops: list[Callable] = [T.RandomResizedCrop(cfg.image_size, interpolation=_interp(cfg.interpolation))]
    if cfg.random_flip:
        ops.append(T.RandomHorizontalFlip())
    augment = augment_op(cfg, mean)
    if augment is not None:
        ops.append(augment)
    ops += [T.ToTensor(), T.Normalize(mean, std)]
    if cfg.random_erasing > 0:
        from timm.data.random_erasing import RandomErasing  # heavy: timm loads only for its augmentations

        ops.append(RandomErasing(cfg.random_erasing, mode="pixel", device="cpu"))
    return T.Compose(ops)


def eval_transform(cfg: DataConfig, mean: Sequence[float], std: Sequence[float]) -> Callable:
    """The recipe's evaluation transform: resize (shorter side), centre crop, normalise."""
    from torchvision import transforms as T  # heavy: torchvision loads only when images need it

    return T.Compose([
        T.Resize(cfg.eval_resize, interpolation=_interp(cfg.interpolation)),
        T.CenterCrop(cfg.image_size),
        T.ToTensor(),
        T.Normalize(mean, std),
    ])


def _val_count(cfg: DataConfig, n: int) -> int:
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


def _digits(cfg: DataConfig, seed: int) -> DataBundle:
    frac = cfg.val_fraction if cfg.val_fraction is not None else DEFAULT_VAL_FRACTION["digits"]
    b = digits_bundle(image_size=cfg.image_size, seed=cfg.split_seed, val_fraction=frac)
    if cfg.random_shift > 0:
        train = SeededTransformDataset(b.train, None, RandomShift(cfg.random_shift, fill=-DIGITS_MEAN / DIGITS_STD),
                                       seed)
        b = DataBundle(b.name, train, b.val, b.test, b.num_classes, b.image_size)
    return b


def _require_dir(path: Path, key: str, what: str) -> Path:
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


def _image_folder(root: Path, key: str) -> Any:
    from torchvision.datasets import ImageFolder  # heavy: torchvision loads only when images need it

    try:
        folder = ImageFolder(str(root), loader=load_image)
    except (FileNotFoundError, RuntimeError) as exc:
        raise ConfigError(f"{key}: no class folders with images in {root} ({exc})") from None
    if len(folder.classes) < 2:
        raise ConfigError(f"{key}: {root} holds {len(folder.classes)} class folder; a classifier needs at least 2")
    return folder


def _imagefolder(cfg: DataConfig, seed: int) -> DataBundle:
    root = _require_dir(Path(str(cfg.path)).expanduser(), "data.path", "dataset")
    train_root = _require_dir(root / cfg.train_dir, "data.train_dir", "training")
    test_root = _require_dir(root / cfg.test_dir, "data.test_dir", "test")
    base = _image_folder(train_root, "data.path")
    tr_t = train_transform(cfg, IMAGENET_MEAN, IMAGENET_STD)
    ev_t = eval_transform(cfg, IMAGENET_MEAN, IMAGENET_STD)
    if cfg.val_dir:
        val_base = _image_folder(_require_dir(root / cfg.val_dir, "data.val_dir", "validation"), "data.val_dir")
        if val_base.classes != base.classes:
            raise ConfigError(f"data.val_dir: the classes of {root / cfg.val_dir} differ from {train_root}")
        train = SeededTransformDataset(base, None, tr_t, seed)
        val: Dataset = SeededTransformDataset(val_base, None, ev_t, random=False)
        record = holdout_record(cfg.name, len(base), [], cfg.split_seed, val_dir=cfg.val_dir)
    else:
        idx_train, idx_val = holdout_split(len(base), _val_count(cfg, len(base)), cfg.split_seed)
        train = SeededTransformDataset(base, idx_train, tr_t, seed)
        val = SeededTransformDataset(base, idx_val, ev_t, random=False)
        record = holdout_record(cfg.name, len(base), idx_val, cfg.split_seed)
    test_base = _image_folder(test_root, "data.test_dir")
    if test_base.classes != base.classes:
        raise ConfigError(f"data.test_dir: the classes of {test_root} differ from {train_root}")
    test = SeededTransformDataset(test_base, None, ev_t, random=False)
    return DataBundle(cfg.name, train, val, test, len(base.classes), cfg.image_size, record)


def _cifar(cfg: DataConfig, seed: int) -> DataBundle:
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
    idx_train, idx_val = holdout_split(len(base), _val_count(cfg, len(base)), cfg.split_seed)
    train = SeededTransformDataset(base, idx_train, tr_t, seed)
    val = SeededTransformDataset(base, idx_val, ev_t, random=False)
    test = SeededTransformDataset(test_base, None, ev_t, random=False)
    record = holdout_record(cfg.name, len(base), idx_val, cfg.split_seed)
    return DataBundle(cfg.name, train, val, test, len(base.classes), cfg.image_size, record)


def build_data(cfg: DataConfig, seed: int = 0) -> DataBundle:
    """Train / held-out val (for search) / test datasets of ``cfg``; ``seed`` drives augmentation.

    ``digits`` needs no files; ``imagefolder``/``imagenet`` read ``data.path/train`` (a seeded
    held-out split of it, or ``data.val_dir``, is the val split) and ``data.path/val`` as test;
    ``cifar10``/``cifar100`` read torchvision's files under ``data.path`` (no download unless
    ``data.download``), with a seeded held-out split of the training set as val.
    """
    if cfg.name == "digits":
        return _digits(cfg, seed)
    if cfg.name in ("imagefolder", "imagenet"):
        return _imagefolder(cfg, seed)
    return _cifar(cfg, seed)


# =========================================================================== loaders
class SkipSampler(Sampler[int]):
    """Indices of ``sampler`` from position ``skip`` on (to resume inside an epoch)."""

    def __init__(self, sampler: Sampler[int], skip: int = 0) -> None:
        self.sampler = sampler
        self.skip = skip

    def __iter__(self) -> Iterator[int]:
        it = iter(self.sampler)
        for _ in range(self.skip):
            next(it, None)
        yield from it

    def __len__(self) -> int:
        return max(0, len(self.sampler) - self.skip)  # type: ignore[arg-type]


def per_rank_samples(n: int, world_size: int) -> int:
    """Samples each rank sees per epoch (DistributedSampler pads to a multiple of the world size)."""
    return -(-n // world_size)


def batches_per_epoch(n: int, batch_size: int, world_size: int = 1) -> int:
    """Full batches per rank and epoch (the last partial batch is dropped)."""
    return per_rank_samples(n, world_size) // batch_size


def check_batch_size(n: int, batch_size: int, world_size: int = 1) -> None:
    """Raise :class:`ConfigError` when a process's batch is larger than its share of the data."""
    per_rank = per_rank_samples(n, world_size)
    if batch_size > per_rank:
        where = f" ({world_size} processes)" if world_size > 1 else ""
        raise ConfigError(
            f"data.batch_size={batch_size} is larger than the training split: {per_rank} images per process{where}; "
            f"use data.batch_size <= {per_rank}"
        )


def train_loader(dataset: Dataset, batch_size: int, seed: int, epoch: int, rank: int = 0, world_size: int = 1,
                 skip_batches: int = 0, num_workers: int = 0, pin_memory: bool = False) -> DataLoader:
    """The training batches of one epoch on one rank: shuffled from (seed, epoch), sharded, full
    batches only, the first ``skip_batches`` skipped (a resumed run sees the same batches)."""
    check_batch_size(len(dataset), batch_size, world_size)  # type: ignore[arg-type]
    if isinstance(dataset, SeededTransformDataset):
        dataset.set_epoch(epoch)
    sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed)
    sampler.set_epoch(epoch)
    generator = torch.Generator().manual_seed(mix_seed(seed, epoch, rank))
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=SkipSampler(sampler, skip_batches * batch_size),
        drop_last=True,
        num_workers=num_workers,
        pin_memory=pin_memory,
        generator=generator,
        persistent_workers=False,
    )


def eval_loader(dataset: Dataset, batch_size: int, rank: int = 0, world_size: int = 1, num_workers: int = 0,
                pin_memory: bool = False) -> DataLoader:
    """Sequential batches of this rank's shard (every ``world_size``-th sample, no padding)."""
    n = len(dataset)  # type: ignore[arg-type]
    shard = dataset if world_size == 1 else Subset(dataset, list(range(rank, n, world_size)))
    return DataLoader(shard, batch_size=batch_size, shuffle=False, num_workers=num_workers, pin_memory=pin_memory,
                      generator=torch.Generator().manual_seed(rank))  # leaves the global RNG alone
