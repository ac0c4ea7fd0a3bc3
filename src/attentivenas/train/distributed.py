"""Multi-process training: the few collectives the sandwich step needs (the process group's setup
from torchrun's environment lives in :mod:`attentivenas.distributed`).

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

import torch
import torch.distributed as dist
import torch.nn as nn

# the process group itself (DistInfo, init_distributed, barrier, ...) lives in the base row,
# attentivenas.distributed (stage 2 spreads its measurements over ranks too); import it from there
from ..distributed import is_dist

__all__ = ["all_reduce_mean", "all_reduce_sum", "broadcast_module", "all_reduce_grads"]


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
