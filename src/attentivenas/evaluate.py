"""BN recalibration on cached batches and accuracy of a subnet.

Supernet training leaves BN statistics that fit no particular subnet, so before a subnet is
evaluated its BN statistics are recomputed as a *cumulative average* over a fixed set of training
batches (the authors use 64). :func:`cache_calibration_batches` draws those batches once (seeded)
and keeps them in memory, so every subnet of a search is calibrated on exactly the same images
without re-iterating a loader; :func:`calibrate_bn` resets and recomputes the statistics;
:func:`evaluate_subnet` measures top-1/top-5 on a loader the caller passes (the validation split:
the test split is never used for search).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .cost import count_flops, count_params
from .errors import UserError
from .space import Arch


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


def cache_calibration_batches(
    data: Dataset | DataLoader | Iterable,
    num_batches: int = 64,
    batch_size: int = 64,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> list[torch.Tensor]:
    """The first ``num_batches`` image batches of the training split, drawn once and kept.

    ``data`` is a map-style dataset (a seeded random subset of ``num_batches * batch_size`` images
    is taken, without replacement, in ``batch_size`` chunks; fewer if the dataset is smaller) or a
    loader / iterable of batches (its first ``num_batches`` batches; its own order applies).
    Memory is bounded by ``num_batches`` batches. Empty data raises :class:`CalibrationDataError`.
    """
    if num_batches < 1:
        raise CalibrationDataError(f"number of calibration batches must be >= 1, got {num_batches}")
    if batch_size < 1:
        raise CalibrationDataError(f"calibration batch size must be >= 1, got {batch_size}")
    batches: list[torch.Tensor] = []
    if isinstance(data, Dataset) and not isinstance(data, torch.utils.data.IterableDataset) and hasattr(
            data, "__len__"):
        n = len(data)  # type: ignore[arg-type]
        if n == 0:
            raise CalibrationDataError("calibration data is empty")
        gen = torch.Generator().manual_seed(seed)
        order = torch.randperm(n, generator=gen)[: num_batches * batch_size]
        for start in range(0, len(order), batch_size):
            items = [data[i] for i in order[start : start + batch_size].tolist()]
            batches.append(torch.stack([_images(item) for item in items]))
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
    if device is not None:
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


def _to_resolution(x: torch.Tensor, model: nn.Module) -> torch.Tensor:
    """Resize to the model's resolution (bicubic, as the supernet does), when it has one."""
    r = getattr(model, "resolution", None)
    if r is None and hasattr(model, "arch"):
        r = model.arch.resolution
    if r is not None and (x.size(-1) != r or x.size(-2) != r):
        x = F.interpolate(x, size=(int(r), int(r)), mode="bicubic", align_corners=False)
    return x


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
            model(_to_resolution(x.to(device, non_blocking=True), model))
    finally:
        for bn, mom in zip(bns, momenta, strict=True):
            bn.momentum = mom
        for m, mode in modes.items():
            m.training = mode
    return model


def _as_loader(data: Dataset | DataLoader | Iterable, batch_size: int = 256) -> Iterable:
    if isinstance(data, Dataset) and not isinstance(data, torch.utils.data.IterableDataset):
        return DataLoader(data, batch_size=batch_size, shuffle=False)
    return data


@torch.no_grad()
def evaluate_subnet(model: nn.Module, loader: Dataset | DataLoader | Iterable,
                    device: str | torch.device | None = None, batch_size: int = 256) -> dict[str, float]:
    """Top-1, top-5 (percent) and mean cross-entropy of ``model`` in eval mode on ``loader``.

    ``loader`` yields ``(images, labels)``; a dataset is wrapped in an unshuffled loader. Top-5 is
    top-k with k = min(5, classes). Images are resized to the model's resolution when needed; the
    model is moved to ``device`` (default: where its parameters are).
    """
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(dev)
    was_training = model.training
    model.eval()
    correct1 = correct5 = 0
    loss_sum = 0.0
    n = 0
    try:
        for batch in _as_loader(loader, batch_size):
            if not isinstance(batch, (list, tuple)) or len(batch) < 2:
                raise UserError("evaluation data must yield (images, labels) batches")
            x, y = batch[0].to(dev), batch[1].to(dev)
            if x.shape[0] == 0:
                continue
            logits = model(_to_resolution(x, model))
            loss_sum += float(F.cross_entropy(logits.float(), y, reduction="sum"))
            k = min(5, logits.size(1))
            top = logits.topk(k, dim=1).indices
            hit = top.eq(y[:, None])
            correct1 += int(hit[:, 0].sum())
            correct5 += int(hit.any(dim=1).sum())
            n += int(y.numel())
    finally:
        model.train(was_training)
    if n == 0:
        raise UserError("evaluation data is empty")
    return {"top1": 100.0 * correct1 / n, "top5": 100.0 * correct5 / n, "loss": loss_sum / n, "samples": n}


