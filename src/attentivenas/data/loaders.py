"""Loaders: the training batches of an epoch on a rank (seeded, sharded, resumable) and sequential
evaluation shards."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler, Subset

from ..errors import ConfigError
from ..rng import mix_seed
from .transforms import SeededTransformDataset


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
