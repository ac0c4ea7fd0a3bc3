"""Model folders a user can hand on (``export --format bundle``), in the Hugging Face Hub's layout.

A bundle is one folder per subnet::

    model.safetensors   the weights (safetensors: no pickle), metadata {"format": "pt"}
    config.json         model_type, format_version, space, arch, classes, resolution, normalisation,
                        interpolation, MFLOPs (multiply-accumulates), params, runtime files, provenance
    model.pt2 ...       the runtime files asked for (``.pt2``, ``.onnx``, ``.pte``; ``model.int8.*`` for INT8)
    README.md           a model card: YAML front matter (Hub style), the arch table, MACs and params,
                        top-1 per split and precision, latency per runtime and precision, provenance

:func:`write_bundle` writes it (each file atomically, ``config.json`` last: a folder without it is
not a bundle); :func:`load_pretrained` rebuilds the :class:`~attentivenas.nn.StaticSubnet` from
``config.json`` + ``model.safetensors`` alone (no supernet, no pickle), validating the config first:
bounded sizes, the arch checked against the space the config stores. Every problem is one
:class:`ExportError` line naming the file. ``huggingface_hub``'s ``PyTorchModelHubMixin`` loads the
same two files from a local folder (see docs/search.md).

This module measures nothing: accuracy and latency entries of the card come from the caller
(``latency_fn`` is called on each runtime file once it is written), so ``nn`` stays below ``latency``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch import nn
from torch.nn import functional as F

from ..costs import count_flops, count_params
from ..errors import UserError
from ..io import atomic_write_bytes, atomic_write_json, atomic_write_text
from ..nn.layers import resize_input
from ..nn.static import StaticSubnet
from ..runtimes.quantize import INT8_FORMATS, PRECISIONS
from .bundle_check import (
    bundle_space_arch,
    check_costs,
    check_state,
    compare_with_weights,
    error_line,
    integer_in,
    read_bundle_config,
    verify_bundle_files,
)
from .bundle_format import (
    BUNDLE_FORMATS,
    CARD_NAME,
    COLORS,
    CONFIG_NAME,
    FORMAT_VERSION,
    INDEX_NAME,
    MFLOPS_UNIT,
    MODEL_RESIZE,
    MODEL_TYPE,
    RUNTIME_FILES,
    WEIGHTS_NAME,
    AccuracyFn,
    CardInfo,
    LatencyFn,
    runtime_file_name,
)
from .card import model_card
from .folders import clean_export_folder, export_lock, file_sha256
from .formats import ExportError, export_subnet, parse_batch, subnet_spec


def parse_formats(text: str | Sequence[str]) -> tuple[str, ...]:
    """``--with torch-export,onnx``: the runtime formats of a bundle (duplicates dropped, order kept)."""
    items = [s.strip() for s in (text.split(",") if isinstance(text, str) else text)]
    items = [s for s in items if s]
    bad = [s for s in items if s not in RUNTIME_FILES]
    if bad:
        raise ExportError(f"--with {bad[0]!r} is not a runtime format of a bundle; use a comma list of "
                          f"{', '.join(BUNDLE_FORMATS)}")
    return tuple(dict.fromkeys(items))


def check_bundle_options(formats: Sequence[str], precisions: Sequence[str], batch: int | str | None) -> None:
    """Refuse, before any work, precisions, batches and formats a bundle cannot be written with (one line)."""
    bad = [p for p in precisions if p not in PRECISIONS]
    if bad:
        raise ExportError(f"unknown precision {bad[0]!r}; use {' or '.join(PRECISIONS)}")
    for fmt in parse_formats(formats):
        if batch is not None:
            parse_batch(batch, fmt)
    if "int8" in precisions and not any(f in INT8_FORMATS for f in formats):
        raise ExportError(f"--precision int8 in a bundle needs an INT8 runtime file: add "
                          f"{' or '.join(f for f in BUNDLE_FORMATS if f in INT8_FORMATS)} to --with "
                          f"(e.g. --with torch-export,onnx)")


# --------------------------------------------------------------------------- writing
def bundle_config(subnet: nn.Module, info: CardInfo | None = None,
                  files: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """The ``config.json`` of ``subnet`` (see the module docstring)."""
    info = info or CardInfo()
    spec = subnet_spec(subnet)
    space, arch, num_classes = subnet.space, subnet.arch, int(subnet.num_classes)
    cfg: dict[str, Any] = {
        "model_type": MODEL_TYPE,
        "format_version": FORMAT_VERSION,
        "library_name": "attentivenas",
        "space": spec["space"],
        "arch": spec["arch"],
        "num_classes": num_classes,
        "resolution": int(arch.resolution),
        "mflops": count_flops(space, arch, num_classes),
        "mflops_unit": MFLOPS_UNIT,
        "params_m": count_params(space, arch, num_classes) / 1e6,
        "weights": WEIGHTS_NAME,
        "files": {k: dict(v) for k, v in (files or {}).items()},
    }
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
    model = subnet  # the writers export CPU eval copies; the caller's module is left as it is
    spec = subnet_spec(model)  # refuses a model that is not a subnet
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    with export_lock(out, folder=False):
        out.mkdir(parents=True, exist_ok=True)
        clean_export_folder(out)
        (out / CONFIG_NAME).unlink(missing_ok=True)  # until this bundle is complete, the folder is none
        weights = atomic_write_bytes(out / WEIGHTS_NAME,
                                     save(state, metadata={"format": "pt", "attentivenas": json.dumps(spec)}))
        files: dict[str, dict[str, Any]] = {}
        for precision in dict.fromkeys(precisions):
            for fmt in formats:
                if precision == "int8" and fmt not in INT8_FORMATS:
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
        if accuracy_fn is not None:
            info.accuracy += [dict(e) for e in accuracy_fn(out, files)]
        for stale in _known_runtime_files(out):
            if stale.name not in files:
                stale.unlink()
        cfg = bundle_config(model, info, files)
        cfg["weights_sha256"] = file_sha256(weights)
        if info.accuracy:
            cfg["accuracy"] = [dict(a) for a in info.accuracy]
        if info.latency:
            cfg["latency"] = {"machine": info.machine, "entries": [dict(e) for e in info.latency]}
        atomic_write_text(out / CARD_NAME, model_card(cfg, info))
        atomic_write_json(out / CONFIG_NAME, cfg)
    return cfg


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



class BundledSubnet(StaticSubnet):
    """A bundle's model (:func:`load_pretrained`): a :class:`StaticSubnet` with its ``config`` and
    ``class_names``, and :meth:`preprocess` / :meth:`classify` for images as its data was prepared."""

    config: dict[str, Any]
    class_names: list[str] | None

    def preprocess(self, image: Any) -> torch.Tensor:
        """An image file (path) or PIL image as this model's input, ``3 x r x r`` float32 (see
        :func:`preprocess_image`)."""
        pre = self.config.get("preprocessing")
        if not isinstance(pre, Mapping):
            raise ExportError("this bundle records no preprocessing (written before attentivenas recorded it); "
                              "export it again to classify images directly")
        return preprocess_image(image, pre)

    @torch.inference_mode()
    def classify(self, images: Any, top_k: int = 1, batch_size: int = 64) -> list[dict[str, Any]]:
        """Labels and probabilities of image files or PIL images (one, or a list): per image
        ``{"label", "index", "probability"}`` of the most likely class, and with ``top_k`` > 1 ``"top"``: the
        ``top_k`` most likely as ``(label, probability)`` pairs."""
        if not integer_in(top_k, 1, self.num_classes) or not integer_in(batch_size, 1, 4096):
            raise UserError(f"top_k must be from 1 to {self.num_classes} and batch_size from 1 to 4096")
        items = [images] if isinstance(images, (str, Path)) or not isinstance(images, Iterable) else list(images)
        self.eval()
        device = next(self.parameters()).device
        out: list[dict[str, Any]] = []
        for i in range(0, len(items), batch_size):
            x = torch.stack([self.preprocess(im) for im in items[i:i + batch_size]]).to(device)
            probs = torch.softmax(self(x).float(), dim=1).cpu()
            values, indices = probs.topk(top_k, dim=1)
            for vals, idx in zip(values.tolist(), indices.tolist(), strict=True):
                entry: dict[str, Any] = {"label": self._label(idx[0]), "index": idx[0], "probability": vals[0]}
                if top_k > 1:
                    entry["top"] = [(self._label(j), p) for j, p in zip(idx, vals, strict=True)]
                out.append(entry)
        return out

    def _label(self, index: int) -> str:
        return self.class_names[index] if self.class_names else str(index)


def preprocess_image(image: Any, pre: Mapping[str, Any]) -> torch.Tensor:
    """An image file (path) or PIL image as a bundle's ``preprocessing`` (:func:`preprocessing_of`) says:
    converted to its colour (grey images become RGB and colour ones grey as the model was trained),
    resized (and centre-cropped) as the training data's evaluation was, scaled to [0, 1], normalised and
    resized to the model's resolution; ``3 x r x r`` float32."""
    from PIL import Image, UnidentifiedImageError  # heavy: Pillow only when images are classified

    if isinstance(image, (str, Path)):
        try:
            with Image.open(image) as im:
                img = im.convert("L" if pre["source"]["color"] == "grayscale" else "RGB")
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            raise UserError(f"cannot read image {image}: {error_line(exc)}") from None
    elif isinstance(image, Image.Image):
        img = image.convert("L" if pre["source"]["color"] == "grayscale" else "RGB")
    else:
        raise UserError(f"preprocess takes an image file path or a PIL image, not {type(image).__name__}")
    rs = pre["resize"]
    if rs["mode"] == "shorter_side":
        from torchvision.transforms import InterpolationMode  # heavy
        from torchvision.transforms import functional as TF  # heavy: as the training data's transform

        mode = InterpolationMode.BICUBIC if rs["interpolation"] == "bicubic" else InterpolationMode.BILINEAR
        img = TF.center_crop(TF.resize(img, int(rs["size"]), interpolation=mode), int(pre["crop"]))
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0)
    x = x[None] if x.ndim == 2 else x.permute(2, 0, 1)
    if rs["mode"] == "whole_image" and tuple(x.shape[1:]) != (rs["size"], rs["size"]):
        x = F.interpolate(x[None], size=(int(rs["size"]),) * 2, mode=rs["interpolation"], align_corners=False)[0]
    x = x.expand(3, -1, -1)
    mean = torch.tensor(pre["mean"], dtype=torch.float32)[:, None, None]
    std = torch.tensor(pre["std"], dtype=torch.float32)[:, None, None]
    x = (x - mean) / std
    return resize_input(x[None], int(pre["model_input"]["size"]))[0].contiguous()


