"""Multi-process training: setup from torchrun's environment, and the few collectives the
sandwich step needs.

We do not wrap the supernet in ``DistributedDataParallel``. Each step runs several forward and
backward passes over different subnets, so DDP would either all-reduce after every backward or
need ``no_sync`` plus ``find_unused_parameters`` (whose unused-parameter detection only sees the
last pass). Instead the gradients accumulate locally over the whole step and are all-reduced
*once*, as one flat buffer (:func:`all_reduce_grads`). Every rank trains the same subnets
(the sampler's RNG is seeded identically and BestUp/WorstUp scores are averaged across ranks
first), so every rank holds gradients for the same parameters; a one-int-per-parameter mask is
reduced alongside, so a parameter touched on any rank is handled identically everywhere.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn as nn

from ..devices import rank_device


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: rank, world size, local rank and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    initialized: bool = False  # we created the process group (and destroy it at the end)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


#: Seconds a collective may wait for every rank before the job ends (``runtime.dist_timeout_s: null``).
#: gloo (CPU): 10 minutes, longer than any wait between our ranks (evaluation, checkpoint writes and
#: the online predictor's measurements run on every rank together; rank 0 alone only fits the
#: predictor and writes files, seconds). NCCL (CUDA): PyTorch's own 30 minutes, since the first
#: collectives also wait for every rank's CUDA start-up and kernel autotuning, and NCCL's watchdog
#: ends a rank that waits longer.
DEFAULT_TIMEOUT_S = {"gloo": 600, "nccl": 1800}


def init_distributed(device_preference: str = "auto", timeout_s: int | None = None) -> DistInfo:
    """Join the process group described by torchrun's variables (``RANK``, ``WORLD_SIZE``,
    ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``); a single process otherwise.

    Backend: NCCL when the device is CUDA, gloo on CPU. Works across nodes (torchrun sets the
    variables on every node). ``timeout_s`` (default :data:`DEFAULT_TIMEOUT_S` of the backend) bounds
    every collective: a rank that stops answering (crashed, frozen) ends the job after it.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = rank_device(device_preference, local_rank)
    if world <= 1:
        return DistInfo(0, 1, 0, device, False)
    if dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, device, False)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    timeout = timeout_s if timeout_s is not None else DEFAULT_TIMEOUT_S[backend]
    dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout),
                            device_id=device if device.type == "cuda" else None)
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, device, True)


def cleanup(info: DistInfo) -> None:
    """Destroy the process group if :func:`init_distributed` created it."""
    if info.initialized and dist.is_initialized():
        dist.destroy_process_group()


def is_dist() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def barrier() -> None:
    if is_dist():
        dist.barrier()


def all_reduce_mean(t: torch.Tensor) -> torch.Tensor:
    """In-place mean over ranks (no-op in a single process)."""
    if is_dist():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        t.div_(dist.get_world_size())
    return t


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """In-place sum over ranks (no-op in a single process)."""
    if is_dist():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def broadcast_module(module: nn.Module, src: int = 0) -> None:
    """Copy parameters and buffers of rank ``src`` to every rank."""
    if not is_dist():
        return
    with torch.no_grad():
        for t in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(t.data, src)


def all_reduce_grads(params: list[nn.Parameter]) -> None:
    """Average the gradients of ``params`` over ranks with one flat all-reduce.

    Parameters without a gradient on every rank keep ``grad=None`` (the optimiser skips them);
    one with a gradient on some rank only gets zeros elsewhere before the reduce.
    """
    if not is_dist():
        return
    world = dist.get_world_size()
    device = params[0].device
    has = torch.tensor([p.grad is not None for p in params], dtype=torch.int32, device=device)
    dist.all_reduce(has, op=dist.ReduceOp.MAX)
    active = [p for p, h in zip(params, has.tolist(), strict=True) if h]
    if not active:
        return
    for p in active:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    grads = [p.grad for p in active]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat.div_(world)
    offset = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[offset : offset + n].view_as(g))
        offset += n
