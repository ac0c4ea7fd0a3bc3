"""The images of an INT8 quantization: :func:`draw_int8_images` is the one function that draws them, for the
search's INT8 top-1 (:class:`~attentivenas.accuracy.evaluate.Int8SubnetEvaluator`), ``export --precision int8``
and bundles, from an :class:`~attentivenas.config.Int8Recipe` and the measurement's calibration seed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..config import Int8Config, Int8Recipe
from ..data import DataBundle
from ..nn import cache_calibration_batches
from .protocol import split_of


@dataclass(frozen=True)
class Int8Images:
    """Calibration images (``N x 3 x H x W``, float32 on the CPU) and the accuracy check's images and labels
    (None without a check)."""

    calib: torch.Tensor
    check_images: torch.Tensor | None = None
    check_labels: torch.Tensor | None = None

    @property
    def check_data(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(images, labels) of the check, or None."""
        if self.check_images is None or self.check_labels is None:
            return None
        return self.check_images, self.check_labels


def draw_calib_images(train: object, recipe: Int8Config, seed: int) -> torch.Tensor:
    """``recipe.calib_count()`` training images drawn with ``recipe.calib_seed(seed)`` (seeded, without
    replacement), float32 and contiguous on the CPU."""
    batch = cache_calibration_batches(train, 1, recipe.calib_count(), recipe.calib_seed(seed), "cpu")[0]  # type: ignore[arg-type]
    return batch.float().contiguous()


def draw_check_data(bundle: DataBundle, split: str, images: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded random subset (``seed``, in index order) of ``images`` images of ``split`` and their labels."""
    data = split_of(bundle, split)
    total = len(data)  # type: ignore[arg-type]
    idx = np.sort(np.random.default_rng(seed).choice(total, min(images, total), replace=False))
    items = [data[int(i)] for i in idx]
    return torch.stack([it[0] for it in items]), torch.as_tensor([int(it[1]) for it in items])


def draw_int8_images(bundle: DataBundle, recipe: Int8Config, seed: int) -> Int8Images:
    """The INT8 images of ``recipe`` for a measurement whose BN calibration seed is ``seed``: calibration
    images from ``bundle.train`` (seed + :data:`~attentivenas.config.INT8_CALIB_SEED_OFFSET`) and, for an
    :class:`Int8Recipe` with ``check_images > 0``, the check's images of ``check_split`` (seed ``seed``)."""
    calib = draw_calib_images(bundle.train, recipe, seed)
    if not isinstance(recipe, Int8Recipe) or recipe.check_images == 0:
        return Int8Images(calib)
    images, labels = draw_check_data(bundle, recipe.check_split, recipe.check_images, seed)
    return Int8Images(calib, images, labels)