def evaluate_arch(
    supernet: nn.Module,
    arch: Arch,
    calib_batches: Sequence[torch.Tensor],
    val_loader: Dataset | DataLoader | Iterable,
    device: str | torch.device | None = None,
) -> dict[str, Any]:
    """Extract ``arch`` from ``supernet``, recalibrate its BN on ``calib_batches``, evaluate it on the
    validation loader. Returns ``top1``, ``top5``, ``loss``, ``samples``, ``mflops``, ``params_m``
    and the arch. Only the supernet's active arch changes: the extracted copy is calibrated, the
    supernet's weights and BN statistics are left as they were."""
    space = supernet.space
    space.validate(arch)
    num_classes = int(getattr(supernet, "num_classes", 1000))
    dev = torch.device(device) if device is not None else next(supernet.parameters()).device
    sub = supernet.extract(arch).to(dev)
    calibrate_bn(sub, calib_batches)
    result: dict[str, Any] = dict(evaluate_subnet(sub, val_loader, dev))
    result["mflops"] = count_flops(space, arch, num_classes)
    result["params_m"] = count_params(space, arch, num_classes) / 1e6
    result["arch"] = arch.to_dict()
    if not all(math.isfinite(float(result[k])) for k in ("top1", "top5")):
        raise RuntimeError("evaluation produced a non-finite accuracy")
    return result


def resolve_data(spec: str | None, space: Any, meta: dict[str, Any] | None = None,
                 resolution: int | None = None, seed: int = 0) -> Any:
    """The :class:`~attentivenas.data.DataBundle` of a ``--data`` argument.

    ``digits`` (the embedded digits at the space's largest resolution), ``cifar10:PATH``,
    ``cifar100:PATH``, or ``PATH`` (an ImageFolder root with ``train/`` and ``val/``; the
    held-out split of ``train/`` is the validation split); ``None`` takes the data section of the
    checkpoint's training config (``meta["config"]["data"]``). ImageFolder/CIFAR images are
    prepared at ``resolution`` (resize to ``resolution / 0.875``, centre crop).
    """
    from .config import DataConfig
    from .data import build_data

    cfg: dict[str, Any]
    if spec is None:
        saved = (meta or {}).get("config", {})
        if not isinstance(saved, dict) or not isinstance(saved.get("data"), dict):
            raise UserError("the checkpoint has no training data config: pass --data digits|cifar10:PATH|PATH")
        cfg = dict(saved["data"])
    elif spec == "digits":
        cfg = {"name": "digits", "image_size": max(space.resolutions)}
    elif spec.startswith(("cifar10:", "cifar100:")):
        name, path = spec.split(":", 1)
        cfg = {"name": name, "path": path}
    else:
        cfg = {"name": "imagefolder", "path": spec}
    if cfg.get("name") != "digits" and resolution is not None:
        cfg["image_size"] = int(resolution)
        cfg["eval_resize"] = int(round(resolution / 0.875))
    try:
        data_cfg = DataConfig(**cfg)
    except Exception as exc:  # pydantic's ValidationError: report it as a user error
        first = str(exc).strip().splitlines()
        raise UserError(f"bad --data {spec!r}: {first[-1] if first else exc}") from None
    return build_data(data_cfg, seed)


class SubnetEvaluator:
    """``evaluate_fn(arch) -> top-1 (%)`` of one supernet, for predictor datasets and searches.

    The calibration batches (training split) are cached once and reused for every arch; accuracy is
    measured on the validation split only. Data is prepared at the space's largest resolution and
    each subnet resizes it to its own, as the authors' network does.
    """

    def __init__(self, supernet: nn.Module, bundle: Any, calib_batches: int = 64, calib_batch_size: int = 64,
                 batch_size: int = 256, device: str | torch.device | None = None, seed: int = 0) -> None:
        if bundle.num_classes != int(getattr(supernet, "num_classes", bundle.num_classes)):
            raise UserError(f"the data has {bundle.num_classes} classes but the supernet's classifier has "
                            f"{supernet.num_classes}")
        self.supernet = supernet
        self.device = torch.device(device) if device is not None else next(supernet.parameters()).device
        self.calib = cache_calibration_batches(bundle.train, calib_batches, calib_batch_size, seed, self.device)
        self.val_loader = DataLoader(bundle.val, batch_size=batch_size, shuffle=False)

    @classmethod
    def from_checkpoint(cls, checkpoint: str | Path, space: Any = None, data: str | None = None,
                        calib_batches: int = 64, calib_batch_size: int = 64, batch_size: int = 256,
                        device: str | torch.device | None = None, seed: int = 0) -> SubnetEvaluator:
        """Load a supernet checkpoint and its data (``data`` as in :func:`resolve_data`)."""
        from .checkpoint import load_supernet

        net, meta = load_supernet(checkpoint, space, device=device or "cpu")
        bundle = resolve_data(data, net.space, meta, resolution=max(net.space.resolutions), seed=seed)
        return cls(net, bundle, calib_batches, calib_batch_size, batch_size, device, seed)

    def evaluate(self, arch: Arch) -> dict[str, Any]:
        return evaluate_arch(self.supernet, arch, self.calib, self.val_loader, self.device)

    def __call__(self, arch: Arch) -> float:
        return float(self.evaluate(arch)["top1"])
