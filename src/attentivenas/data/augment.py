"""The image augmentation policies of ``data.auto_augment``, built from timm's and torchvision's ops.

``v0`` is the authors' AutoAugment: the TensorFlow EfficientNet ImageNet policy "v0" (25 sub-policies
of two ops), each op's magnitude drawn around its policy value with ``data.augment_magnitude_std``
(0.5) and clipped to 0-10, the resampling filter drawn per op from nearest, bilinear and bicubic, and
the mean colour as fill. Posterize keeps 4-8 bits, as the authors map it (timm's ``PosterizeOriginal``);
timm's own "v0" maps it to 0-4 bits, which can remove every bit (Pillow 13 refuses 0 bits, older
Pillow returned a black image). ``randaugment`` is timm's RandAugment with the same Posterize.
``imagenet`` / ``cifar10`` / ``svhn`` are torchvision's original AutoAugment policies.

Every op is wrapped so that a failure names it (see :class:`~attentivenas.data.transforms.LabelledOp`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..config import DataConfig
from .ops import LabelledOp
from .plan import augment_plan

#: The authors' AutoAugment "v0" (TF EfficientNet's ImageNet policy): sub-policies of
#: (op, probability, magnitude on 0-10); one sub-policy is drawn per image.
V0_POLICY: tuple[tuple[tuple[str, float, int], ...], ...] = (
    (("Equalize", 0.8, 1), ("ShearY", 0.8, 4)),
    (("Color", 0.4, 9), ("Equalize", 0.6, 3)),
    (("Color", 0.4, 1), ("Rotate", 0.6, 8)),
    (("Solarize", 0.8, 3), ("Equalize", 0.4, 7)),
    (("Solarize", 0.4, 2), ("Solarize", 0.6, 2)),
    (("Color", 0.2, 0), ("Equalize", 0.8, 8)),
    (("Equalize", 0.4, 8), ("SolarizeAdd", 0.8, 3)),
    (("ShearX", 0.2, 9), ("Rotate", 0.6, 8)),
    (("Color", 0.6, 1), ("Equalize", 1.0, 2)),
    (("Invert", 0.4, 9), ("Rotate", 0.6, 0)),
    (("Equalize", 1.0, 9), ("ShearY", 0.6, 3)),
    (("Color", 0.4, 7), ("Equalize", 0.6, 0)),
    (("Posterize", 0.4, 6), ("AutoContrast", 0.4, 7)),
    (("Solarize", 0.6, 8), ("Color", 0.6, 9)),
    (("Solarize", 0.2, 4), ("Rotate", 0.8, 9)),
    (("Rotate", 1.0, 7), ("TranslateYRel", 0.8, 9)),
    (("ShearX", 0.0, 0), ("Solarize", 0.8, 4)),
    (("ShearY", 0.8, 0), ("Color", 0.6, 4)),
    (("Color", 1.0, 0), ("Rotate", 0.6, 2)),
    (("Equalize", 0.8, 4), ("Equalize", 0.0, 8)),
    (("Equalize", 1.0, 4), ("AutoContrast", 0.6, 2)),
    (("ShearY", 0.4, 7), ("SolarizeAdd", 0.6, 7)),
    (("Posterize", 0.8, 2), ("Solarize", 0.6, 10)),
    (("Solarize", 0.6, 8), ("Equalize", 0.6, 1)),
    (("Color", 0.8, 6), ("Rotate", 0.4, 5)),
)

#: RandAugment's ops (timm's default set); one of them is drawn ``data.rand_augment_ops`` times per image
RAND_AUGMENT_OPS: tuple[str, ...] = (
    "AutoContrast", "Equalize", "Invert", "Rotate", "Posterize", "Solarize", "SolarizeAdd", "Color", "Contrast",
    "Brightness", "Sharpness", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel",
)

#: our op names -> timm's: Posterize keeps 4-8 bits (the authors' level -> bits mapping)
TIMM_OP = {"Posterize": "PosterizeOriginal"}

#: ``data.auto_augment`` values read by torchvision (its original AutoAugment policies)
TORCHVISION_POLICIES = ("imagenet", "cifar10", "svhn")


def timm_hparams(cfg: DataConfig, mean: Sequence[float], authors_resampling: bool) -> dict[str, Any]:
    """timm's op settings of the recipe: translation range, mean-colour fill, magnitude noise, and the
    resampling drawn per op from nearest, bilinear and bicubic (the authors') or, without
    ``authors_resampling``, from timm's bilinear and bicubic."""
    hparams: dict[str, Any] = {
        "translate_const": int(cfg.image_size * 0.45),
        "img_mean": tuple(round(255 * m) for m in mean),
        "magnitude_std": cfg.augment_magnitude_std,
    }
    if authors_resampling:
        from PIL import Image  # heavy: PIL loads only when images need it

        hparams["interpolation"] = (Image.Resampling.NEAREST, Image.Resampling.BILINEAR, Image.Resampling.BICUBIC)
    return hparams


def timm_op(name: str, prob: float, magnitude: float, hparams: dict[str, Any], policy: str) -> LabelledOp:
    """timm's ``AugmentOp`` of one of our op names, labelled for error messages."""
    from timm.data.auto_augment import AugmentOp  # heavy: timm loads only for its augmentations

    op = AugmentOp(TIMM_OP.get(name, name), prob=prob, magnitude=magnitude, hparams=hparams)
    return LabelledOp(op, f"{policy} {name} (p={prob}, magnitude {magnitude})")


def v0_policy(cfg: DataConfig, mean: Sequence[float]) -> Callable:
    """The authors' AutoAugment "v0" (see the module docstring) as timm's ``AutoAugment``."""
    from timm.data.auto_augment import AutoAugment  # heavy: timm loads only for its augmentations

    hp = timm_hparams(cfg, mean, authors_resampling=True)
    return AutoAugment([[timm_op(n, p, m, hp, "AutoAugment v0") for n, p, m in sub] for sub in V0_POLICY])


def rand_augment(cfg: DataConfig, mean: Sequence[float]) -> Callable:
    """timm's RandAugment: ``data.rand_augment_ops`` ops per image of magnitude
    ``data.rand_augment_magnitude`` (noise and fill as v0, timm's resampling), each applied with
    probability 0.5."""
    from timm.data.auto_augment import RandAugment  # heavy: timm loads only for its augmentations

    hp = timm_hparams(cfg, mean, authors_resampling=False)
    ops = [timm_op(n, 0.5, cfg.rand_augment_magnitude, hp, "RandAugment") for n in RAND_AUGMENT_OPS]
    return RandAugment(ops, cfg.rand_augment_ops)


def augment_op(cfg: DataConfig, mean: Sequence[float]) -> Callable | None:
    """The PIL-image augmentation of ``data.auto_augment`` (None for ``none``; ``auto`` as
    :func:`~attentivenas.data.plan.augment_plan` resolves it)."""
    name = augment_plan(cfg).auto_augment
    if name == "none":
        return None
    if name in TORCHVISION_POLICIES:
        from torchvision import transforms as T  # heavy: torchvision loads only when images need it

        policy = T.AutoAugmentPolicy(name)
        return LabelledOp(T.AutoAugment(policy, interpolation=T.InterpolationMode.BILINEAR),
                          f"torchvision AutoAugment {name}")
    if name == "v0":
        return v0_policy(cfg, mean)
    return rand_augment(cfg, mean)
