"""Epoch-end validation of the min and max subnets, BN-recalibrated, sharded across ranks."""

from __future__ import annotations

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset, Subset

from ..accuracy import evaluate_subnet
from ..accuracy.evaluate import extract_for_measurement
from ..config import TrainConfig
from ..data import eval_loader
from ..distributed import DistInfo
from ..nn import Supernet, cache_calibration_batches, calibrate_bn
from ..space import Arch
from .distributed import all_reduce_mean, all_reduce_sum


def calibration_seed(cfg: TrainConfig) -> int:
    """The seed of the BN-calibration batches: ``eval.calibration_seed``, else the run's ``seed``."""
    return cfg.seed if cfg.eval.calibration_seed is None else cfg.eval.calibration_seed


def calibration_batches(train: Dataset, num_batches: int, batch_size: int, seed: int, rank: int,
                        num_workers: int = 0) -> list[torch.Tensor]:
    """``num_batches`` training batches of a seeded random subset (different on every rank), on CPU."""
    return cache_calibration_batches(train, num_batches, batch_size, seed * 1009 + rank, num_workers=num_workers)


def _average_bn_stats(model: nn.Module) -> None:
    """Mean of every BN layer's running statistics over ranks (each rank calibrated on its own batches)."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
            all_reduce_mean(m.running_mean)
            all_reduce_mean(m.running_var)


@torch.no_grad()
def validate_arch(net: Supernet, arch: Arch, batches: list[torch.Tensor], val: Dataset, batch_size: int,
                  info: DistInfo, max_batches: int | None = None, num_workers: int = 0,
                  channels_last: bool | str = "auto") -> dict[str, float]:
    """Top-1/top-5/loss of ``arch`` on ``val``: the subnet is extracted (the supernet is left as it
    was), its BN recalibrated on ``batches``, and every rank evaluates its shard; exact totals.
    ``channels_last`` as ``runtime.channels_last`` (``auto``: on CPU)."""
    sub = extract_for_measurement(net, arch, info.device, channels_last)
    calibrate_bn(sub, batches)
    _average_bn_stats(sub)
    loader = eval_loader(val, batch_size, info.rank, info.world_size, num_workers,
                         pin_memory=info.device.type == "cuda")
    if max_batches is not None:
        keep = min(len(loader.dataset), max_batches * batch_size)  # type: ignore[arg-type]
        loader = DataLoader(Subset(loader.dataset, range(keep)), batch_size=batch_size, shuffle=False,
                            num_workers=num_workers, generator=torch.Generator().manual_seed(info.rank))
    res = evaluate_subnet(sub, loader, info.device) if len(loader.dataset) else {  # type: ignore[arg-type]
        "top1": 0.0, "top5": 0.0, "loss": 0.0, "samples": 0}
    n = float(res["samples"])
    sums = torch.tensor([res["top1"] * n, res["top5"] * n, res["loss"] * n, n], dtype=torch.float64,
                        device=info.device)
    all_reduce_sum(sums)
    total = max(sums[3].item(), 1.0)
    return {"top1": sums[0].item() / total, "top5": sums[1].item() / total, "loss": sums[2].item() / total,
            "samples": int(sums[3].item())}
