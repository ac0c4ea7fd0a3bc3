"""Measured latency: one model timed on a device (warm-up runs, then the median and spread of timed
repeats under ``torch.inference_mode``; batch, threads and device are part of the result), and
whole subnets of a space measured in round-robin passes."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..devices import resolve_device
from ..errors import UserError
from ..nn import Supernet
from ..progress import progress_bar
from ..space import Arch, SearchSpace


@dataclass(frozen=True)
class LatencyResult:
    """Latency of one model: median and 90th percentile in milliseconds, and the setting."""

    median_ms: float
    p90_ms: float
    batch: int
    threads: int
    device: str
    repeats: int = 0
    clock: str = "wall"

    def to_dict(self) -> dict[str, Any]:
        return {
            "clock": self.clock,
            "median_ms": self.median_ms,
            "p90_ms": self.p90_ms,
            "batch": self.batch,
            "threads": self.threads,
            "device": self.device,
            "repeats": self.repeats,
        }


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def measure_latency(
    model: nn.Module,
    input_shape: Sequence[int],
    device: str | torch.device | None = "cpu",
    warmup: int = 10,
    repeats: int = 50,
    threads: int | None = None,
    seed: int = 0,
    rounds: int = 1,
    clock: str = "wall",
) -> LatencyResult:
    """Time ``model`` (moved to ``device``) on a random input of ``input_shape`` (batch first).

    Runs ``warmup`` untimed forwards, then ``repeats`` timed ones (CUDA synchronised before and
    after each) under ``torch.inference_mode`` in eval mode; the result is their median (and 90th
    percentile). With ``rounds > 1`` this is done ``rounds`` times and the round with the lowest
    median is kept (robust to other processes sharing the CPU). ``threads`` sets the CPU intra-op
    threads for the measurement (restored afterwards); the result states the value used.

    ``clock="wall"`` times wall-clock latency (the default, what a user waits). ``clock="cpu"``
    times the CPU time of the calling thread instead: on a CPU shared with other processes it
    does not count the time the process waits for a core, so it estimates the latency of an idle
    machine. It needs ``threads=1`` on the CPU (other intra-op threads would not be counted).
    """
    if clock not in ("wall", "cpu"):
        raise UserError(f"unknown clock {clock!r}; use wall or cpu")
    if repeats < 1 or rounds < 1:
        raise UserError(f"repeats and rounds must be >= 1, got {repeats} and {rounds}")
    if warmup < 0:
        raise UserError(f"warmup must be >= 0, got {warmup}")
    dev = resolve_device(device)
    if clock == "cpu" and (dev.type != "cpu" or threads != 1):
        raise UserError("clock 'cpu' measures one thread on the CPU: use it with device cpu and threads 1")
    timer = time.thread_time if clock == "cpu" else time.perf_counter
    old_threads = torch.get_num_threads()
    if threads is not None:
        if threads < 1:
            raise UserError(f"threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    was_training = model.training
    try:
        model.eval()
        model.to(dev)
        gen = torch.Generator().manual_seed(seed)
        x = torch.randn(*input_shape, generator=gen).to(dev)
        best: np.ndarray | None = None
        with torch.inference_mode():
            for _ in range(warmup):
                model(x)
            _sync(dev)
            for _ in range(rounds):
                times = np.empty(repeats)
                for i in range(repeats):
                    _sync(dev)
                    t0 = timer()
                    model(x)
                    _sync(dev)
                    times[i] = (timer() - t0) * 1e3
                if best is None or np.median(times) < np.median(best):
                    best = times
        used = torch.get_num_threads()
    finally:
        model.train(was_training)
        if threads is not None:
            torch.set_num_threads(old_threads)
    arr = np.asarray(best)
    return LatencyResult(
        median_ms=float(np.median(arr)),
        p90_ms=float(np.percentile(arr, 90)),
        batch=int(input_shape[0]),
        threads=int(used),
        device=str(dev),
        repeats=repeats * rounds,
        clock=clock,
    )


def random_subnet(space: SearchSpace, arch: Arch, num_classes: int = 1000, seed: int = 0,
                  supernet: nn.Module | None = None) -> nn.Module:
    """A static subnet of ``arch`` with seeded random weights (latency does not depend on weights)."""
    if supernet is None:
        torch.manual_seed(seed)
        supernet = Supernet(space, num_classes=num_classes)
    return supernet.extract(arch).eval()


def measure_arch(space: SearchSpace, arch: Arch, device: str | torch.device = "cpu", batch: int = 1,
                 threads: int | None = None, warmup: int = 10, repeats: int = 50, num_classes: int = 1000,
                 supernet: nn.Module | None = None, seed: int = 0, rounds: int = 1,
                 clock: str = "wall") -> LatencyResult:
    """Measured latency of the static subnet ``arch`` at its resolution."""
    model = random_subnet(space, arch, num_classes, seed, supernet)
    return measure_latency(model, (batch, 3, arch.resolution, arch.resolution), device, warmup, repeats, threads,
                           seed, rounds, clock)


def measure_archs(space: SearchSpace, archs: Sequence[Arch], device: str | torch.device = "cpu", batch: int = 1,
                  threads: int | None = 1, warmup: int = 5, repeats: int = 20, passes: int = 1,
                  num_classes: int = 1000, supernet: nn.Module | None = None, seed: int = 0,
                  progress: bool = False, clock: str = "wall") -> list[float]:
    """Measured latency (ms) of many archs: ``passes`` round-robin passes over all of them, keeping
    each arch's lowest median (transient load from other processes only ever adds time)."""
    if passes < 1:
        raise UserError(f"passes must be >= 1, got {passes}")
    if supernet is None:
        torch.manual_seed(seed)
        supernet = Supernet(space, num_classes=num_classes)
    models = [random_subnet(space, a, num_classes, seed, supernet) for a in archs]
    best = [float("inf")] * len(archs)
    for _ in range(passes):
        for i in progress_bar(list(range(len(archs))), "archs", progress):
            r = archs[i].resolution
            ms = measure_latency(models[i], (batch, 3, r, r), device, warmup, repeats, threads, seed,
                                 clock=clock).median_ms
            best[i] = min(best[i], ms)
    return best
