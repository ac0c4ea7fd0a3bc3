"""Accuracy of a subnet: top-1 / top-5 on a split, after BN recalibration on cached training batches.

:func:`evaluate_subnet` measures a model on a loader the caller passes (the validation split: the
test split is never used for search); :func:`evaluate_arch` extracts an arch from a supernet,
recalibrates its BN and evaluates it; :class:`SubnetEvaluator` is ``arch -> top-1`` of one supernet
with its calibration batches cached once, for predictor datasets and searches.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import ValidationError
from torch import nn
from torch.utils.data import DataLoader, Dataset, IterableDataset, Subset

from ..config import DataConfig
from ..costs import count_flops, count_params
from ..data import DataBundle, build_data
from ..errors import UserError
from ..nn import cache_calibration_batches, calibrate_bn, load_supernet, to_model_resolution
from ..space import Arch, SearchSpace


def _as_loader(data: Dataset | DataLoader | Iterable, batch_size: int = 256) -> Iterable:
    if isinstance(data, Dataset) and not isinstance(data, IterableDataset):
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
            logits = model(to_model_resolution(x, model))
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


SPLITS = ("holdout", "test", "val")  #: ``val`` = ``test``: an ImageFolder's val/ folder (the official one)


def split_of(bundle: DataBundle, split: str) -> Dataset:
    """The evaluation split of a bundle: ``holdout`` (the seeded part of the training data held out for
    search) or ``test`` (the data set's test split; ``val`` is its synonym, an ImageFolder's ``val/``)."""
    if split not in SPLITS:
        raise UserError(f"--split {split!r} is not one of {list(SPLITS)}")
    return bundle.val if split == "holdout" else bundle.test


def capped(dataset: Dataset, max_images: int | None) -> Dataset:
    """The first ``max_images`` images of a split (all of them for None)."""
    n = len(dataset)  # type: ignore[arg-type]
    return dataset if max_images is None or max_images >= n else Subset(dataset, range(max_images))


def resolve_data(spec: str | None, space: SearchSpace, meta: dict[str, Any] | None = None,
                 resolution: int | None = None, seed: int = 0) -> DataBundle:
    """The :class:`~attentivenas.data.DataBundle` of a ``--data`` argument.

    ``digits`` (the embedded digits at the space's largest resolution), ``cifar10:PATH``,
    ``cifar100:PATH``, or ``PATH`` (an ImageFolder root with ``train/`` and ``val/``; the
    held-out split of ``train/`` is the validation split); ``None`` takes the data section of the
    checkpoint's training config (``meta["config"]["data"]``). ImageFolder/CIFAR images are
    prepared at ``resolution`` (resize to ``resolution / 0.875``, centre crop).
    """
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
    except ValidationError as exc:  # report it as a user error
        first = str(exc).strip().splitlines()
        raise UserError(f"bad --data {spec!r}: {first[-1] if first else exc}") from None
    return build_data(data_cfg, seed)


class SubnetEvaluator:
    """``evaluate_fn(arch) -> top-1 (%)`` of one supernet, for predictor datasets and searches.

    The calibration batches (training split) are cached once and reused for every arch; accuracy is
    measured on ``split`` (``holdout`` by default; ``test``/``val`` for a checkpoint that trained on
    all of its training data, as the authors' did). Data is prepared at the space's largest
    resolution and each subnet resizes it to its own, as the authors' network does.
    """

    def __init__(self, supernet: nn.Module, bundle: DataBundle, calib_batches: int = 64, calib_batch_size: int = 64,
                 batch_size: int = 256, device: str | torch.device | None = None, seed: int = 0,
                 split: str = "holdout") -> None:
        if bundle.num_classes != int(getattr(supernet, "num_classes", bundle.num_classes)):
            raise UserError(f"the data has {bundle.num_classes} classes but the supernet's classifier has "
                            f"{supernet.num_classes}")
        self.supernet = supernet
        self.device = torch.device(device) if device is not None else next(supernet.parameters()).device
        self.calib = cache_calibration_batches(bundle.train, calib_batches, calib_batch_size, seed, self.device)
        self.split = split
        self.val_loader = DataLoader(split_of(bundle, split), batch_size=batch_size, shuffle=False)

    @classmethod
    def from_checkpoint(cls, checkpoint: str | Path, space: str | SearchSpace | None = None, data: str | None = None,
                        calib_batches: int = 64, calib_batch_size: int = 64, batch_size: int = 256,
                        device: str | torch.device | None = None, seed: int = 0,
                        split: str = "holdout") -> SubnetEvaluator:
        """Load a supernet checkpoint and its data (``data`` as in :func:`resolve_data`)."""
        net, meta = load_supernet(checkpoint, space, device=device or "cpu")
        bundle = resolve_data(data, net.space, meta, resolution=max(net.space.resolutions), seed=seed)
        return cls(net, bundle, calib_batches, calib_batch_size, batch_size, device, seed, split)

    def evaluate(self, arch: Arch) -> dict[str, Any]:
        return evaluate_arch(self.supernet, arch, self.calib, self.val_loader, self.device)

    def __call__(self, arch: Arch) -> float:
        return float(self.evaluate(arch)["top1"])
