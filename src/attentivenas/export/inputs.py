"""The images an export is made with: the checkpoint's training batches its BN statistics are recalibrated
on (drawn as ``evaluate`` draws them), and for INT8 the calibration and check images of an
:class:`~attentivenas.config.Int8Recipe` (:func:`~attentivenas.accuracy.int8_data.draw_int8_images`, the one
function that draws them, as the search does)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..accuracy import resolve_data, stage2_data_config
from ..accuracy.int8_data import draw_int8_images
from ..config import DataConfig, Int8Recipe, MeasureSettings
from ..data import DataBundle
from ..data.facts import class_names_of
from ..errors import UserError
from ..nn import cache_calibration_batches
from .card_measure import CARD_SPLITS, CardMeasure

#: the end of the one-line error when the checkpoint names no data and BN recalibration is the default
OPT_OUT = " (export recalibrates BN on it by default), or --no-calibrate-bn to keep the stored statistics"


def calibration_data(data: str | None, space: Any, meta: dict[str, Any], seed: int, interpolation: str | None,
                     flag: bool | None) -> DataBundle:
    """The checkpoint's data for the BN recalibration (``resolve_data``); when the checkpoint names none and
    recalibration is the default (``flag`` None), the one-line error says how to opt out."""
    try:
        return resolve_data(data, space, meta, seed=seed, interpolation=interpolation)
    except UserError as exc:
        if flag is None and data is None:
            raise UserError(f"{exc}{OPT_OUT}") from None
        raise


def file_inputs(net: nn.Module, meta: dict[str, Any], data: str | None, measure: MeasureSettings,
                calibrate: bool, flag: bool | None, recipe: Int8Recipe | None) -> dict[str, Any]:
    """The keyword arguments of :func:`~attentivenas.export.formats.export_subnet` an export's images give:
    ``calib_batches`` (the BN recalibration's, None without one) and with ``recipe`` (INT8)
    ``calib_images`` and, with a check, ``check_data``."""
    if not calibrate:
        return {"calib_batches": None}
    p = measure.resolved(meta)  # the checkpoint's evaluation: its crops, interpolation and seed
    seed = int(p.calib_seed or 0)
    bundle = calibration_data(data, net.space, meta, seed, p.interpolation, flag)
    images = bundle.calibration_set()  # as stage 2: the evaluator's images and draw
    out: dict[str, Any] = {"calib_batches": cache_calibration_batches(images, p.calib_batches,
                                                                      p.calib_batch_size, seed)}
    if recipe is not None:
        drawn = draw_int8_images(bundle, recipe, seed)
        out["calib_images"] = drawn.calib
        if drawn.check_data is not None:
            out["check_data"] = drawn.check_data
    return out


@dataclass
class BundleInputs:
    """What a set of bundles is written with: the data config (its preprocessing), the card's measurer
    (None without card metrics), the data's name and class names, the BN recalibration's batches (None:
    the stored statistics), the INT8 calibration images and the training split."""

    dcfg: DataConfig
    card: CardMeasure | None
    data_name: str
    class_names: list[str] | None
    calib_batches: Sequence[torch.Tensor] | None = None
    calib_images: torch.Tensor | None = None
    train: Any = None


def bundle_inputs(net: nn.Module, meta: dict[str, Any], data: str | None, measure: MeasureSettings, *,
                  card_split: str | None, calibrate_bn: bool, calibrate_flag: bool | None,
                  recipe: Int8Recipe | None, warn: Callable[[str], None]) -> BundleInputs:
    """The data of :func:`~attentivenas.export.bundle_set.export_bundles` (``card_split`` None: no card
    metrics). With card metrics the BN batches are the evaluator's own (the same draw); INT8 files
    (``recipe``) always recalibrate BN first and are calibrated on the recipe's images."""
    p = measure.resolved(meta)  # the checkpoint's evaluation: its crops, interpolation and seed
    try:
        dcfg = stage2_data_config(data, net.space, meta, interpolation=p.interpolation)
    except UserError as exc:
        if calibrate_flag is None and data is None and calibrate_bn:
            raise UserError(f"{exc}{OPT_OUT}") from None
        raise
    device = next(net.parameters()).device
    card = None if card_split is None else CardMeasure(net, meta, data, measure, CARD_SPLITS[card_split], device,
                                                        warn)
    num_classes = int(net.num_classes)
    if card is not None:
        out = BundleInputs(dcfg, card, card.data_name, card.class_names(num_classes), train=card.evaluator.bundle.train)
    else:
        out = BundleInputs(dcfg, None, dcfg.name, class_names_of(None, num_classes, dcfg.name))
    if not (calibrate_bn or recipe is not None):
        return out
    seed = int(p.calib_seed or 0)
    if card is not None:  # the evaluator's batches: the same draw
        bundle, out.calib_batches = card.evaluator.bundle, card.evaluator.calib
    else:
        bundle = calibration_data(data, net.space, meta, seed, p.interpolation, calibrate_flag)
        out.calib_batches = cache_calibration_batches(bundle.calibration_set(), p.calib_batches,
                                                      p.calib_batch_size, seed, device)
    out.train = bundle.train
    if recipe is not None:  # activation ranges: the recipe's training images (the card checks per split)
        out.calib_images = draw_int8_images(bundle, recipe.model_copy(update={"check_images": 0}), seed).calib
    return out
