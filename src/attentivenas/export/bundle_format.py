"""What a bundle folder is made of: its file names, format version (those of the weights and
``config.json``: :mod:`attentivenas.export.weights`), the runtime files and their names,
the bound of its config's size (the typed ``config.json``: :mod:`attentivenas.config.bundle`), and :class:`CardInfo` (what the card says beyond the subnet)."""


from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..runtimes.quantize import PRECISIONS
from ..runtimes.records import RUNTIMES, Runtime, find_format
from .formats import ExportError

CARD_NAME = "README.md"
INDEX_NAME = "index.json"
#: the export formats of the runtime files a bundle can hold (the records with ``bundle``), in record order
BUNDLE_FORMATS = tuple(r.format for r in RUNTIMES.values() if r.bundle)
#: the largest config.json read (it holds a space, an arch and a few hundred class names)
MAX_CONFIG_BYTES = 16 * 2**20

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
    rt = bundle_runtime(fmt)
    if rt is None:
        raise ExportError(f"a bundle's runtime files are {', '.join(BUNDLE_FORMATS)}; not {fmt!r}")
    if precision not in PRECISIONS:
        raise ExportError(f"unknown precision {precision!r}; use {' or '.join(PRECISIONS)}")
    return f"model{rt.suffix}" if precision == "fp32" else f"model.int8{rt.suffix}"


def bundle_runtime(fmt: str) -> Runtime | None:
    """The record of a runtime file format a bundle can hold (``None`` for any other format)."""
    rt = find_format(fmt)
    return rt if rt is not None and rt.bundle else None


def runtime_title(key: object) -> str:
    """The card's name of a runtime, given its name or its format (the key itself when no record has it)."""
    rt = find_format(str(key)) or RUNTIMES.get(str(key))
    return rt.card_title or rt.title if rt is not None else str(key)


