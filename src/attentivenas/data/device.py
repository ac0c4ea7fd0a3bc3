"""Training batches made on the device (``data.on_device``): an in-memory tensor data set (digits,
Fashion-MNIST) is kept whole on the device, and each batch is gathered, normalised and augmented
there, so a GPU never waits for a Python data loader.

The order of the samples is the CPU loader's (the same seeded :class:`DistributedSampler`
permutation, sharded, full batches only, the first ``skip_batches`` skipped on a resume). The
augmentation is the CPU path's ops (:class:`~.transforms.RandomShift`: a translation by up to
``max_shift`` pixels, filled with the background value; :class:`~.transforms.RandomFlip`: a
left-right flip with probability ``p``), with the same distribution but its own random numbers: a
counter-based integer hash of (seed, epoch, sample index, draw), so each sample's augmentation is a
pure function of the sample and the epoch, as on the CPU, the same on any device, and no generator
(global or not) is touched. Not bit-identical to the CPU path.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, DistributedSampler, Subset, TensorDataset

from ..config import DataConfig
from ..errors import ConfigError
from ..rng import mix_seed
from .loaders import check_batch_size, train_loader
from .ops import Chain
from .tensors import GreyImages
from .transforms import RandomFlip, RandomShift, SeededTransformDataset

_M32 = 0xFFFFFFFF
#: the device-side ops: ("shift", max_shift, fill) and ("flip", p)
Op = tuple[str, float, float]


def hash32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash of an int64 tensor of values in ``[0, 2**32)`` (exact on every device:
    the products stay below 2**63)."""
    x = x ^ (x >> 16)
    x = (x * 0x45D9F3B) & _M32
    x = x ^ (x >> 16)
    x = (x * 0x45D9F3B) & _M32
    return x ^ (x >> 16)


def sample_draws(keys: torch.Tensor, seed: int, epoch: int, draw: int) -> torch.Tensor:
    """Uniform 32-bit integers (int64 tensor) per sample ``keys`` for draw number ``draw`` of an
    epoch: a pure function of (seed, epoch, key, draw)."""
    salt = mix_seed(seed, epoch, draw)
    lo, hi = salt & _M32, (salt >> 32) & _M32
    return hash32(hash32((keys & _M32) ^ lo) ^ hi)


def ops_of(transform: object) -> list[Op] | None:
    """The device-side ops of a CPU transform (``RandomShift``, ``RandomFlip`` or a ``Chain`` of them);
    None when it holds anything else."""
    if transform is None:
        return []
    if isinstance(transform, RandomShift):
        return [("shift", float(transform.max_shift), float(transform.fill))] if transform.max_shift > 0 else []
    if isinstance(transform, RandomFlip):
        return [("flip", float(transform.p), 0.0)]
    if isinstance(transform, Chain):
        out: list[Op] = []
        for op in transform.ops:
            part = ops_of(op)
            if part is None:
                return None
            out += part
        return out
    return None


