"""A bundle's ``config.json`` as a typed section (:class:`BundleConfig`): what a model folder (or the weights
folder of ``export --format safetensors``) says about its model, read as hostile input. Every field is
checked for its type and range, the cross-field rules after; one line names the file and the field
(``files['model.pt2'].batch``, ``accuracy[0].top1``). What needs the runtimes (a file's name for its
format, the formats with INT8 files, batch bounds) and the weights is checked by
:mod:`attentivenas.export.bundle_check`."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, StrictInt, StringConstraints, ValidationError, field_validator, model_validator

from .base import Section
from .int8 import Precision

MODEL_TYPE = "attentivenas-subnet"
#: 2: ``preprocessing`` and the sha256 of every file (``weights_sha256``, ``files[name].sha256``) recorded
FORMAT_VERSION = 2
WEIGHTS_NAME = "model.safetensors"
MAX_CLASSES = 1_000_000
#: interpolations a bundle's preprocessing may name (those the data configs take)
INTERPOLATIONS = ("bilinear", "bicubic")
Interpolation = Literal["bilinear", "bicubic"]
#: how the source image is resized: ``whole_image`` (both sides to the size: the digits, Fashion-MNIST)
#: or ``shorter_side`` (the shorter side to the size, then a centre crop: image folders, CIFAR)
RESIZE_MODES = ("whole_image", "shorter_side")
#: source colours: the image is converted to this mode first (``grayscale``: repeated on 3 channels after)
COLORS = {"grayscale": 1, "rgb": 3}
#: the largest image side a bundle's preprocessing may name
MAX_SIDE = 16384
#: the network resizes its input to its resolution with this interpolation (in the model, and for runtime files)
MODEL_RESIZE = "bicubic"

Finite = Annotated[float, Field(allow_inf_nan=False)]
NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Percent = Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)]
Side = Annotated[StrictInt, Field(ge=1, le=MAX_SIDE)]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
Triple = Annotated[list[Finite], Field(min_length=3, max_length=3)]


class Normalization(Section):
    """Per-channel mean and std (positive) of the model's input."""

    mean: Triple
    std: Annotated[list[Annotated[float, Field(gt=0, allow_inf_nan=False)]], Field(min_length=3, max_length=3)]


class ImageSource(Section):
    color: Literal["grayscale", "rgb"]
    channels: StrictInt
    size: Annotated[list[Side], Field(min_length=2, max_length=2)] | None = None

    @model_validator(mode="after")
    def _channels(self) -> ImageSource:
        if self.channels != COLORS[self.color]:
            raise ValueError(f"preprocessing.source must name a color of {list(COLORS)} and its channels")
        return self


class Resize(Section):
    size: Side
    mode: Literal["whole_image", "shorter_side"]
    interpolation: Interpolation


class ModelInput(Section):
    channels: Literal[3]
    size: StrictInt
    resize: Literal["bicubic"]
    layout: Literal["NCHW"]
    dtype: Literal["float32"]


class Preprocessing(Section):
    """How an image file becomes the model's input (``export.bundle.preprocessing_of``)."""

    source: ImageSource
    resize: Resize
    crop: StrictInt | None
    value_range: list[float]
    mean: Triple
    std: Annotated[list[Annotated[float, Field(gt=0, allow_inf_nan=False)]], Field(min_length=3, max_length=3)]
    model_input: ModelInput

    @model_validator(mode="after")
    def _crop(self) -> Preprocessing:
        if self.resize.mode == "shorter_side" and not (self.crop is not None and 1 <= self.crop <= self.resize.size):
            raise ValueError(f"preprocessing.crop must be an integer from 1 to the resize ({self.resize.size}), "
                             f"got {self.crop!r}")
        if self.resize.mode == "whole_image" and self.crop is not None:
            raise ValueError("preprocessing.crop must be null when the whole image is resized")
        if self.value_range != [0.0, 1.0]:
            raise ValueError("preprocessing.value_range must be [0.0, 1.0]")
        return self


class FileEntry(Section):
    """A runtime file: its format, precision, batch (N or ``dynamic``), check error and sha256."""

    format: str
    precision: Precision
    batch: StrictInt | Literal["dynamic"]
    rel_error: NonNegative | None = None
    sha256: Sha256 | None = None


class AccuracyEntry(Section):
    """A measured top-1 (and top-5) of the model or of one of its files on a split; other descriptive keys
    (dataset, note, the INT8 check's numbers) are kept as written."""

    model_config = ConfigDict(extra="allow")

    split: str
    precision: Precision = "fp32"
    top1: Percent
    top5: Percent | None = None
    samples: Annotated[StrictInt, Field(ge=1, le=10**9)]
    file: str | None = None

    @model_validator(mode="after")
    def _top5(self) -> AccuracyEntry:
        if self.top5 is not None and self.top5 < self.top1:
            raise ValueError(f"top5 must be a percentage from top1 ({self.top1}) to 100, got {self.top5!r}")
        return self


class LatencyEntry(Section):
    """A runtime file's latency (other keys: runtime, precision, batch, threads, repeats, as written)."""

    model_config = ConfigDict(extra="allow")

    file: str
    median_ms: NonNegative
    p90_ms: NonNegative


class Latency(Section):
    machine: str | None = None
    entries: list[LatencyEntry]


