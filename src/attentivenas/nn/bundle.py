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

import html
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save
from torch import nn
from torch.nn import functional as F

from ..costs import count_flops, count_params
from ..errors import UserError
from ..io import atomic_write_bytes, atomic_write_json, atomic_write_text, dumps_json, read_json_file
from ..space import Arch, SearchSpace, net_plan
from .export import (
    MAX_BATCH,
    SUBNET_FORMAT,
    ExportError,
    clean_export_folder,
    export_lock,
    export_subnet,
    file_sha256,
    parse_batch,
    subnet_spec,
)
from .layers import resize_input
from .quantize import INT8_FORMATS, PRECISIONS
from .static import StaticSubnet

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
    runtime files go through :func:`~attentivenas.nn.export_subnet` with ``precision="int8"`` and
    ``int8_options``, e.g. ``calib_images``); ``batch``: the runtime files' batch (default: dynamic for
    ``.pt2`` / ONNX, 1 for ``.pte``). Each runtime file is checked against PyTorch as ``export`` checks
    it; ``latency_fn`` is then called on it and its result joins ``info.latency``; ``accuracy_fn`` is
    called once on all of them and its entries join ``info.accuracy``.

    The folder is locked while it is written (:func:`~attentivenas.nn.export.export_lock`: a second export
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


# --------------------------------------------------------------------------- the model card
def _fmt(x: Any, digits: int = 2) -> str:
    if isinstance(x, float):
        return "-" if not math.isfinite(x) else f"{x:.{digits}f}"
    return "-" if x is None else md_text(x)


def _yaml_str(text: str) -> str:
    return json.dumps(text)  # a JSON string is a valid YAML scalar


def _printable(text: str) -> str:
    """``text`` on one line: control and other non-printable characters as their escapes (``\n``)."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in str(text))


def md_text(text: Any) -> str:
    """Text the card did not write itself (file names, paths, class names) as inert Markdown: one line,
    HTML escaped, and the characters that start Markdown syntax backslash-escaped."""
    escaped = html.escape(_printable(str(text)), quote=True)
    return re.sub(r"([\\`*_\[\]{}#|~!])", r"\\\1", escaped)


def md_code_block(text: str, lang: str = "") -> list[str]:
    """A fenced code block of ``text`` (one line, as :func:`_printable`) whose fence no run of backticks
    in it can close."""
    line = _printable(text)
    longest = max((len(m) for m in re.findall(r"`+", line)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence + lang, line, fence]


def _hex_or_text(value: Any) -> str:
    text = str(value)
    return f"`{text}`" if re.fullmatch(r"[0-9a-f]{64}", text) else md_text(text)


def _preprocessing_lines(cfg: Mapping[str, Any]) -> list[str]:
    """The card's words for ``cfg["preprocessing"]``."""
    pre = cfg.get("preprocessing")
    if not isinstance(pre, Mapping):
        return ["Images: RGB, resized and centre-cropped to the resolution above"
                + (f" ({md_text(cfg['interpolation'])} interpolation)" if cfg.get("interpolation") else "")
                + (f", normalised with mean {cfg['normalization']['mean']} and std {cfg['normalization']['std']}"
                   if cfg.get("normalization") else "") + ".", ""]
    src, rs, r = pre["source"], pre["resize"], int(pre["model_input"]["size"])
    size = f" ({src['size'][0]} x {src['size'][1]} px when trained)" if src.get("size") else ""
    if rs["mode"] == "whole_image":
        how = f"resized to {rs['size']} x {rs['size']}"
    else:
        how = f"resized so that its shorter side is {rs['size']}, centre-cropped to {pre['crop']} x {pre['crop']}"
    grey = ", repeated on 3 channels" if src["color"] == "grayscale" else ""
    return [f"Input: an `N x 3 x {r} x {r}` float32 tensor. An image file{size} is read as "
            f"{'greyscale' if src['color'] == 'grayscale' else 'RGB'}, {how} ({rs['interpolation']}), scaled to "
            f"[0, 1]{grey}, normalised per channel with mean {pre['mean']} and std {pre['std']}, and resized to "
            f"{r} x {r} ({pre['model_input']['resize']}, as the network does).", ""]


def standalone_preprocess_code(cfg: Mapping[str, Any]) -> list[str]:
    """A ``preprocess(path)`` in numpy and Pillow (no attentivenas, no torch) of ``cfg["preprocessing"]``."""
    pre = cfg["preprocessing"]
    src, rs, r = pre["source"], pre["resize"], int(pre["model_input"]["size"])
    interp = {"bilinear": "BILINEAR", "bicubic": "BICUBIC"}[rs["interpolation"]]
    lines = ["import json", "", "import numpy as np", "from PIL import Image", "",
             f"MEAN = np.array({pre['mean']}, np.float32)", f"STD = np.array({pre['std']}, np.float32)",
             "CLASSES = json.load(open(\"config.json\")).get(\"class_names\")", "", "",
             "def preprocess(path):",
             f"    \"\"\"An image file as the model's input: a 1 x 3 x {r} x {r} float32 array.\"\"\"",
             f"    img = Image.open(path).convert(\"{'L' if src['color'] == 'grayscale' else 'RGB'}\")"]
    if rs["mode"] == "whole_image":
        lines.append(f"    img = img.resize(({rs['size']}, {rs['size']}), Image.Resampling.{interp})")
    else:
        c = int(pre["crop"])
        lines += ["    w, h = img.size  # the shorter side to the size, the longer in proportion (as torchvision)",
                  f"    w, h = (int({rs['size']} * w / h), {rs['size']}) if w > h else "
                  f"({rs['size']}, int({rs['size']} * h / w))",
                  f"    img = img.resize((w, h), Image.Resampling.{interp})",
                  f"    left, top = int(round((w - {c}) / 2)), int(round((h - {c}) / 2))",
                  f"    img = img.crop((left, top, left + {c}, top + {c}))"]
    lines += ["    x = np.asarray(img, np.float32) / 255.0",
              "    x = np.repeat(x[..., None], 3, axis=2) if x.ndim == 2 else x",
              "    x = (x - MEAN) / STD",
              f"    if x.shape[:2] != ({r}, {r}):  # the network's own resize (bicubic)",
              f"        x = np.stack([np.asarray(Image.fromarray(x[..., i]).resize(({r}, {r}), "
              "Image.Resampling.BICUBIC)) for i in range(3)], axis=2)",
              "    return np.ascontiguousarray(x.transpose(2, 0, 1)[None], dtype=np.float32)", "", "",
              "def softmax(logits):",
              "    e = np.exp(logits - logits.max(axis=1, keepdims=True))",
              "    return e / e.sum(axis=1, keepdims=True)"]
    return lines


#: how each runtime file is run without attentivenas, on ``x = preprocess("image.png")``
RUNTIME_SNIPPETS = {
    "torch-export": ["import torch", "", "program = torch.export.load(\"{file}\").module()",
                     "logits = program(torch.from_numpy(x)).detach().numpy()"],
    "onnx": ["import onnxruntime as ort", "",
             "session = ort.InferenceSession(\"{file}\", providers=[\"CPUExecutionProvider\"])",
             "logits = session.run(None, {{session.get_inputs()[0].name: x}})[0]"],
    "executorch": ["import torch", "from executorch.runtime import Runtime", "",
                   "method = Runtime.get().load_program(\"{file}\").load_method(\"forward\")",
                   "logits = method.execute([torch.from_numpy(x)])[0].numpy()  # batch {batch}: pad a smaller one"],
}


def _use_lines(cfg: Mapping[str, Any]) -> list[str]:
    """The card's "Use" section: preprocessing, attentivenas, then each runtime file on its own."""
    lines = ["## Use", "", *_preprocessing_lines(cfg), "With attentivenas:", "", "```python", "import attentivenas", "",
             "model = attentivenas.load_pretrained(\"path/to/this/folder\")  # checked, eval mode",
             "print(model.classify([\"image.png\"]))  # label and probability per image (files or PIL images)",
             "logits = model(model.preprocess(\"image.png\")[None])  # preprocess: as trained", "```", ""]
    if not isinstance(cfg.get("preprocessing"), Mapping):
        return lines
    lines += ["Without attentivenas (numpy and Pillow; resampling may differ from PyTorch's in the last digits):", "",
              "```python", *standalone_preprocess_code(cfg), "", "", "x = preprocess(\"image.png\")", "```", ""]
    for name, f in cfg.get("files", {}).items():
        snippet = RUNTIME_SNIPPETS.get(str(f.get("format")))
        if snippet is None:
            continue
        lines += [f"`{name}` ({RUNTIME_NAMES[str(f['format'])]}, {f['precision']}):", "", "```python",
                  *[ln.format(file=name, batch=f.get("batch")) for ln in snippet],
                  "probabilities = softmax(logits)  # per class; CLASSES[probabilities.argmax(1)[0]]", "```", ""]
    return lines


def model_card(cfg: Mapping[str, Any], info: CardInfo | None = None) -> str:
    """The ``README.md`` of a bundle: Hub-style YAML front matter, then the arch, costs, accuracy,
    latency, files, how to use it (with and without attentivenas), and where it came from. Text it did
    not write itself (file names, paths, class names, the command) is escaped (:func:`md_text`,
    :func:`md_code_block`)."""
    info = info or CardInfo()
    space = SearchSpace.from_dict(cfg["space"])
    arch = Arch.from_dict(cfg["arch"])
    title = f"AttentiveNAS subnet ({_fmt(cfg['mflops'], 1)} MFLOPs, {cfg['resolution']}px)"
    front = ["---", "library_name: attentivenas", "pipeline_tag: image-classification",
             "tags:", "- image-classification", "- neural-architecture-search", "- attentivenas",
             "- safetensors"]
    acc = [a for a in cfg.get("accuracy", []) if a.get("top1") is not None]
    if acc:
        front += ["model-index:", f"- name: {_yaml_str(title)}", "  results:"]
        for a in acc:
            front += ["  - task:", "      type: image-classification",
                      "    dataset:", f"      name: {_yaml_str(str(a.get('dataset') or 'data'))}",
                      f"      type: {_yaml_str(str(a.get('dataset') or 'data'))}",
                      f"      split: {_yaml_str(str(a['split']))}",
                      "    metrics:", "    - type: accuracy", f"      value: {float(a['top1']):.4f}",
                      f"      name: {_yaml_str('top-1 (' + str(a.get('precision', 'fp32')) + ')')}"]
        front += ["metrics:", "- accuracy"]
    front.append("---")
    lines = [*front, "", f"# {title}", "",
             f"A subnet of the {md_text(space.name)} search space, extracted from an AttentiveNAS supernet and "
             "exported with the `attentivenas` toolkit. It runs without the supernet.", ""]
    lines += ["## Architecture", "", f"Input resolution: {cfg['resolution']} x {cfg['resolution']}, "
              f"{cfg['num_classes']} classes.", ""]
    names = cfg.get("class_names")
    if names:
        shown = ", ".join(md_text(c) for c in names[:50])
        lines += [f"Classes: {shown}{', ...' if len(names) > 50 else ''}", ""]
    lines += ["| stage | width | depth | kernel | expand |", "|---|---|---|---|---|"]
    stage_names = [s.name for s in space.stages]
    widths = list(arch.width)
    lines.append(f"| first conv | {widths[0]} | | | |")
    for i, name in enumerate(stage_names):
        expand = arch.expand_ratio[i]
        expand_text = str(int(expand)) if float(expand).is_integer() else str(expand)
        lines.append(f"| {md_text(name)} | {widths[i + 1]} | {arch.depth[i]} | {arch.kernel_size[i]} | "
                     f"{expand_text} |")
    if len(widths) > len(stage_names) + 1:
        lines.append(f"| last conv | {widths[-1]} | | | |")
    plan = net_plan(space, arch)
    lines += ["", f"{len(plan.blocks)} MBConv blocks. Arch (JSON):", "", *md_code_block(dumps_json(cfg["arch"]), "json"),
              ""]
    lines += ["## Cost", "", "| MFLOPs (MACs) | params (M) |", "|---|---|",
              f"| {_fmt(cfg['mflops'])} | {_fmt(cfg['params_m'], 3)} |", "",
              "MFLOPs count multiply-accumulates, as the AttentiveNAS papers do.", ""]
    lines += ["## Accuracy", ""]
    if acc:
        lines += ["Top-1 of this model's weights as bundled (INT8: its runtime file, run by its runtime):", "",
                  "| split | precision | top-1 (%) | top-5 (%) | images |", "|---|---|---|---|---|"]
        for a in acc:
            lines.append(f"| {md_text(a['split'])} | {md_text(a.get('precision', 'fp32'))} | {_fmt(a['top1'])} | "
                         f"{_fmt(a.get('top5'))} | {_fmt(a.get('samples'))} |")
        lines += [f"* {md_text(a['note'])}" for a in acc if a.get("note")]
        lines.append("")
    else:
        lines += ["Not measured (`--no-card-metrics`).", ""]
    lines += ["## Latency", ""]
    if info.latency or cfg.get("latency"):
        entries = info.latency or cfg["latency"]["entries"]
        machine = info.machine or (cfg.get("latency") or {}).get("machine") or "unknown"
        lines += [f"Measured when the bundle was written, on {md_text(machine)}: each file loaded in its runtime and "
                  "run on batch 1 (a fixed-batch file on its batch), median and 90th percentile of a few timed runs "
                  "after a short warm-up. A rough figure: time it on the machine it will run on.", "",
                  "| runtime | file | precision | median (ms) | p90 (ms) | threads |", "|---|---|---|---|---|---|"]
        for e in entries:
            lines.append(f"| {md_text(RUNTIME_NAMES.get(str(e.get('runtime')), e.get('runtime')))} | "
                         f"`{md_text(e.get('file'))}` | {md_text(e.get('precision'))} | {_fmt(e.get('median_ms'), 3)} | "
                         f"{_fmt(e.get('p90_ms'), 3)} | {_fmt(e.get('threads'))} |")
        lines.append("")
    else:
        lines += ["Not measured (`--no-latency`).", ""]
    lines += ["## Files", "", "| file | format | precision | batch |", "|---|---|---|---|",
              f"| `{WEIGHTS_NAME}` | safetensors (weights) | fp32 | any |"]
    for name, f in cfg.get("files", {}).items():
        lines.append(f"| `{md_text(name)}` | {md_text(f['format'])} | {md_text(f['precision'])} | "
                     f"{md_text(f['batch'])} |")
    lines += [f"| `{CONFIG_NAME}` | the model's description (sha256 of every file) | | |", ""]
    lines += _use_lines(cfg)
    lines += ["## Provenance", ""]
    src = cfg.get("source") or {}
    if src:
        lines.append(f"* extracted from the checkpoint {md_text(src.get('checkpoint'))} "
                     f"({md_text(src.get('kind', 'ours'))}), sha256 {_hex_or_text(src.get('sha256'))}")
    lines.append(f"* search space: {md_text(space.name)}")
    lines += [f"* {n}" for n in info.notes]
    if cfg.get("command"):
        lines += ["", "Made with:", "", *md_code_block(str(cfg["command"]), "bash")]
    return "\n".join(lines).rstrip() + "\n"


# --------------------------------------------------------------------------- loading
def _config_error(path: Path, what: str) -> ExportError:
    return ExportError(f"{path}: {what}")


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _integer(v: Any, lo: int, hi: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def _hex64(v: Any) -> bool:
    return isinstance(v, str) and re.fullmatch(r"[0-9a-f]{64}", v) is not None


def read_bundle_config(folder: str | Path) -> dict[str, Any]:
    """The validated ``config.json`` of a bundle folder: every field it describes the model with is
    checked for its type and range (one :class:`ExportError` line naming the file and the field)."""
    root = Path(folder)
    if not root.is_dir():
        raise ExportError(f"bundle folder not found: {root}" if not root.exists()
                          else f"{root} is not a bundle folder (a folder with {CONFIG_NAME} and {WEIGHTS_NAME})")
    path = root / CONFIG_NAME
    cfg = read_json_file(path, "bundle config", ExportError, max_bytes=MAX_CONFIG_BYTES)
    if not isinstance(cfg, Mapping):
        raise _config_error(path, "is not a JSON object")
    if cfg.get("model_type") != MODEL_TYPE:
        raise _config_error(path, f"model_type is {cfg.get('model_type')!r}, not {MODEL_TYPE!r}: not an "
                                  "attentivenas bundle")
    version = cfg.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= FORMAT_VERSION:
        raise _config_error(path, f"format_version {version!r} is not supported (this version reads "
                                  f"1 to {FORMAT_VERSION})")
    n = cfg.get("num_classes")
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_CLASSES:
        raise _config_error(path, f"num_classes must be an integer from 1 to {MAX_CLASSES}, got {n!r}")
    names = cfg.get("class_names")
    if names is not None and (not isinstance(names, list) or len(names) != n
                              or not all(isinstance(c, str) and len(c) <= 1000 for c in names)):
        raise _config_error(path, f"class_names must be a list of {n} strings")
    if not isinstance(cfg.get("space"), Mapping) or not isinstance(cfg.get("arch"), Mapping):
        raise _config_error(path, "needs 'space' and 'arch' objects")
    _check_descriptive(dict(cfg), path)
    return dict(cfg)


def _check_descriptive(cfg: dict[str, Any], path: Path) -> None:
    """The descriptive fields of a config: weights name, costs, normalisation, interpolation,
    preprocessing, files, accuracy and latency entries (types and ranges; :func:`verify_bundle` compares
    them with the model and the files)."""
    v2 = cfg["format_version"] >= 2
    if cfg.get("weights", WEIGHTS_NAME) != WEIGHTS_NAME:
        raise _config_error(path, f"weights must be {WEIGHTS_NAME!r}, got {cfg.get('weights')!r}")
    if v2 and not _hex64(cfg.get("weights_sha256")):
        raise _config_error(path, "weights_sha256 must be the sha256 (64 hex digits) of model.safetensors")
    for key in ("mflops", "params_m"):
        if not (_number(cfg.get(key)) and cfg[key] >= 0):
            raise _config_error(path, f"{key} must be a finite number >= 0, got {cfg.get(key)!r}")
    if "normalization" in cfg:
        _check_normalization(cfg["normalization"], path, "normalization")
    if "interpolation" in cfg and cfg["interpolation"] not in INTERPOLATIONS:
        raise _config_error(path, f"interpolation must be one of {list(INTERPOLATIONS)}, got {cfg['interpolation']!r}")
    if "preprocessing" in cfg:
        _check_preprocessing(cfg, path)
    files = cfg.get("files", {})
    if not isinstance(files, Mapping):
        raise _config_error(path, "files must be an object (file name -> its description)")
    for name, f in files.items():
        _check_file_entry(name, f, path, v2)
    for i, a in enumerate(cfg.get("accuracy", []) if isinstance(cfg.get("accuracy", []), list) else [None]):
        _check_accuracy_entry(a, i, files, path)
    lat = cfg.get("latency")
    if lat is not None:
        entries = lat.get("entries") if isinstance(lat, Mapping) else None
        if not isinstance(entries, list):
            raise _config_error(path, "latency must be an object with a list of entries")
        for i, e in enumerate(entries):
            ok = isinstance(e, Mapping) and e.get("file") in files and all(
                _number(e.get(k)) and e[k] >= 0 for k in ("median_ms", "p90_ms"))
            if not ok:
                raise _config_error(path, f"latency.entries[{i}] must name a listed file with finite median_ms and "
                                          "p90_ms >= 0")


def _check_normalization(norm: Any, path: Path, field_name: str) -> None:
    if not isinstance(norm, Mapping):
        raise _config_error(path, f"{field_name} must be an object with mean and std")
    for key in ("mean", "std"):
        values = norm.get(key)
        if not (isinstance(values, list) and len(values) == 3 and all(_number(v) for v in values)):
            raise _config_error(path, f"{field_name}.{key} must be 3 finite numbers, got {values!r}")
    if not all(v > 0 for v in norm["std"]):
        raise _config_error(path, f"{field_name}.std must be positive, got {norm['std']!r}")


def _check_preprocessing(cfg: Mapping[str, Any], path: Path) -> None:
    pre = cfg["preprocessing"]
    if not isinstance(pre, Mapping):
        raise _config_error(path, "preprocessing must be an object")
    _check_normalization(pre, path, "preprocessing")
    src, rs, mi = pre.get("source"), pre.get("resize"), pre.get("model_input")
    if not (isinstance(src, Mapping) and src.get("color") in COLORS and src.get("channels") == COLORS[src["color"]]):
        raise _config_error(path, f"preprocessing.source must name a color of {list(COLORS)} and its channels")
    size = src.get("size")
    if size is not None and not (isinstance(size, list) and len(size) == 2 and all(_integer(v, 1, MAX_SIDE)
                                                                                     for v in size)):
        raise _config_error(path, f"preprocessing.source.size must be null or [height, width] from 1 to {MAX_SIDE}")
    if not (isinstance(rs, Mapping) and _integer(rs.get("size"), 1, MAX_SIDE)):
        raise _config_error(path, f"preprocessing.resize.size must be an integer from 1 to {MAX_SIDE}")
    if rs.get("mode") not in RESIZE_MODES:
        raise _config_error(path, f"preprocessing.resize.mode must be one of {list(RESIZE_MODES)}, got "
                                  f"{rs.get('mode')!r}")
    if rs.get("interpolation") not in INTERPOLATIONS:
        raise _config_error(path, f"preprocessing.resize.interpolation must be one of {list(INTERPOLATIONS)}, got "
                                  f"{rs.get('interpolation')!r}")
    crop = pre.get("crop")
    if rs["mode"] == "shorter_side" and not _integer(crop, 1, rs["size"]):
        raise _config_error(path, f"preprocessing.crop must be an integer from 1 to the resize ({rs['size']}), "
                                  f"got {crop!r}")
    if rs["mode"] == "whole_image" and crop is not None:
        raise _config_error(path, "preprocessing.crop must be null when the whole image is resized")
    if pre.get("value_range") != [0.0, 1.0]:
        raise _config_error(path, "preprocessing.value_range must be [0.0, 1.0]")
    if not (isinstance(mi, Mapping) and mi.get("channels") == 3 and mi.get("size") == cfg.get("resolution")
            and mi.get("resize") == MODEL_RESIZE and mi.get("layout") == "NCHW" and mi.get("dtype") == "float32"):
        raise _config_error(path, f"preprocessing.model_input must be 3 channels at the resolution "
                                  f"({cfg.get('resolution')!r}), resize {MODEL_RESIZE}, NCHW float32")
    if "normalization" in cfg and {k: cfg["normalization"][k] for k in ("mean", "std")} != {
            k: pre[k] for k in ("mean", "std")}:
        raise _config_error(path, "normalization differs from preprocessing.mean / preprocessing.std")
    if "interpolation" in cfg and cfg["interpolation"] != rs["interpolation"]:
        raise _config_error(path, "interpolation differs from preprocessing.resize.interpolation")


def _check_file_entry(name: Any, f: Any, path: Path, v2: bool) -> None:
    where = f"files[{name!r}]"
    if not isinstance(f, Mapping) or f.get("format") not in RUNTIME_FILES or f.get("precision") not in PRECISIONS:
        raise _config_error(path, f"{where} must name a format of {list(BUNDLE_FORMATS)} and a precision of "
                                  f"{list(PRECISIONS)}")
    if f["precision"] == "int8" and f["format"] not in INT8_FORMATS:
        raise _config_error(path, f"{where}: {f['format']} files are fp32 only")
    if name != runtime_file_name(f["format"], f["precision"]):
        raise _config_error(path, f"{where}: a {f['format']} {f['precision']} file is named "
                                  f"{runtime_file_name(f['format'], f['precision'])!r}")
    batch = f.get("batch")
    if not (batch == "dynamic" and f["format"] != "executorch") and not _integer(batch, 1, MAX_BATCH):
        raise _config_error(path, f"{where}.batch must be an integer from 1 to {MAX_BATCH}"
                                  f"{'' if f['format'] == 'executorch' else ' or dynamic'}, got {batch!r}")
    if "rel_error" in f and not (_number(f["rel_error"]) and f["rel_error"] >= 0):
        raise _config_error(path, f"{where}.rel_error must be a finite number >= 0")
    if (v2 or "sha256" in f) and not _hex64(f.get("sha256")):
        raise _config_error(path, f"{where}.sha256 must be the file's sha256 (64 hex digits)")


def _check_accuracy_entry(a: Any, i: int, files: Mapping[str, Any], path: Path) -> None:
    where = f"accuracy[{i}]"
    if not isinstance(a, Mapping) or not isinstance(a.get("split"), str) or a.get("precision", "fp32") not in PRECISIONS:
        raise _config_error(path, f"{where} must be an object with a split and a precision of {list(PRECISIONS)}")
    top1 = a.get("top1")
    if not (_number(top1) and 0 <= top1 <= 100):
        raise _config_error(path, f"{where}.top1 must be a percentage from 0 to 100, got {top1!r}")
    top5 = a.get("top5")
    if top5 is not None and not (_number(top5) and top1 <= top5 <= 100):
        raise _config_error(path, f"{where}.top5 must be a percentage from top1 ({top1}) to 100, got {top5!r}")
    if not _integer(a.get("samples"), 1, 10**9):
        raise _config_error(path, f"{where}.samples must be a positive integer, got {a.get('samples')!r}")
    if a.get("file") is not None and a["file"] not in files:
        raise _config_error(path, f"{where}.file {a['file']!r} is not one of the files listed")


def bundle_space_arch(cfg: Mapping[str, Any], path: Path) -> tuple[SearchSpace, Arch]:
    """The space stored in a bundle's config and its arch, validated against it; the config's resolution
    must be the arch's."""
    try:
        space = SearchSpace.from_dict(cfg["space"])
    except (UserError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise _config_error(path, f"invalid space: {_one_line(exc)}") from None
    try:
        arch = space.arch_from_dict(cfg["arch"])
    except (UserError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise _config_error(path, f"invalid arch: {_one_line(exc)}") from None
    res = cfg.get("resolution", arch.resolution)
    if res != arch.resolution:
        raise _config_error(path, f"resolution {res!r} differs from the arch's {arch.resolution}")
    return space, arch


def _check_costs(cfg: Mapping[str, Any], space: SearchSpace, arch: Arch, path: Path) -> None:
    """The config's MFLOPs and params are those of its arch."""
    n = int(cfg["num_classes"])
    for key, value in (("mflops", count_flops(space, arch, n)), ("params_m", count_params(space, arch, n) / 1e6)):
        if key in cfg and not math.isclose(float(cfg[key]), value, rel_tol=1e-6, abs_tol=1e-9):
            raise _config_error(path, f"{key} {cfg[key]!r} is not the arch's ({value:.6g})")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return re.sub(r"\s+", " ", text[0]) if text else type(exc).__name__


def verify_bundle_files(root: Path, cfg: Mapping[str, Any]) -> None:
    """Every file ``config.json`` lists exists and has the sha256 it records (one line naming the file)."""
    expected = [(WEIGHTS_NAME, cfg.get("weights_sha256"))]
    expected += [(name, f.get("sha256")) for name, f in cfg.get("files", {}).items()]
    for name, digest in expected:
        p = root / name
        if not p.is_file():
            raise ExportError(f"{p} not found: {CONFIG_NAME} lists it" if name != WEIGHTS_NAME
                              else f"{p} not found: the bundle has no weights")
        if digest is not None and file_sha256(p) != digest:
            field_name = "weights_sha256" if name == WEIGHTS_NAME else f"files[{name!r}].sha256"
            raise ExportError(f"{p}: its sha256 is not the one {CONFIG_NAME} records ({field_name}): the file "
                              "was changed or replaced after export")


def _weights_spec(weights: Path) -> dict[str, Any] | None:
    """The subnet description ``model.safetensors`` records in its metadata (None when it has none)."""
    try:
        with safe_open(str(weights), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ExportError(f"{weights} is not a valid safetensors file ({_one_line(exc)})") from None
    if "attentivenas" not in meta:
        return None
    try:
        spec = json.loads(meta["attentivenas"])
    except ValueError:
        raise ExportError(f"{weights}: its attentivenas metadata is not valid JSON") from None
    if not isinstance(spec, dict) or spec.get("format") != SUBNET_FORMAT:
        raise ExportError(f"{weights}: its attentivenas metadata is not a subnet description")
    return spec


def _compare_with_weights(cfg: Mapping[str, Any], space: SearchSpace, arch: Arch, weights: Path) -> None:
    """``config.json`` against what ``model.safetensors`` records: space, arch, resolution, classes."""
    spec = _weights_spec(weights)
    if spec is None:
        if cfg["format_version"] >= 2:
            raise ExportError(f"{weights}: records no subnet (attentivenas metadata); it is not this bundle's")
        return
    try:
        same_space = SearchSpace.from_dict(spec["space"]).same_as(space)
    except (UserError, ValueError, KeyError, TypeError, AttributeError):
        same_space = False
    checks = (("space", same_space), ("arch", spec.get("arch") == arch.to_dict()),
              ("resolution", spec.get("resolution") == arch.resolution),
              ("num_classes", spec.get("num_classes") == cfg["num_classes"]))
    for field_name, same in checks:
        if not same:
            raise ExportError(f"{weights.parent / CONFIG_NAME}: {field_name} differs from the one "
                              f"{WEIGHTS_NAME} records: config and weights do not match (not the same model)")


def _check_state(state: Mapping[str, torch.Tensor], weights: Path) -> None:
    """Weights as written: float tensors (BN's step counters integer), finite, BN variances >= 0."""
    for k, v in state.items():
        if k.endswith("num_batches_tracked"):
            if v.is_floating_point() or v.dtype == torch.bool:
                raise ExportError(f"{weights}: tensor {k} must be an integer counter, got {v.dtype}")
            continue
        if v.dtype != torch.float32:
            raise ExportError(f"{weights}: tensor {k} is {str(v.dtype).replace('torch.', '')}, not float32")
        if not bool(torch.isfinite(v).all()):
            raise ExportError(f"{weights}: tensor {k} holds non-finite values")
        if k.endswith("running_var") and bool((v < 0).any()):
            raise ExportError(f"{weights}: tensor {k} (a BN variance) holds negative values")


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
        if not _integer(top_k, 1, self.num_classes) or not _integer(batch_size, 1, 4096):
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
            raise UserError(f"cannot read image {image}: {_one_line(exc)}") from None
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
    _compare_with_weights(cfg, space, arch, weights)
    _check_costs(cfg, space, arch, root / CONFIG_NAME)
    verify_bundle_files(root, cfg)
    try:
        state = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ExportError(f"{weights} is not a valid safetensors file ({_one_line(exc)})") from None
    _check_state(state, weights)
    model = BundledSubnet(space, arch, int(cfg["num_classes"]))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ExportError(f"{weights}: weights do not match the arch of {CONFIG_NAME}: {_one_line(exc)}") from None
    model.class_names = cfg.get("class_names")
    model.config = cfg
    return model.to(device).eval()


__all__ = ["BUNDLE_FORMATS", "CARD_NAME", "CONFIG_NAME", "FORMAT_VERSION", "INDEX_NAME", "MODEL_TYPE",
           "PRECISIONS", "RUNTIME_FILES", "WEIGHTS_NAME", "BundledSubnet", "CardInfo", "bundle_config",
           "bundle_folder_name", "bundle_space_arch", "check_bundle_options", "load_pretrained", "md_code_block",
           "md_text", "model_card", "parse_formats", "preprocess_image", "preprocessing_of", "read_bundle_config",
           "standalone_preprocess_code",
           "runtime_file_name", "start_bundle_set", "verify_bundle_files", "write_bundle", "write_bundle_index"]