def shift_batch(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, max_shift: int, fill: float) -> torch.Tensor:
    """Each image of ``x`` (B, C, H, W) translated by its own (``dy``, ``dx``) in ``[-max_shift,
    max_shift]``: ``out[y, x] = in[y + dy, x + dx]``, ``fill`` outside (as :class:`RandomShift`)."""
    s = int(max_shift)
    b, _, h, w = x.shape
    padded = F.pad(x, (s, s, s, s), value=fill)
    rows = torch.arange(h, device=x.device)[None, :] + (s + dy)[:, None]  # (B, H)
    cols = torch.arange(w, device=x.device)[None, :] + (s + dx)[:, None]  # (B, W)
    batch = torch.arange(b, device=x.device)[:, None, None]
    out = padded[batch, :, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    return out.permute(0, 3, 1, 2).contiguous()


@dataclass
class DeviceSource:
    """A training data set held on one device: the stored images (``(N, H, W)`` uint8 greyscale,
    normalised per batch, or ``(N, C, H, W)`` float, as stored), the labels, the stored row of each item
    of the data set (also each sample's key for the augmentation, as the CPU path's per-sample seed)
    and the augmentation ops and seed."""

    images: torch.Tensor
    labels: torch.Tensor
    rows: torch.Tensor
    ops: list[Op]
    seed: int
    grey: tuple[float, float, int] | None = None  # uint8 images: (mean, std, image_size)

    def __len__(self) -> int:
        return int(self.rows.numel())

    @property
    def device(self) -> torch.device:
        return self.images.device

    def batch(self, positions: torch.Tensor, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The images (float32, ``(B, C, S, S)``) and labels (int64) of the items at ``positions``."""
        keys = self.rows[positions]
        raw = self.images[keys]
        if self.grey is not None:
            mean, std, size = self.grey
            x = raw.to(torch.float32).div_(255.0).sub_(mean).div_(std).unsqueeze(1)
            if x.shape[-1] != size or x.shape[-2] != size:
                x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        else:
            x = raw.to(torch.float32)
        for i, (kind, a, b) in enumerate(self.ops):
            if kind == "shift":
                s = int(a)
                span = 2 * s + 1
                dy = sample_draws(keys, self.seed, epoch, 2 * i) % span - s
                dx = sample_draws(keys, self.seed, epoch, 2 * i + 1) % span - s
                x = shift_batch(x, dy, dx, s, b)
            else:  # flip with probability a
                flip = sample_draws(keys, self.seed, epoch, 2 * i) < int(round(a * 2**32))
                x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        if self.grey is not None:
            x = x.expand(-1, 3, -1, -1)
        return x.contiguous(), self.labels[keys]


def _unwrap(dataset: Dataset) -> tuple[Dataset, list[int] | None, list[Op], int] | None:
    """(stored data set, item -> stored row or None for all, ops, seed) of a data set of ours, or None."""
    if isinstance(dataset, (GreyImages, TensorDataset)):
        return dataset, None, [], 0
    if isinstance(dataset, Subset):
        inner = _unwrap(dataset.dataset)
        if inner is None:
            return None
        base, rows, ops, seed = inner
        keep = [int(i) for i in dataset.indices]
        return base, keep if rows is None else [rows[i] for i in keep], ops, seed
    if isinstance(dataset, SeededTransformDataset):
        ops = ops_of(dataset.transform)
        if ops is None or not isinstance(dataset.base, (GreyImages, TensorDataset)):
            return None
        return dataset.base, list(dataset.indices), ops, int(dataset.seed)
    return None


def supports_device(dataset: Dataset) -> bool:
    """Whether ``dataset`` can be held on the device (an in-memory tensor data set with shift / flip)."""
    found = _unwrap(dataset)
    if found is None:
        return False
    base = found[0]
    return not isinstance(base, TensorDataset) or (len(base.tensors) == 2 and base.tensors[0].dim() == 4)


_CACHE: weakref.WeakKeyDictionary[Dataset, dict[str, DeviceSource]] = weakref.WeakKeyDictionary()


def device_source(dataset: Dataset, device: torch.device | str) -> DeviceSource:
    """``dataset`` held on ``device`` (built once per data set and device); :class:`ConfigError` when
    it is not an in-memory tensor data set."""
    dev = torch.device(device)
    per = _CACHE.setdefault(dataset, {})
    if str(dev) in per:
        return per[str(dev)]
    found = _unwrap(dataset) if supports_device(dataset) else None
    if found is None:
        raise ConfigError(f"data.on_device=true needs an in-memory tensor data set (digits, fashion_mnist) with at "
                          f"most a random shift and flip; this one is a {type(dataset).__name__}: set "
                          "data.on_device=auto or false")
    base, rows, ops, seed = found
    if isinstance(base, GreyImages):
        images, labels = base.images, base.labels
        grey: tuple[float, float, int] | None = (base.mean, base.std, base.image_size)
    else:
        images, labels = base.tensors  # type: ignore[attr-defined]
        grey = None
    n = len(labels)
    row_t = torch.arange(n) if rows is None else torch.as_tensor(rows, dtype=torch.int64)
    src = DeviceSource(images.to(dev), labels.to(dev, torch.int64), row_t.to(dev), ops, seed, grey)
    per[str(dev)] = src
    return src


class DeviceTrainLoader:
    """The training batches of one epoch on one rank, made on the source's device: the CPU loader's
    order (:func:`~.loaders.train_loader`), full batches only, the first ``skip_batches`` skipped."""

    def __init__(self, source: DeviceSource, batch_size: int, seed: int, epoch: int, rank: int = 0,
                 world_size: int = 1, skip_batches: int = 0) -> None:
        check_batch_size(len(source), batch_size, world_size)
        sampler = DistributedSampler(range(len(source)), num_replicas=world_size, rank=rank,  # type: ignore[arg-type]
                                     shuffle=True, seed=seed)
        sampler.set_epoch(epoch)
        order = list(sampler)[skip_batches * batch_size:]
        self.source, self.batch_size, self.epoch = source, int(batch_size), int(epoch)
        self.positions = torch.as_tensor(order, dtype=torch.int64).to(source.device)
        self.batches = len(order) // batch_size

    def __len__(self) -> int:
        return self.batches

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        bs = self.batch_size
        for b in range(self.batches):
            yield self.source.batch(self.positions[b * bs:(b + 1) * bs], self.epoch)


def use_device_data(cfg: DataConfig, dataset: Dataset, device: torch.device | str) -> bool:
    """``data.on_device``: ``auto`` is on for in-memory tensor data sets on CUDA; ``true`` needs one."""
    setting = getattr(cfg, "on_device", "auto")
    if setting == "auto":
        return torch.device(device).type == "cuda" and supports_device(dataset)
    return bool(setting)


def epoch_batches(dataset: Dataset, cfg: DataConfig, seed: int, epoch: int, rank: int, world_size: int,
                  skip_batches: int, device: torch.device | str) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
    """The training batches of one epoch as ``cfg`` says: made on ``device`` (``data.on_device``,
    :class:`DeviceTrainLoader`) or by the CPU loader (:func:`~.loaders.train_loader`)."""
    dev = torch.device(device)
    if use_device_data(cfg, dataset, dev):
        if isinstance(dataset, SeededTransformDataset):
            dataset.set_epoch(epoch)  # as the CPU loader does (BN calibration draws from the same data set)
        return DeviceTrainLoader(device_source(dataset, dev), cfg.batch_size, seed, epoch, rank, world_size,
                                 skip_batches)
    return train_loader(dataset, cfg.batch_size, seed, epoch, rank, world_size, skip_batches, cfg.num_workers,
                        pin_memory=cfg.pin_memory and dev.type == "cuda")