def load_pretrained(folder: str | Path, device: str | torch.device = "cpu") -> BundledSubnet:
    """The model of a bundle folder (a :class:`BundledSubnet`, eval mode, on ``device``), built from its
    ``config.json`` and ``model.safetensors`` alone (no supernet, no pickle), after checking that

    * every descriptive field of ``config.json`` is well formed (:func:`read_bundle_config`: normalisation
      finite with positive std, interpolation, preprocessing, files, accuracy and latency entries) and its
      MFLOPs, params and resolution are the arch's (validated against the space it stores);
    * every file it lists exists with the sha256 it records (a swapped runtime file is refused);
    * ``model.safetensors`` records the same space, arch, resolution and class count, and its tensors are
      float32 (BN counters integer), finite, with BN variances >= 0, every one present with its shape.

    Any mismatch is one :class:`ExportError` line naming the file and the field. Edits that do not
    change the model (e.g. class names) load."""
    root = Path(folder)
    cfg = read_bundle_config(root)
    space, arch = bundle_space_arch(cfg, root / CONFIG_NAME)
    weights = root / WEIGHTS_NAME
    if not weights.is_file():
        raise ExportError(f"{weights} not found: the bundle has no weights")
    compare_with_weights(cfg, space, arch, weights)
    check_costs(cfg, space, arch, root / CONFIG_NAME)
    verify_bundle_files(root, cfg)
    try:
        state = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ExportError(f"{weights} is not a valid safetensors file ({error_line(exc)})") from None
    check_state(state, weights)
    model = BundledSubnet(space, arch, int(cfg["num_classes"]))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ExportError(f"{weights}: weights do not match the arch of {CONFIG_NAME}: {error_line(exc)}") from None
    model.class_names = cfg.get("class_names")
    model.config = cfg
    return model.to(device).eval()


__all__ = ["BundledSubnet", "bundle_config", "bundle_folder_name", "check_bundle_options", "load_pretrained",
           "parse_formats", "preprocess_image", "preprocessing_of", "start_bundle_set", "write_bundle",
           "write_bundle_index"]
