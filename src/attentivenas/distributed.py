"""Processes of one job: the process group from torchrun's environment (or spawned here), and the
few collectives both stages need, with no pickling (bytes travel as uint8 tensors).

Stage 1 (``train/``) all-reduces gradients; stage 2 (``accuracy``, ``search``) gives each rank its
share of the subnets to measure and gathers the accuracies (:func:`share`, :func:`sum_floats`), and
rank 0 alone writes files and sends what it read (:func:`broadcast_bytes`).
"""

from __future__ import annotations

import datetime
import os
import socket
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from .devices import rank_device

T = TypeVar("T")


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


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if is_dist() else 0


def world_size() -> int:
    """Processes in the job (1 without a process group)."""
    return dist.get_world_size() if is_dist() else 1


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if is_dist():
        dist.barrier()


def _comm_device() -> torch.device:
    """Where collective tensors live: the current GPU under NCCL, the CPU under gloo."""
    if is_dist() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def broadcast_bytes(data: bytes | None, src: int = 0) -> bytes:
    """Rank ``src``'s ``data`` on every rank (other ranks pass ``None``); no pickling."""
    if not is_dist():
        return data or b""
    dev = _comm_device()
    size = torch.tensor([len(data or b"") if rank() == src else 0], dtype=torch.int64, device=dev)
    dist.broadcast(size, src)
    n = int(size.item())
    if rank() == src:
        buf = torch.frombuffer(bytearray(data or b""), dtype=torch.uint8).to(dev) if n else torch.zeros(0, dtype=torch.uint8, device=dev)
    else:
        buf = torch.empty(n, dtype=torch.uint8, device=dev)
    if n:
        dist.broadcast(buf, src)
    return bytes(buf.cpu().numpy().tobytes())


def sum_floats(values: np.ndarray) -> np.ndarray:
    """Element-wise sum of a float64 vector over ranks (each rank fills its entries, zeros elsewhere:
    the sum is then exact)."""
    arr = np.ascontiguousarray(values, dtype=np.float64)
    if not is_dist():
        return arr.copy()
    t = torch.from_numpy(arr.copy()).to(_comm_device())
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.cpu().numpy()


def max_float(value: float) -> float:
    """The largest ``value`` over ranks."""
    if not is_dist():
        return float(value)
    t = torch.tensor([float(value)], dtype=torch.float64, device=_comm_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t.item())


def share(weights: Sequence[float], world: int | None = None, who: int | None = None) -> list[int]:
    """The indices of ``weights`` that rank ``who`` (default: this one) handles: heaviest first,
    each to the rank with the least total so far (ties: the lowest rank), so every rank's sum of
    weights (e.g. estimated seconds) is about the same. The same on every rank; returned in index order."""
    world = world_size() if world is None else world
    who = rank() if who is None else who
    if world <= 1:
        return list(range(len(weights)))
    load = [0.0] * world
    mine = []
    for i in sorted(range(len(weights)), key=lambda i: (-float(weights[i]), i)):
        r = min(range(world), key=lambda k: (load[k], k))
        load[r] += float(weights[i])
        if r == who:
            mine.append(i)
    return sorted(mine)


# --------------------------------------------------------------------------- local processes
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launched() -> bool:
    """Whether this process runs under torchrun (or :func:`spawn`)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def _set_env(index: int, world: int, port: int) -> None:
    os.environ.update(RANK=str(index), WORLD_SIZE=str(world), LOCAL_RANK=str(index), LOCAL_WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))


def _child(index: int, world: int, port: int, threads: int | None, fn: Callable[..., Any], args: tuple) -> None:
    _set_env(index + 1, world, port)
    if threads is not None:
        torch.set_num_threads(threads)
    fn(*args)


def default_threads(world: int) -> int:
    """Torch threads per local process: the cores shared evenly (at least one)."""
    return max(1, (os.cpu_count() or 1) // max(world, 1))


@contextmanager
def local_group(world: int, child: Callable[..., Any], args: tuple = (), threads: int | None = None,
                device: str = "auto", timeout_s: int | None = None) -> Iterator[DistInfo]:
    """This process as rank 0 of ``world`` local processes, as torchrun would start them: ranks
    1..world-1 run ``child(*args)`` (a module-level function, plain-data ``args``; it calls
    :func:`init_distributed` itself), this one runs the ``with`` body in the group. The environment
    and the thread count are restored afterwards; a failed child ends the body's collectives at their
    timeout, and a failed body ends the children."""
    port = free_port()
    ctx = mp.start_processes(_child, args=(world, port, threads, child, args), nprocs=world - 1, join=False,
                             start_method="spawn")
    saved = {k: os.environ.get(k) for k in _ENV}
    old_threads = torch.get_num_threads()
    _set_env(0, world, port)
    if threads is not None:
        torch.set_num_threads(threads)
    info = None
    ok = False
    try:
        info = init_distributed(device, timeout_s)
        yield info
        ok = True
    finally:
        if info is not None:
            cleanup(info)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        torch.set_num_threads(old_threads)
        if ok:
            while not ctx.join():
                pass
        else:
            for p in ctx.processes:
                if p.is_alive():
                    p.terminate()


def _rank_work(work: Callable[..., Any], args: tuple, device: str, timeout_s: int | None) -> None:
    """A local rank > 0 of :func:`run_on_ranks`: ``work(info, *args)``, silent (no rank-0 keywords)."""
    info = init_distributed(device, timeout_s)
    try:
        work(info, *args)
    finally:
        cleanup(info)


def run_on_ranks(work: Callable[..., T], args: tuple = (), ranks: int | None = None, threads: int | None = None,
                 device: str = "auto", timeout_s: int | None = None,
                 mismatch: Callable[[int], BaseException] | None = None, **main: Any) -> T:
    """``work(info, *args, **main)`` on every rank of the job, the result of this process's.

    Under torchrun (or :func:`spawn`) every process joins the group; ``ranks`` > 1 otherwise starts
    ranks 1..ranks-1 here (:func:`local_group`, ``threads`` torch threads each, the cores shared by
    default) and they run ``work(info, *args)``: ``work`` (a module-level function) and ``args``
    must pickle, ``main`` (callbacks, say) goes to this process only, and ``work`` keeps
    rank 0 alone reporting and writing. ``ranks`` that differ from a launched job's size raise
    ``mismatch(world_size)``."""
    if ranks is not None and ranks > 1 and not launched():
        with local_group(ranks, _rank_work, (work, args, device, timeout_s), threads or default_threads(ranks),
                         device, timeout_s) as info:
            return work(info, *args, **main)
    if threads is not None:
        torch.set_num_threads(threads)
    info = init_distributed(device, timeout_s) if launched() else DistInfo()
    try:
        if ranks is not None and ranks != info.world_size:
            raise (mismatch or (lambda n: RuntimeError(f"ranks={ranks} but the job has {n} processes")))(
                info.world_size)
        return work(info, *args, **main)
    finally:
        cleanup(info)
