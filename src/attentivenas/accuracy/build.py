"""``predictor build`` as one call: a checkpoint's subnets measured into a dataset JSONL, in one
process, under torchrun, or over local processes started here; each rank measures its share, rank 0
writes the file (the same file for any number of ranks), and a killed build run again measures
nothing twice."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..devices import resolve_device
from ..distributed import DistInfo, cleanup, default_threads, init_distributed, launched, local_group
from ..errors import ConfigError
from ..space import get_space
from .dataset import build_arch_dataset
from .evaluate import SubnetEvaluator
from .protocol import Protocol

#: keys of ``settings`` (the options of ``predictor build``); ``split``, ``interpolation`` and the optional
#: ``calib_seed`` may be None: the checkpoint's (see :meth:`Protocol.resolved`; ``seed`` for our checkpoints)
BUILD_KEYS = ("checkpoint", "out", "num_archs", "space", "data", "split", "pipeline", "interpolation",
              "calib_batches", "calib_batch_size", "max_images", "spread", "device", "seed")


def build_from_checkpoint(settings: dict[str, Any], ranks: int | None = None, threads: int | None = None,
                          progress: bool = True, warn: Callable[[str], None] | None = None,
                          log: Callable[[str], None] | None = None, timeout_s: int | None = None
                          ) -> dict[str, Any] | None:
    """Measure ``settings["num_archs"]`` subnets of a checkpoint into ``settings["out"]``; returns the
    summary (``dataset``, ``archs``, ``top1_min``, ``top1_max``) on rank 0, None on the other ranks."""
    missing = [k for k in BUILD_KEYS if k not in settings]
    if missing:
        raise ConfigError(f"predictor build settings lack {missing}")
    device = _preference(settings["device"])
    if ranks is not None and ranks > 1 and not launched():
        with local_group(ranks, _build_rank, (dict(settings),), threads or default_threads(ranks), device,
                         timeout_s) as info:
            return _build(settings, info, progress, warn, log)
    if threads is not None:
        torch.set_num_threads(threads)
    info = init_distributed(device, timeout_s) if launched() else DistInfo()
    try:
        if ranks is not None and ranks != info.world_size:
            raise ConfigError(f"--ranks {ranks} but the job has {info.world_size} processes")
        return _build(settings, info, progress, warn, log)
    finally:
        cleanup(info)


def _preference(device: str | None) -> str:
    dev = device or "auto"
    return "cuda" if dev.startswith("cuda") else dev


def _build_rank(settings: dict[str, Any]) -> None:
    info = init_distributed(_preference(settings["device"]))
    try:
        _build(settings, info, False, None, None)
    finally:
        cleanup(info)


def _build(s: dict[str, Any], info: DistInfo, progress: bool, warn: Callable[[str], None] | None,
           log: Callable[[str], None] | None) -> dict[str, Any] | None:
    main = info.is_main
    protocol = Protocol(split=s["split"], pipeline=s["pipeline"], interpolation=s["interpolation"],
                        calib_batches=s["calib_batches"], calib_batch_size=s["calib_batch_size"],
                        max_images=s["max_images"], calib_seed=s.get("calib_seed"))
    device = info.device if info.distributed else resolve_device(s["device"])
    ev = SubnetEvaluator.from_checkpoint(Path(s["checkpoint"]), get_space(s["space"]) if s["space"] else None,
                                         s["data"], protocol, device=device, seed=s["seed"],
                                         warn=warn if main else (lambda m: None))
    ds = build_arch_dataset(ev.supernet.space, ev, s["num_archs"], seed=s["seed"], cache_path=Path(s["out"]),
                            spread=s["spread"], num_classes=ev.supernet.num_classes, progress=progress and main,
                            over_ranks=True, log=log if main else None)
    if not main:
        return None
    acc = ds.accuracies()
    return {"dataset": str(s["out"]), "archs": len(acc), "top1_min": float(acc.min()), "top1_max": float(acc.max())}
