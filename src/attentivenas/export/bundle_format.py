"""What a bundle folder is made of: its file names, format version, the runtime files and their names,
the bounds its config is read with, and :class:`CardInfo` (what the card says beyond the subnet)."""


from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..runtimes.quantize import PRECISIONS
from .formats import ExportError

MODEL_TYPE = "attentivenas-subnet"
#: 2: ``preprocessing`` and the sha256 of every file (``weights_sha256``, ``files[name].sha256``) recorded
FORMAT_VERSION = 2
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
INDEX_NAME = "index.json"
#: runtime files a bundle can hold, by export format
RUNTIME_FILES = {"torch-export": "model.pt2", "onnx": "model.onnx", "executorch": "model.pte"}
BUNDLE_FORMATS = tuple(RUNTIME_FILES)
RUNTIME_NAMES = {"torch-export": "PyTorch (torch.export .pt2)", "onnx": "ONNX Runtime", "executorch":
                 "ExecuTorch (XNNPACK)"}
#: the largest config.json read (it holds a space, an arch and a few hundred class names)
MAX_CONFIG_BYTES = 16 * 2**20
MAX_CLASSES = 1_000_000
MFLOPS_UNIT = "million multiply-accumulates (MACs), the authors' FLOPs convention"
#: interpolations a bundle's preprocessing may name (those the data configs take)
INTERPOLATIONS = ("bilinear", "bicubic")
#: how the source image is resized: ``whole_image`` (both sides to the size: the digits, Fashion-MNIST)
#: or ``shorter_side`` (the shorter side to the size, then a centre crop: image folders, CIFAR)
RESIZE_MODES = ("whole_image", "shorter_side")
#: source colours: the image is converted to this mode first (``grayscale``: repeated on 3 channels after)
COLORS = {"grayscale": 1, "rgb": 3}
#: the largest image side a bundle's preprocessing may name
MAX_SIDE = 16384
#: the network resizes its input to its resolution with this interpolation (in the model, and for runtime files)
MODEL_RESIZE = "bicubic"

#: ``latency_fn(path, fmt, precision, batch) -> {"median_ms", "p90_ms", "batch", "threads", ...}``
LatencyFn = Callable[[Path, str, str, "int | str"], Mapping[str, Any]]
#: ``accuracy_fn(folder, files) -> accuracy entries`` of the runtime files written (e.g. INT8 top-1)
AccuracyFn = Callable[[Path, Mapping[str, Mapping[str, Any]]], Sequence[Mapping[str, Any]]]


@dataclass
class CardInfo:
    """What the card and ``config.json`` say beyond the subnet itself (all optional).

    ``accuracy``: entries ``{"split", "precision", "top1", "top5", "samples"}``; ``latency``: entries
    ``{"file", "runtime", "precision", "median_ms", "p90_ms", "batch", "threads", "repeats"}`` (filled by
    ``latency_fn`` too); ``source``: ``{"checkpoint", "sha256", "kind"}``; ``machine``: where latency was
    measured; ``notes``: extra lines of the card (e.g. how BN statistics were set); ``preprocessing``: how an
    image becomes the model's input (:func:`preprocessing_of`).
    """

    class_names: list[str] | None = None
    normalization: dict[str, list[float]] | None = None
    interpolation: str | None = None
    preprocessing: dict[str, Any] | None = None
    source: dict[str, Any] = field(default_factory=dict)
    command: str | None = None
    accuracy: list[dict[str, Any]] = field(default_factory=list)
    latency: list[dict[str, Any]] = field(default_factory=list)
    machine: str | None = None
    notes: list[str] = field(default_factory=list)


def runtime_file_name(fmt: str, precision: str = "fp32") -> str:
    """``model.pt2``, ``model.onnx``, ``model.pte``; INT8 files are ``model.int8.<suffix>``."""
    if fmt not in RUNTIME_FILES:
        raise ExportError(f"a bundle's runtime files are {', '.join(BUNDLE_FORMATS)}; not {fmt!r}")
    if precision not in PRECISIONS:
        raise ExportError(f"unknown precision {precision!r}; use {' or '.join(PRECISIONS)}")
    name = RUNTIME_FILES[fmt]
    return name if precision == "fp32" else name.replace("model.", "model.int8.", 1)


