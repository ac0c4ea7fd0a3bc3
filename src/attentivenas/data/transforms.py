"""Per-sample transforms: the recipe's training and evaluation transforms (torchvision, and the
augmentations of :mod:`.augment`), the digits' random shift, and the dataset wrapper that seeds them
per sample and names the image and the op when one fails."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..config import DataConfig
from ..errors import DataError
from ..rng import mix_seed, seeded_cpu_rngs
from .augment import augment_op
from .ops import Chain, TransformFailure, op_label
from .plan import augment_plan, eval_resize_of

IMAGENET_MEAN = (0.485, 0.456, 0.406)


IMAGENET_STD = (0.229, 0.224, 0.225)


CIFAR_MEAN = (0.4914, 0.4822, 0.4465)


CIFAR_STD = (0.2470, 0.2435, 0.2616)


class SeededTransformDataset(Dataset):
    """``transform(base[indices[i]])`` with the torch RNG seeded from (seed, epoch, index).

    Random augmentations are then a pure function of the sample and the epoch: the same in any
    worker, after a resume, and independent of the global RNG (which is saved and restored).
    """

    def __init__(self, base: Dataset, indices: Sequence[int] | None, transform: Callable | None, seed: int = 0,
                 random: bool = True) -> None:
        self.base = base
        self.indices = list(range(len(base))) if indices is None else [int(i) for i in indices]  # type: ignore[arg-type]
        self.transform = transform
        self.seed = seed
        self.random = random
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x, y = self.base[self.indices[i]]
        if self.transform is not None:
            try:
                if self.random:  # torchvision draws from torch, timm from python's random and numpy
                    with seeded_cpu_rngs(mix_seed(self.seed, self.epoch, self.indices[i])):
                        x = self.transform(x)
                else:
                    x = self.transform(x)
            except Exception as exc:  # any transform's failure: one line naming the image and the op
                raise DataError(self.failure_message(i, exc)) from None
        return x, int(y)

    def describe(self, i: int) -> str:
        """The ``i``-th sample for messages: its file where the base data set has files."""
        index = self.indices[i]
        samples = getattr(self.base, "samples", None)
        if isinstance(samples, list) and 0 <= index < len(samples):
            return f"image {samples[index][0]}"
        return f"sample {index} of {type(self.base).__name__}"

    def failure_message(self, i: int, exc: Exception) -> str:
        """One line: which image, which op, what it raised, and the way around it."""
        if isinstance(exc, TransformFailure):
            op, cause = exc.op, exc.cause
        else:
            op, cause = op_label(self.transform), exc  # type: ignore[arg-type]
        what = f"{type(cause).__name__}: {' '.join(str(cause).split())}"
        advice = ("train without this augmentation (data.auto_augment=none) and report it" if "Augment" in op
                  else "check or replace the file")
        return f"data: the transform failed on {self.describe(i)} (epoch {self.epoch}) in {op}: {what}; {advice}"


class RandomShift:
    """Translate a CHW tensor by up to ``max_shift`` pixels (zero-padding at the digits' background)."""

    def __init__(self, max_shift: int, fill: float = -1.0) -> None:
        self.max_shift = max_shift
        self.fill = fill

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        s = self.max_shift
        if s <= 0:
            return x
        dy, dx = (int(v) for v in torch.randint(-s, s + 1, (2,)))
        padded = F.pad(x, (s, s, s, s), value=self.fill)
        h, w = x.shape[-2:]
        return padded[..., s + dy : s + dy + h, s + dx : s + dx + w]


class RandomFlip:
    """Flip a CHW tensor left-right with probability ``p`` (torch's generator)."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = p

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x.flip(-1) if float(torch.rand(())) < self.p else x


def interpolation_mode(name: str):
    """torchvision's InterpolationMode of ``bicubic`` / ``bilinear``."""
    from torchvision.transforms import InterpolationMode  # heavy: torchvision loads only when images need it

    return InterpolationMode.BICUBIC if name == "bicubic" else InterpolationMode.BILINEAR


def train_transform(cfg: DataConfig, mean: Sequence[float], std: Sequence[float]) -> Callable:
    """The recipe's training transform of PIL images: the crop of ``data.crop`` (random-resized; or
    the evaluation's resize and centre crop, then pad-and-random-crop or nothing), flip, AutoAugment,
    normalise, and RandomErasing when ``data.random_erasing`` > 0 (timm's, per-pixel noise)."""
    from torchvision import transforms as T  # heavy: torchvision loads only when images need it

    plan = augment_plan(cfg)
    interpolation = interpolation_mode(cfg.interpolation)
    if plan.crop == "random_resized":
        ops: list[Callable] = [T.RandomResizedCrop(cfg.image_size, scale=plan.crop_scale, interpolation=interpolation)]
    else:
        ops = [T.Resize(plan.eval_resize, interpolation=interpolation), T.CenterCrop(cfg.image_size)]
        if plan.crop == "pad_random_crop":
            fill = tuple(round(255 * m) for m in mean)
            ops.append(T.RandomCrop(cfg.image_size, padding=plan.pad, fill=fill))
    if plan.flip:
        ops.append(T.RandomHorizontalFlip())
    augment = augment_op(cfg, mean)
    if augment is not None:
        ops.append(augment)
    ops += [T.ToTensor(), T.Normalize(mean, std)]
    if cfg.random_erasing > 0:
        from timm.data.random_erasing import RandomErasing  # heavy: timm loads only for its augmentations

        ops.append(RandomErasing(cfg.random_erasing, mode="pixel", device="cpu"))
    return Chain(ops)


def eval_transform(cfg: DataConfig, mean: Sequence[float], std: Sequence[float]) -> Callable:
    """The recipe's evaluation transform: resize (shorter side, ``data.eval_resize`` or what follows
    ``data.image_size``), centre crop, normalise."""
    from torchvision import transforms as T  # heavy: torchvision loads only when images need it

    return Chain([
        T.Resize(eval_resize_of(cfg), interpolation=interpolation_mode(cfg.interpolation)),
        T.CenterCrop(cfg.image_size),
        T.ToTensor(),
        T.Normalize(mean, std),
    ])


class TensorRandomResizedCrop:
    """torchvision's RandomResizedCrop of a CHW tensor back to its own size (bilinear, antialiased)."""

    def __init__(self, size: int, scale: tuple[float, float]) -> None:
        self.size, self.scale = int(size), scale

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        from torchvision import transforms as T  # heavy: torchvision loads only when images need it

        return T.RandomResizedCrop(self.size, scale=self.scale, antialias=True)(x)


class ViaPIL:
    """A PIL-image op (AutoAugment) on a normalised CHW tensor: un-normalised to 8-bit RGB, the op,
    normalised back (``mean`` / ``std``: the tensor's per-channel normalisation)."""

    def __init__(self, op: Callable, mean: Sequence[float], std: Sequence[float]) -> None:
        self.op, self.mean, self.std = op, tuple(mean), tuple(std)
        self.label = op_label(op)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        from torchvision.transforms import functional as TF  # heavy: torchvision loads only when images need it

        m = torch.tensor(self.mean, dtype=x.dtype).view(-1, 1, 1)
        s = torch.tensor(self.std, dtype=x.dtype).view(-1, 1, 1)
        img = TF.to_pil_image((x * s + m).clamp(0, 1))
        y = TF.to_tensor(self.op(img)).to(x.dtype)
        return (y - m) / s


def tensor_train_transform(cfg: DataConfig, mean: float, std: float) -> Callable | None:
    """The training augmentation of an in-memory tensor data set (digits, Fashion-MNIST; images
    normalised with scalar ``mean`` / ``std``): the crop of ``data.crop`` (pad-and-random-crop as a
    random shift filled with the background, or a random-resized crop), flip, AutoAugment (through
    PIL); None when nothing is on."""
    plan = augment_plan(cfg)
    ops: list[Callable] = []
    if plan.crop == "pad_random_crop":
        ops.append(RandomShift(plan.pad, fill=-mean / std))
    elif plan.crop == "random_resized":
        ops.append(TensorRandomResizedCrop(cfg.image_size, plan.crop_scale))
    if plan.flip:
        ops.append(RandomFlip())
    augment = augment_op(cfg, (mean,) * 3)
    if augment is not None:
        ops.append(ViaPIL(augment, (mean,) * 3, (std,) * 3))
    return Chain(ops) if ops else None