class BundleConfig(Section):
    """A bundle's ``config.json`` (format versions 1 and 2; unknown keys are refused, as in every section)."""

    model_type: str
    format_version: StrictInt
    library_name: str | None = None
    space: dict[str, Any]
    arch: dict[str, Any]
    num_classes: Annotated[StrictInt, Field(ge=1, le=MAX_CLASSES)]
    resolution: StrictInt | None = None
    mflops: NonNegative
    mflops_unit: str | None = None
    params_m: NonNegative
    weights: Literal["model.safetensors"] = WEIGHTS_NAME
    weights_sha256: Sha256 | None = None
    files: dict[str, FileEntry] = {}
    class_names: list[Annotated[str, StringConstraints(max_length=1000)]] | None = None
    normalization: Normalization | None = None
    interpolation: Interpolation | None = None
    preprocessing: Preprocessing | None = None
    source: dict[str, Any] | None = None
    command: str | None = None
    accuracy: list[AccuracyEntry] = []
    latency: Latency | None = None

    @field_validator("model_type")
    @classmethod
    def _model_type(cls, v: str) -> str:
        if v != MODEL_TYPE:
            raise ValueError(f"model_type is {v!r}, not {MODEL_TYPE!r}: not an attentivenas bundle")
        return v

    @field_validator("format_version")
    @classmethod
    def _version(cls, v: int) -> int:
        if not 1 <= v <= FORMAT_VERSION:
            raise ValueError(f"format_version {v!r} is not supported (this version reads 1 to {FORMAT_VERSION})")
        return v

    @model_validator(mode="after")
    def _rules(self) -> BundleConfig:
        if self.class_names is not None and len(self.class_names) != self.num_classes:
            raise ValueError(f"class_names must be a list of {self.num_classes} strings")
        if self.format_version >= 2 and self.weights_sha256 is None:
            raise ValueError("weights_sha256 must be the sha256 (64 hex digits) of model.safetensors")
        for name, f in self.files.items():
            if self.format_version >= 2 and f.sha256 is None:
                raise ValueError(f"files[{name!r}].sha256 must be the file's sha256 (64 hex digits)")
        for i, a in enumerate(self.accuracy):
            if a.file is not None and a.file not in self.files:
                raise ValueError(f"accuracy[{i}].file {a.file!r} is not one of the files listed")
        for i, e in enumerate(self.latency.entries if self.latency is not None else []):
            if e.file not in self.files:
                raise ValueError(f"latency.entries[{i}] must name a listed file with finite median_ms and "
                                 "p90_ms >= 0")
        if self.preprocessing is not None:
            self._check_preprocessing(self.preprocessing)
        return self

    def _check_preprocessing(self, pre: Preprocessing) -> None:
        if pre.model_input.size != self.resolution:
            raise ValueError(f"preprocessing.model_input must be 3 channels at the resolution "
                             f"({self.resolution!r}), resize {MODEL_RESIZE}, NCHW float32")
        if self.normalization is not None and (self.normalization.mean, self.normalization.std) != (pre.mean,
                                                                                                    pre.std):
            raise ValueError("normalization differs from preprocessing.mean / preprocessing.std")
        if self.interpolation is not None and self.interpolation != pre.resize.interpolation:
            raise ValueError("interpolation differs from preprocessing.resize.interpolation")


#: the parts of a pydantic error's place that name a type tried, not a field
_TYPE_TAG = re.compile(r"^(int|str|float|bool|none|(list|dict|tuple|literal|function|constrained)\W.*)$")


def _where(loc: Sequence[Any]) -> str:
    """A field's place as ``config.json`` names it: ``files['model.pt2'].batch``, ``accuracy[0].top1``."""
    out = ""
    for i, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
        elif i > 0 and loc[i - 1] == "files":
            out += f"[{part!r}]"
        elif not _TYPE_TAG.match(str(part)):
            out += f".{part}" if out else str(part)
    return out


def bundle_config_error(exc: ValidationError) -> str:
    """One line for the first problem of a ``config.json`` (the field, what is wrong, what it holds)."""
    first = exc.errors()[0]
    if first.get("type") == "value_error":
        where = _where(first.get("loc", ()))
        msg = str(first.get("msg", "")).removeprefix("Value error, ")
        return msg if not where or msg.startswith(where.split(".")[0]) else f"{where}.{msg}"
    where = _where(first.get("loc", ())) or "config"
    if first.get("type") == "extra_forbidden":
        return f"unknown key {where!r}"
    got = first.get("input")
    if isinstance(got, float) and not math.isfinite(got):
        return f"{where} must be a finite number, got {got!r}"
    return f"{where}: {first.get('msg', 'invalid value')} (got {got!r})"


def parse_bundle_config(data: Mapping[str, Any], source: str, error: type[Exception]) -> BundleConfig:
    """``data`` (a parsed ``config.json``) as a :class:`BundleConfig`; the first problem is one ``error``
    line ``"{source}: {field and what is wrong}"``."""
    try:
        return BundleConfig.model_validate(dict(data))
    except ValidationError as exc:
        raise error(f"{source}: {bundle_config_error(exc)}") from None


__all__ = ["COLORS", "FORMAT_VERSION", "INTERPOLATIONS", "MAX_CLASSES", "MAX_SIDE", "MODEL_RESIZE", "MODEL_TYPE",
           "RESIZE_MODES", "WEIGHTS_NAME", "AccuracyEntry", "BundleConfig", "FileEntry", "LatencyEntry",
           "Preprocessing", "bundle_config_error", "parse_bundle_config"]
