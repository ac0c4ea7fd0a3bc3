"""Accuracy of a subnet: top-1 / top-5 on a split, after BN recalibration on cached training batches.

:func:`evaluate_subnet` measures a model on a loader the caller passes (the validation split: the
test split is never used for search); :func:`evaluate_arch` extracts an arch from a supernet,
recalibrates its BN and evaluates it; :class:`SubnetEvaluator` is ``arch -> top-1`` of one supernet
with its calibration batches cached once, for predictor datasets and searches.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, IterableDataset

from ..config import Int8Config, MeasureSettings
from ..costs import count_flops, count_params
from ..data import DataBundle
from ..devices import use_channels_last
from ..errors import UserError
from ..host_memory import reuse_freed_memory
from ..nn import cache_calibration_batches, calibrate_bn, load_supernet, to_model_resolution
from ..space import Arch, SearchSpace
from .int8_data import draw_int8_images
from .protocol import capped, holdout_warning, resolve_data, split_of
from .provenance import SETTING_KEYS, weights_fingerprint


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
    try:
        return score_predictions(lambda x: model(to_model_resolution(x, model)), loader, dev, batch_size)
    finally:
        model.train(was_training)


@torch.no_grad()
def score_predictions(predict: Callable[[torch.Tensor], torch.Tensor], loader: Dataset | DataLoader | Iterable,
                      device: str | torch.device = "cpu", batch_size: int = 256) -> dict[str, float]:
    """Top-1, top-5 (percent), mean cross-entropy and sample count of ``predict(images) -> logits`` on
    ``loader`` (batches of ``(images, labels)``, moved to ``device``)."""
    dev = torch.device(device)
    correct1 = correct5 = 0
    loss_sum = 0.0
    n = 0
    for batch in _as_loader(loader, batch_size):
        if not isinstance(batch, (list, tuple)) or len(batch) < 2:
            raise UserError("evaluation data must yield (images, labels) batches")
        x, y = batch[0].to(dev), batch[1].to(dev)
        if x.shape[0] == 0:
            continue
        logits = torch.as_tensor(predict(x)).to(y.device)
        loss_sum += float(F.cross_entropy(logits.float(), y, reduction="sum"))
        k = min(5, logits.size(1))
        hit = logits.topk(k, dim=1).indices.eq(y[:, None])
        # top-1: the first class of largest logit, as numpy's argmax and a deployment take it (topk breaks the
        # ties of quantized logits otherwise, so a search's INT8 top-1 would not be its exported file's)
        correct1 += int(logits.argmax(dim=1).eq(y).sum())
        correct5 += int(hit.any(dim=1).sum())
        n += int(y.numel())
    if n == 0:
        raise UserError("evaluation data is empty")
    return {"top1": 100.0 * correct1 / n, "top5": 100.0 * correct5 / n, "loss": loss_sum / n, "samples": n}


def extract_for_measurement(supernet: nn.Module, arch: Arch, device: torch.device,
                            channels_last: bool | str = "auto") -> nn.Module:
    """The static subnet of ``arch`` on ``device``, in channels-last memory where ``channels_last``
    says so (``auto``: on CPU, where oneDNN's depthwise convolutions run several times faster in
    it), ready for BN recalibration and evaluation; the supernet is left as it was."""
    sub = supernet.extract(arch).to(device)
    if use_channels_last(channels_last, device):
        sub = sub.to(memory_format=torch.channels_last)
    return sub


def evaluate_arch(
    supernet: nn.Module,
    arch: Arch,
    calib_batches: Sequence[torch.Tensor],
    val_loader: Dataset | DataLoader | Iterable,
    device: str | torch.device | None = None,
    channels_last: bool | str = "auto",
) -> dict[str, Any]:
    """Extract ``arch`` from ``supernet``, recalibrate its BN on ``calib_batches``, evaluate it on the
    validation loader. Returns ``top1``, ``top5``, ``loss``, ``samples``, ``mflops``, ``params_m``
    and the arch. Only the supernet's active arch changes: the extracted copy is calibrated, the
    supernet's weights and BN statistics are left as they were. ``channels_last`` runs the extracted
    subnet in channels-last memory (``auto``: on CPU, where oneDNN's depthwise convolutions are much
    faster so: tiny-space subnets calibrate and evaluate 2-3x faster; the same top-1 up to float
    rounding)."""
    space = supernet.space
    space.validate(arch)
    num_classes = int(getattr(supernet, "num_classes", 1000))
    dev = torch.device(device) if device is not None else next(supernet.parameters()).device
    sub = extract_for_measurement(supernet, arch, dev, channels_last)
    calibrate_bn(sub, calib_batches)
    result: dict[str, Any] = dict(evaluate_subnet(sub, val_loader, dev))
    result["mflops"] = count_flops(space, arch, num_classes)
    result["params_m"] = count_params(space, arch, num_classes) / 1e6
    result["arch"] = arch.to_dict()
    if not all(math.isfinite(float(result[k])) for k in ("top1", "top5")):
        raise RuntimeError("evaluation produced a non-finite accuracy")
    return result


class SubnetEvaluator:
    """``evaluate_fn(arch) -> top-1 (%)`` of one supernet, for ``evaluate``, predictor datasets and searches.

    It measures as ``settings`` (:class:`~attentivenas.config.MeasureSettings`) say; built directly, a
    split left None is ``holdout`` and a calibration seed left None is 0 (:meth:`for_supernet` resolves
    them for the checkpoint instead). The calibration batches (training split) are drawn once and
    reused for every arch at every resolution. The images are those of ``bundle``, resized in the
    network to each subnet's resolution, unless ``bundle_at(resolution)`` is given (the per-resolution
    pipeline: evaluation images prepared at each subnet's resolution, built once per resolution).
    ``channels_last`` measures every subnet in channels-last memory (see :func:`evaluate_arch`). On
    CPU, freed host memory is kept for reuse (:func:`attentivenas.host_memory.reuse_freed_memory`;
    ``ATTENTIVENAS_REUSE_FREED_MEMORY=0`` turns it off).
    """

    def __init__(self, supernet: nn.Module, bundle: DataBundle, settings: MeasureSettings | None = None,
                 device: str | torch.device | None = None, bundle_at: Callable[[int], DataBundle] | None = None,
                 channels_last: bool | str = "auto", meta: dict[str, Any] | None = None) -> None:
        if bundle.num_classes != int(getattr(supernet, "num_classes", bundle.num_classes)):
            raise UserError(f"the data has {bundle.num_classes} classes but the supernet's classifier has "
                            f"{supernet.num_classes}")
        s = (settings or MeasureSettings()).measurement()
        #: the settings it measures with (split and calibration seed filled in)
        self.settings = s.model_copy(update={"split": s.split or "holdout", "calib_seed": s.calib_seed or 0})
        self.supernet = supernet
        self.bundle = bundle
        self.device = torch.device(device) if device is not None else next(supernet.parameters()).device
        reuse_freed_memory("auto", self.device)
        self.channels_last = channels_last
        self.val_loader = self._loader(bundle)  # checks the split before the calibration batches are drawn
        self.calib = cache_calibration_batches(bundle.calibration_set(), self.settings.calib_batches,
                                               self.settings.calib_batch_size, self.settings.calib_seed, self.device)
        self._bundle_at = bundle_at
        self._loaders: dict[int, DataLoader] = {}
        self.meta: dict[str, Any] = dict(meta or {})  # the checkpoint's metadata, when loaded from one
        self._weights: str | None = None

    def provenance(self) -> dict[str, Any]:
        """What it measures with (``measured_with`` in a dataset file's header): a fingerprint of the
        supernet's weights (computed once), the data (name, images of the split, hold-out) and the
        settings that change accuracy (:data:`~attentivenas.accuracy.provenance.SETTING_KEYS`)."""
        if self._weights is None:
            self._weights = weights_fingerprint(self.supernet)
        try:
            images: int | None = len(split_of(self.bundle, self.split))  # type: ignore[arg-type]
        except TypeError:
            images = None
        hold = self.bundle.holdout or {}
        data = {"name": self.bundle.name, "images": images,
                "holdout": hold.get("indices_sha256") or hold.get("val_dir")}
        return {"weights": self._weights, "data": data, **{k: getattr(self.settings, k) for k in SETTING_KEYS}}

    @property
    def split(self) -> str:
        """The split it measures on."""
        return str(self.settings.split)

    @classmethod
    def from_checkpoint(cls, checkpoint: str | Path, space: str | SearchSpace | None = None, data: str | None = None,
                        settings: MeasureSettings | None = None, device: str | torch.device | None = None,
                        seed: int = 0, warn: Callable[[str], None] | None = None) -> SubnetEvaluator:
        """Load a supernet checkpoint and its data (``data`` as in :func:`resolve_data`), measured as
        ``settings`` say (the published evaluation of the checkpoint's kind by default; ``seed`` is the
        calibration seed of our checkpoints, see :meth:`MeasureSettings.resolved`). ``warn`` receives the
        warning of :func:`holdout_warning` when the split holds images the checkpoint trained on."""
        net, meta = load_supernet(checkpoint, space, device=device or "cpu")
        return cls.for_supernet(net, meta, data, settings, device, seed, warn)

    @classmethod
    def for_supernet(cls, net: nn.Module, meta: dict[str, Any], data: str | None = None,
                     settings: MeasureSettings | None = None, device: str | torch.device | None = None, seed: int = 0,
                     warn: Callable[[str], None] | None = None) -> SubnetEvaluator:
        """:meth:`from_checkpoint` for a supernet already loaded with :func:`load_supernet`; its
        ``settings`` are resolved for the checkpoint."""
        p = (settings or MeasureSettings()).resolved(meta, seed)
        assert p.split is not None and p.calib_seed is not None
        bundle = resolve_data(data, net.space, meta, seed=p.calib_seed, interpolation=p.interpolation)
        message = holdout_warning(meta, bundle, p.split)
        if message is not None:
            (warn or (lambda m: warnings.warn(m, stacklevel=3)))(message)
        bundle_at = None
        if p.per_resolution and bundle.name != "digits":
            def bundle_at(r: int) -> DataBundle:
                return resolve_data(data, net.space, meta, resolution=r, seed=int(p.calib_seed),
                                    interpolation=p.interpolation)
        return cls(net, bundle, p, device, bundle_at, meta=meta)

    def on_split(self, split: str) -> SubnetEvaluator:
        """The same supernet, data and calibration batches, measuring on another split."""
        other = copy.copy(self)
        other.settings = self.settings.model_copy(update={"split": split})
        other.val_loader = other._loader(self.bundle)
        other._loaders = {}
        return other

    def _loader(self, bundle: DataBundle) -> DataLoader:
        return DataLoader(capped(split_of(bundle, self.split), self.settings.max_images),
                          batch_size=self.settings.batch_size, shuffle=False)

    def loader_for(self, arch: Arch) -> DataLoader:
        """The evaluation batches ``arch`` is measured on."""
        if self._bundle_at is None:
            return self.val_loader
        r = int(arch.resolution)
        if r not in self._loaders:
            self._loaders[r] = self._loader(self._bundle_at(r))
        return self._loaders[r]

    def evaluate(self, arch: Arch) -> dict[str, Any]:
        return evaluate_arch(self.supernet, arch, self.calib, self.loader_for(arch), self.device, self.channels_last)

    def __call__(self, arch: Arch) -> float:
        return float(self.evaluate(arch)["top1"])


#: the largest batch of a quantized program measured for accuracy (its batch is fixed; the last one is padded)
INT8_EVAL_BATCH = 64


class Int8SubnetEvaluator:
    """``evaluate_fn(arch) -> top-1 (%)`` of the subnet quantized to INT8, beside a float
    :class:`SubnetEvaluator` ``base``: the subnet is extracted and its BN recalibrated on ``base``'s batches (in
    contiguous memory, as ``export --precision int8`` recalibrates it), then quantized with
    :func:`attentivenas.runtimes.quantize.int8_predict_fn` as ``int8`` says (its runtime; static quantization
    calibrated on training images drawn once by :func:`~attentivenas.accuracy.int8_data.draw_int8_images` from
    ``base``'s calibration seed, as ``export --precision int8`` draws them) and evaluated on the images ``base``
    evaluates that arch on. The INT8 runtimes run on the CPU with ``threads`` threads (default: torch's),
    programs of a fixed batch (the evaluation batch size, at most :data:`INT8_EVAL_BATCH`)."""

    precision = "int8"

    def __init__(self, base: SubnetEvaluator, int8: Int8Config | None = None, threads: int | None = None) -> None:
        from ..runtimes.quantize import check_int8_runtime  # heavy: the INT8 runtimes come with it

        self.int8 = int8 if int8 is not None else Int8Config()
        check_int8_runtime(self.int8.runtime)  # one line now, not after the search, when its quantizer is missing
        self.base, self.runtime = base, self.int8.runtime
        self.calib_images = self.int8.calib_count()
        self.threads = int(threads or torch.get_num_threads())
        self.calib_seed = self.int8.calib_seed(int(base.settings.calib_seed or 0))
        self._images: torch.Tensor | None = None

    @property
    def settings(self) -> MeasureSettings:
        """The float evaluator's settings (the same split, images and BN calibration)."""
        return self.base.settings

    @property
    def split(self) -> str:
        return self.base.split

    def provenance(self) -> dict[str, Any]:
        """``base``'s provenance plus the precision, the INT8 runtime and its calibration images."""
        return {**self.base.provenance(), "precision": self.precision, "int8_runtime": self.runtime,
                "int8_calib_images": self.calib_images, "int8_calib_seed": self.calib_seed}

    def quantization_images(self) -> torch.Tensor:
        """The seeded training images that calibrate the quantization (drawn once, on the CPU)."""
        if self._images is None:
            self._images = draw_int8_images(self.base.bundle, self.int8, int(self.base.settings.calib_seed or 0)).calib
        return self._images

    def quantized(self, arch: Arch) -> tuple[nn.Module, Callable[[torch.Tensor], torch.Tensor]]:
        """The BN-recalibrated float subnet of ``arch`` (on the CPU) and its INT8 ``predict(images) -> logits``
        (images at any size: resized to the subnet's resolution first)."""
        from ..runtimes.quantize import int8_predict_fn  # heavy: the INT8 runtimes come with it

        b = self.base
        b.supernet.space.validate(arch)
        # BN recalibrated in contiguous memory, as `export --precision int8` does: channels-last rounding would move
        # the statistics by ~1e-6 and, through the quantization ranges, the INT8 top-1 away from the exported file's
        sub = extract_for_measurement(b.supernet, arch, b.device, False)
        calibrate_bn(sub, b.calib)
        sub = sub.to("cpu", memory_format=torch.contiguous_format).eval()
        calib = to_model_resolution(self.quantization_images(), sub).contiguous()
        batch = max(1, min(int(b.settings.batch_size), INT8_EVAL_BATCH))
        example = calib[:1].expand(batch, *calib.shape[1:]).contiguous()
        run = int8_predict_fn(sub, self.runtime, calib, example, threads=self.threads)

        def predict(x: torch.Tensor) -> torch.Tensor:
            return run(to_model_resolution(x.to("cpu").float(), sub).contiguous())

        return sub, predict

    def evaluate(self, arch: Arch) -> dict[str, Any]:
        """Top-1 / top-5 / loss / samples of ``arch`` quantized, with its MFLOPs, params and the arch."""
        _, predict = self.quantized(arch)
        result: dict[str, Any] = dict(score_predictions(predict, self.base.loader_for(arch), "cpu"))
        space, num_classes = self.base.supernet.space, int(getattr(self.base.supernet, "num_classes", 1000))
        result.update(mflops=count_flops(space, arch, num_classes), params_m=count_params(space, arch, num_classes) / 1e6,
                      arch=arch.to_dict(), precision=self.precision, runtime=self.runtime)
        if not all(math.isfinite(float(result[k])) for k in ("top1", "top5")):
            raise RuntimeError("INT8 evaluation produced a non-finite accuracy")
        return result

    def __call__(self, arch: Arch) -> float:
        return float(self.evaluate(arch)["top1"])
