"""BN recalibration of a subnet (or the supernet's active subnet) on cached training batches.

Supernet training leaves BN statistics that fit no particular subnet, so before a subnet is
evaluated its BN statistics are recomputed as a *cumulative average* over a fixed set of training
batches (the authors use 64). :func:`cache_calibration_batches` draws those batches once (seeded)
and keeps them in memory, so every subnet of a search is calibrated on exactly the same images
without re-iterating a loader; :func:`calibrate_bn` resets and recomputes the statistics.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, IterableDataset, Subset

from ..errors import UserError
from .layers import resize_input


class CalibrationDataError(UserError):
    """Calibration data that is empty or unusable."""


def _images(batch: Any) -> torch.Tensor:
    """The image tensor of a batch (``(x, y)`` tuples, dicts with ``image``/``input``, or tensors)."""
    if isinstance(batch, torch.Tensor):
        return batch
    if isinstance(batch, (list, tuple)) and batch and isinstance(batch[0], torch.Tensor):
        return batch[0]
    if isinstance(batch, dict):
        for key in ("image", "images", "input", "x"):
            if isinstance(batch.get(key), torch.Tensor):
                return batch[key]
    raise CalibrationDataError(f"cannot find the images in a batch of type {type(batch).__name__}")


def _stack_images(items: list[Any]) -> torch.Tensor:
    return torch.stack([_images(item) for item in items])


def cache_calibration_batches(
    data: Dataset | DataLoader | Iterable,
    num_batches: int = 64,  # = config.measure.DEFAULT_CALIB_BATCHES (nn may not import config; a test holds them equal)
    batch_size: int = 64,
    seed: int = 0,
    device: str | torch.device | None = None,
    num_workers: int = 0,
    device_budget_bytes: int | None = 2 << 30,
) -> list[torch.Tensor]:
    """The first ``num_batches`` image batches of the training split, drawn once and kept.

    ``data`` is a map-style dataset (a seeded random subset of ``num_batches * batch_size`` images
    is taken, without replacement, in ``batch_size`` chunks; fewer if the dataset is smaller) or a
    loader / iterable of batches (its first ``num_batches`` batches; its own order applies).
    Memory is bounded by ``num_batches`` batches; ``num_workers`` loader processes read a dataset.
    The batches move to ``device`` when they fit in ``device_budget_bytes`` (2 GiB; None: always),
    else they stay in host memory and :func:`calibrate_bn` moves one at a time (the published 64 x 256
    crops at 224 take 9.9 GB). Empty data raises :class:`CalibrationDataError`.
    """
    if num_batches < 1:
        raise CalibrationDataError(f"number of calibration batches must be >= 1, got {num_batches}")
    if batch_size < 1:
        raise CalibrationDataError(f"calibration batch size must be >= 1, got {batch_size}")
    batches: list[torch.Tensor] = []
    if isinstance(data, Dataset) and not isinstance(data, IterableDataset) and hasattr(data, "__len__"):
        n = len(data)  # type: ignore[arg-type]
        if n == 0:
            raise CalibrationDataError("calibration data is empty")
        gen = torch.Generator().manual_seed(seed)
        order = torch.randperm(n, generator=gen)[: num_batches * batch_size].tolist()
        loader = DataLoader(Subset(data, order), batch_size=batch_size, shuffle=False, num_workers=num_workers,
                            collate_fn=_stack_images, generator=gen)  # leaves the global RNG alone
        batches.extend(loader)
    else:
        for batch in data:  # type: ignore[union-attr]
            x = _images(batch)
            if x.numel() == 0:
                continue
            batches.append(x.detach())
            if len(batches) >= num_batches:
                break
    if not batches or all(b.shape[0] == 0 for b in batches):
        raise CalibrationDataError("calibration data is empty")
    total = sum(b.numel() * b.element_size() for b in batches)
    if device is not None and (device_budget_bytes is None or total <= device_budget_bytes):
        batches = [b.to(device) for b in batches]
    return batches


def _bn_modules(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def _bn_wrappers(model: nn.Module) -> list[nn.Module]:
    """Modules whose children are all BN layers (e.g. the supernet's dynamic BN, which reads its
    own ``training`` flag): they must be in train mode too while calibrating."""
    out = []
    for m in model.modules():
        children = list(m.children())
        if children and all(isinstance(c, nn.modules.batchnorm._BatchNorm) for c in children):
            out.append(m)
    return out


def to_model_resolution(x: torch.Tensor, model: nn.Module) -> torch.Tensor:
    """Resize to the model's resolution (bicubic, as the supernet does), when it has one."""
    r = getattr(model, "resolution", None)
    if r is None and hasattr(model, "arch"):
        r = model.arch.resolution
    return resize_input(x, int(r)) if r is not None else x


@torch.no_grad()
def calibrate_bn(model: nn.Module, batches: Sequence[torch.Tensor]) -> nn.Module:
    """Recompute every BN layer's running statistics as the cumulative average over ``batches``.

    Statistics are reset, ``momentum`` set to ``None`` (cumulative average), only the BN layers
    are put in train mode (dropout and drop-connect stay off), all batches are forwarded without
    gradients, then the momenta and modes are restored. Works on a :class:`StaticSubnet` and on a
    :class:`Supernet` (whose dynamic BN wraps an ``nn.BatchNorm2d``; only the active channels
    change). Returns ``model``.
    """
    if len(batches) == 0:
        raise CalibrationDataError("calibration data is empty")
    bns = _bn_modules(model)
    modes = {m: m.training for m in model.modules()}
    momenta = [bn.momentum for bn in bns]
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    try:
        model.eval()
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None
            bn.train()
        for wrapper in _bn_wrappers(model):
            wrapper.train()
        for x in batches:
            if x.shape[0] == 0:
                continue
            model(to_model_resolution(x.to(device, non_blocking=True), model))
    finally:
        for bn, mom in zip(bns, momenta, strict=True):
            bn.momentum = mom
        for m, mode in modes.items():
            m.training = mode
    return model
