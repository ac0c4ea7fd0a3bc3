"""Facts about a data set that travel with a model: the class names in label order and the per-channel
normalisation of its images and the size of its training images (:func:`class_names_of`,
:func:`normalization_of`, :func:`source_image_size`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .tensors import DIGITS_MEAN, DIGITS_STD, FASHION_MNIST_MEAN, FASHION_MNIST_STD
from .transforms import CIFAR_MEAN, CIFAR_STD, IMAGENET_MEAN, IMAGENET_STD

#: class names of the built-in in-memory data sets, whose files do not hold them, in label order
#: (Fashion-MNIST's as its authors name them)
KNOWN_CLASS_NAMES: dict[str, list[str]] = {
    "digits": [str(i) for i in range(10)],
    "fashion_mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                      "Ankle boot"],
}


def normalization_of(data_name: str) -> dict[str, list[float]]:
    """The per-channel mean and std the images of a data set are normalised with (grey images: the
    same value on the three channels they are repeated on)."""
    if data_name == "digits":
        return {"mean": [DIGITS_MEAN] * 3, "std": [DIGITS_STD] * 3}
    if data_name == "fashion_mnist":
        return {"mean": [FASHION_MNIST_MEAN] * 3, "std": [FASHION_MNIST_STD] * 3}
    if data_name.startswith("cifar"):
        return {"mean": list(CIFAR_MEAN), "std": list(CIFAR_STD)}
    return {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}


def class_names_of(dataset: Any, num_classes: int, data_name: str = "") -> list[str] | None:
    """The class names of a data set in label order (ImageFolder: its sorted class folders, as torchvision
    numbers them; CIFAR: its ``classes``, looked for through wrappers such as seeded transforms and
    subsets; the digits and Fashion-MNIST: :data:`KNOWN_CLASS_NAMES`), None when unknown."""
    known = KNOWN_CLASS_NAMES.get(data_name)
    if known is not None and len(known) == num_classes:
        return list(known)
    seen = 0
    while dataset is not None and seen < 8:
        names = getattr(dataset, "classes", None)
        if isinstance(names, Sequence) and not isinstance(names, str) and len(names) == num_classes:
            return [str(c) for c in names]
        dataset = getattr(dataset, "dataset", None) or getattr(dataset, "base", None)
        seen += 1
    return None


#: the training images' size (height, width) of the data sets whose images are all one size
SOURCE_SIZES = {"digits": (8, 8), "fashion_mnist": (28, 28), "cifar10": (32, 32), "cifar100": (32, 32)}


def source_image_size(data_name: str, dataset: Any = None) -> tuple[int, int] | None:
    """(height, width) of a data set's training images: :data:`SOURCE_SIZES`, else an image folder's
    first training image (its header only, looked for through wrappers), None when unknown."""
    if data_name in SOURCE_SIZES:
        return SOURCE_SIZES[data_name]
    seen = 0
    while dataset is not None and seen < 8:
        samples = getattr(dataset, "samples", None)
        if isinstance(samples, Sequence) and samples:
            from PIL import Image  # heavy: Pillow, only for image folders

            try:
                with Image.open(samples[0][0]) as im:
                    return int(im.size[1]), int(im.size[0])
            except (OSError, ValueError, IndexError, TypeError):
                return None
        dataset = getattr(dataset, "dataset", None) or getattr(dataset, "base", None)
        seen += 1
    return None
