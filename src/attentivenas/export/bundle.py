"""Model folders a user can hand on (``export --format bundle``), in the Hugging Face Hub's layout.

A bundle is one folder per subnet::

    model.safetensors   the weights (safetensors: no pickle), metadata {"format": "pt"}
    config.json         model_type, format_version, space, arch, classes, resolution, normalisation,
                        interpolation, MFLOPs (multiply-accumulates), params, runtime files, provenance
    model.pt2 ...       the runtime files asked for (``.pt2``, ``.onnx``, ``.pte``; ``model.int8.*`` for INT8)
    README.md           a model card: YAML front matter (Hub style), the arch table, MACs and params,
                        top-1 per split and precision, latency per runtime and precision, provenance

:func:`write_bundle` writes it (each file atomically, ``config.json`` last: a folder without it is
not a bundle); :func:`~attentivenas.export.pretrained.load_pretrained` rebuilds the model from
``config.json`` + ``model.safetensors`` alone (no supernet, no pickle). ``huggingface_hub``'s
``PyTorchModelHubMixin`` loads the same two files from a local folder (see docs/search.md).

This module measures nothing: accuracy and latency entries of the card come from the caller
(``latency_fn`` is called on each runtime file once it is written; :mod:`attentivenas.export.bundle_set`
measures them).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from ..config.bundle import COLORS, MODEL_RESIZE, MODEL_TYPE
from ..costs import count_flops, count_params
from ..io import atomic_write_json, atomic_write_text
from ..runtimes.quantize import PRECISIONS
from .bundle_format import (
    BUNDLE_FORMATS,
    CARD_NAME,
    INDEX_NAME,
    AccuracyFn,
    CardInfo,
    LatencyFn,
    bundle_runtime,
    runtime_file_name,
)
from .card import model_card
from .folders import clean_export_folder, export_lock, file_sha256
from .formats import ExportError, export_subnet, parse_batch, subnet_spec
from .weights import CONFIG_NAME, cpu_state, weights_config, write_weights


def parse_formats(text: str | Sequence[str]) -> tuple[str, ...]:
    """``--with torch-export,onnx``: the runtime formats of a bundle (duplicates dropped, order kept)."""
    items = [s.strip() for s in (text.split(",") if isinstance(text, str) else text)]
    items = [s for s in items if s]
    bad = [s for s in items if bundle_runtime(s) is None]
    if bad:
        raise ExportError(f"--with {bad[0]!r} is not a runtime format of a bundle; use a comma list of "
                          f"{', '.join(BUNDLE_FORMATS)}")
    return tuple(dict.fromkeys(items))


def _has_int8(fmt: str) -> bool:
    """Whether a bundle's runtime file of format ``fmt`` can be INT8 (its record has a quantizer)."""
    rt = bundle_runtime(fmt)
    return rt is not None and rt.int8 is not None


def check_bundle_options(formats: Sequence[str], precisions: Sequence[str], batch: int | str | None) -> None:
    """Refuse, before any work, batches and formats a bundle cannot be written with (one line); the precisions
    were checked where the command's input was read (``export.commands.int8_recipe``)."""
    assert all(p in PRECISIONS for p in precisions), precisions
    for fmt in parse_formats(formats):
        if batch is not None:
            parse_batch(batch, fmt)
    if "int8" in precisions and not any(_has_int8(f) for f in formats):
        raise ExportError(f"--precision int8 in a bundle needs an INT8 runtime file: add "
                          f"{' or '.join(f for f in BUNDLE_FORMATS if _has_int8(f))} to --with "
                          f"(e.g. --with torch-export,onnx)")


