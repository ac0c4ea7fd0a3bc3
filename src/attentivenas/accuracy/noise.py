"""How far a measured top-1 can be trusted: a Wilson 95% interval on the number of images measured
(:func:`wilson_interval`), the images a difference needs before intervals stop overlapping
(:func:`images_to_resolve`), and the printed names of the splits (:func:`split_label`)."""

from __future__ import annotations

import math

from ..data import HOLDOUT_NAME, TEST_NAME

#: the normal quantile of a two-sided 95% interval
Z95 = 1.959964


def wilson_interval(top1: float, images: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval (percent) of a top-1 of ``top1`` percent measured on ``images`` images."""
    if images < 1:
        return 0.0, 100.0
    p = min(max(top1 / 100.0, 0.0), 1.0)
    denom = 1.0 + z * z / images
    centre = (p + z * z / (2 * images)) / denom
    half = z * math.sqrt(p * (1 - p) / images + z * z / (4 * images * images)) / denom
    return 100.0 * max(centre - half, 0.0), 100.0 * min(centre + half, 1.0)


def intervals_overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def images_to_resolve(top1_a: float, top1_b: float, z: float = Z95) -> int | None:
    """About how many images would separate the 95% intervals of two top-1 (percent) that differ
    (normal approximation: the difference exceeds the sum of the half-widths); None when they are equal."""
    d = abs(top1_a - top1_b) / 100.0
    if d <= 0:
        return None
    spread = sum(math.sqrt(max(p / 100.0 * (1 - p / 100.0), 1e-4)) for p in (top1_a, top1_b))
    return int(math.ceil((z * spread / d) ** 2))


def split_label(split: str | None) -> str:
    """The printed name of a split: ``hold-out`` (images carved from the training data), ``test`` (the
    data set's test split, a user's ``val/``) or one of its seeded halves."""
    if split is None or split == "holdout":
        return HOLDOUT_NAME
    _, _, part = split.partition("-")
    return f"{TEST_NAME} ({part} half)" if part else TEST_NAME
