"""The published models (A0-A6 and AlphaNet's two A5) evaluated on a checkpoint, beside the papers' top-1.

``attentivenas evaluate --published`` prints this table: per model its resolution, MFLOPs, params,
our BN-recalibrated top-1 / top-5 on the chosen split, the published top-1 and the difference.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils.data import DataLoader

from ..data import DataBundle
from ..errors import UserError
from ..nn import Supernet, cache_calibration_batches
from ..space import NAMED_ARCHS, PUBLISHED_TOP1, named_arch
from .evaluate import capped, evaluate_arch, split_of


def published_table(net: Supernet, data_at: Callable[[int], DataBundle], split: str = "test",
                    calib_batches: int = 64, calib_batch_size: int = 64, batch_size: int = 256,
                    device: torch.device | str = "cpu", seed: int = 0,
                    max_images: int | None = None) -> list[dict[str, Any]]:
    """Evaluate every published model on ``net`` (BN recalibrated on its training split) and return one
    row each. ``data_at(resolution)`` gives the data prepared at a model's resolution."""
    rows = []
    for name in NAMED_ARCHS:
        arch = named_arch(name, net.space)
        bundle = data_at(arch.resolution)
        if bundle.num_classes != net.num_classes:
            raise UserError(f"--data has {bundle.num_classes} classes but the checkpoint's classifier has "
                            f"{net.num_classes}")
        batches = cache_calibration_batches(bundle.train, calib_batches, calib_batch_size, seed, device)
        loader = DataLoader(capped(split_of(bundle, split), max_images), batch_size=batch_size, shuffle=False)
        res = evaluate_arch(net, arch, batches, loader, device)
        published = PUBLISHED_TOP1[name]
        rows.append({"model": name, "resolution": arch.resolution, "mflops": res["mflops"], "params_m": res["params_m"],
                     "top1": res["top1"], "top5": res["top5"], "published_top1": published,
                     "diff": res["top1"] - published, "samples": res["samples"]})
    return rows