# --------------------------------------------------------------------------- writing
def bundle_config(subnet: nn.Module, info: CardInfo | None = None,
                  files: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """The ``config.json`` of ``subnet`` (see the module docstring): its weights' config
    (:func:`~attentivenas.export.weights.weights_config`), its runtime files and what ``info`` says."""
    info = info or CardInfo()
    space, arch, num_classes = subnet.space, subnet.arch, int(subnet.num_classes)
    cfg = weights_config(subnet_spec(subnet), count_flops(space, arch, num_classes),
                         count_params(space, arch, num_classes) / 1e6)
    cfg["files"] = {k: dict(v) for k, v in (files or {}).items()}
    if info.class_names is not None:
        cfg["class_names"] = [str(c) for c in info.class_names]
    if info.normalization is not None:
        cfg["normalization"] = {k: [float(x) for x in info.normalization[k]] for k in ("mean", "std")}
    if info.interpolation is not None:
        cfg["interpolation"] = info.interpolation
    if info.preprocessing is not None:
        cfg["preprocessing"] = json.loads(json.dumps(info.preprocessing))
    if info.source:
        cfg["source"] = dict(info.source)
    if info.command is not None:
        cfg["command"] = info.command
    return cfg


def preprocessing_of(*, color: str, resize: int, resize_mode: str, crop: int | None, interpolation: str,
                     mean: Sequence[float], std: Sequence[float], resolution: int,
                     source_size: Sequence[int] | None = None) -> dict[str, Any]:
    """The ``preprocessing`` of ``config.json``: how an image file becomes the model's input.

    The image is converted to ``color`` (``grayscale`` or ``rgb``), resized (``resize_mode``
    ``whole_image``: to ``resize`` x ``resize``; ``shorter_side``: its shorter side to ``resize``, then
    centre-cropped to ``crop``) with ``interpolation``, scaled to [0, 1], repeated to 3 channels when
    grey, normalised per channel (``mean``, ``std``) and resized to ``resolution`` (bicubic, as the
    network does) as an ``N x 3 x resolution x resolution`` float32 tensor. ``source_size``: the
    training images' size (height, width) when known."""
    return {"source": {"color": color, "channels": COLORS.get(color, 0),
                       "size": [int(v) for v in source_size] if source_size else None},
            "resize": {"size": int(resize), "mode": resize_mode, "interpolation": interpolation},
            "crop": None if crop is None else int(crop),
            "value_range": [0.0, 1.0],
            "mean": [float(v) for v in mean], "std": [float(v) for v in std],
            "model_input": {"channels": 3, "size": int(resolution), "resize": MODEL_RESIZE, "layout": "NCHW",
                            "dtype": "float32"}}


def write_bundle(subnet: nn.Module, folder: str | Path, *, formats: Sequence[str] = ("torch-export",),
                 precisions: Sequence[str] = ("fp32",), batch: int | str | None = None,
                 info: CardInfo | None = None, latency_fn: LatencyFn | None = None,
                 accuracy_fn: AccuracyFn | None = None, int8_options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Write ``subnet`` (a :class:`StaticSubnet`, on any device) as a bundle in ``folder``; returns its config.

    ``formats``: runtime files (:data:`BUNDLE_FORMATS`); ``precisions``: ``fp32`` and / or ``int8`` (INT8
    runtime files go through :func:`~attentivenas.export.formats.export_subnet` with ``precision="int8"`` and
    ``int8_options``, e.g. ``calib_images``); ``batch``: the runtime files' batch (default: dynamic for
    ``.pt2`` / ONNX, 1 for ``.pte``). Each runtime file is checked against PyTorch as ``export`` checks
    it; ``latency_fn`` is then called on it and its result joins ``info.latency``; ``accuracy_fn`` is
    called once on all of them and its entries join ``info.accuracy``.

    The folder is locked while it is written (:func:`~attentivenas.export.formats.export_lock`: a second export
    into it is refused in one line); what a killed export left is removed first; an earlier bundle's
    ``config.json`` is removed before any file is rewritten, every file is written atomically with its
    sha256 recorded, and ``config.json`` is written last: a folder with a ``config.json`` holds the files it
    describes. Runtime files of an earlier bundle in the folder that this one does not list are removed.
    """
    info = info or CardInfo()
    formats = parse_formats(formats)
    check_bundle_options(formats, precisions, batch)
    out = Path(folder)
    if out.exists() and not out.is_dir():
        raise ExportError(f"bundle folder {out} exists and is not a folder")
    spec = subnet_spec(subnet)  # refuses a model that is not a subnet
    with export_lock(out, folder=False):
        out.mkdir(parents=True, exist_ok=True)
        clean_export_folder(out)
        (out / CONFIG_NAME).unlink(missing_ok=True)  # until this bundle is complete, the folder is none
        weights = write_weights(out, cpu_state(subnet), spec)
        files = _write_runtime_files(subnet, out, formats, precisions, batch, info, latency_fn, int8_options)
        if accuracy_fn is not None:
            info.accuracy += [dict(e) for e in accuracy_fn(out, files)]
        for stale in _known_runtime_files(out):
            if stale.name not in files:
                stale.unlink()
        cfg = bundle_config(subnet, info, files)
        cfg["weights_sha256"] = file_sha256(weights)
        if info.accuracy:
            cfg["accuracy"] = [dict(a) for a in info.accuracy]
        if info.latency:
            cfg["latency"] = {"machine": info.machine, "entries": [dict(e) for e in info.latency]}
        atomic_write_text(out / CARD_NAME, model_card(cfg, info))
        atomic_write_json(out / CONFIG_NAME, cfg)
    return cfg


def _write_runtime_files(model: nn.Module, out: Path, formats: Sequence[str], precisions: Sequence[str],
                         batch: int | str | None, info: CardInfo, latency_fn: LatencyFn | None,
                         int8_options: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Each runtime file of a bundle written and checked (the writers export CPU eval copies; ``model`` is
    left as it is), timed by ``latency_fn`` into ``info.latency``; returns ``config.json``'s ``files``."""
    files: dict[str, dict[str, Any]] = {}
    for precision in dict.fromkeys(precisions):
        for fmt in formats:
            if precision == "int8" and not _has_int8(fmt):
                continue  # no INT8 file of this format (checked above: another format of the bundle has one)
            name = runtime_file_name(fmt, precision)
            kwargs: dict[str, Any] = {"batch": parse_batch(batch, fmt)}
            if precision != "fp32":
                kwargs.update({"precision": precision, **dict(int8_options or {})})
            res = export_subnet(model, out / name, fmt, **kwargs)
            entry = {"format": fmt, "precision": precision, "batch": res.get("batch", kwargs["batch"])}
            if "rel_error" in res:
                entry["rel_error"] = res["rel_error"]
            entry["sha256"] = file_sha256(out / name)
            files[name] = entry
            if latency_fn is not None:
                lat = dict(latency_fn(out / name, fmt, precision, entry["batch"]))
                info.latency.append({"file": name, "runtime": fmt, "precision": precision, **lat})
    return files


def _known_runtime_files(folder: Path) -> list[Path]:
    names = {runtime_file_name(f, p) for f in BUNDLE_FORMATS for p in PRECISIONS}
    return [folder / n for n in sorted(names) if (folder / n).is_file()]


def bundle_folder_name(index: int, mflops: float) -> str:
    """``subnet-00-123.4mflops``: the folder of a Pareto set's ``index``-th subnet."""
    return f"subnet-{index:02d}-{mflops:.4g}mflops"


def write_bundle_index(folder: str | Path, configs: Sequence[Mapping[str, Any]],
                       names: Sequence[str]) -> Path:
    """``DIR/index.json`` of a Pareto set's bundles: folder, arch, MFLOPs, params, files, top-1 (atomic;
    the caller removes an earlier one before it rewrites any bundle: :func:`start_bundle_set`)."""
    records = []
    for name, cfg in zip(names, configs, strict=True):
        rec = {"folder": name, "arch": cfg["arch"], "mflops": cfg["mflops"], "params_m": cfg["params_m"],
               "files": sorted(cfg.get("files", {}))}
        if cfg.get("accuracy"):
            rec["accuracy"] = cfg["accuracy"]
        records.append(rec)
    return atomic_write_json(Path(folder) / INDEX_NAME, {"model_type": MODEL_TYPE, "bundles": records})


def start_bundle_set(folder: str | Path) -> None:
    """Before a Pareto set's bundles are (re)written in ``folder`` (holding its lock): remove what a killed
    export left and the earlier ``index.json``, which is written again last."""
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    clean_export_folder(root)
    (root / INDEX_NAME).unlink(missing_ok=True)



__all__ = ["bundle_config", "bundle_folder_name", "check_bundle_options", "parse_formats", "preprocessing_of",
           "start_bundle_set", "write_bundle", "write_bundle_index"]
