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
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch import nn

from ..costs import count_flops, count_params
from ..errors import UserError
from ..io import atomic_write_bytes, atomic_write_json, atomic_write_text, dumps_json, read_json_file
from ..space import Arch, SearchSpace, net_plan
from .export import ExportError, export_subnet, parse_batch, subnet_spec
from .quantize import INT8_FORMATS, PRECISIONS
from .static import StaticSubnet

MODEL_TYPE = "attentivenas-subnet"
FORMAT_VERSION = 1
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
    measured; ``notes``: extra lines of the card (e.g. how BN statistics were set).
    """

    class_names: list[str] | None = None
    normalization: dict[str, list[float]] | None = None
    interpolation: str | None = None
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
    if info.source:
        cfg["source"] = dict(info.source)
    if info.command is not None:
        cfg["command"] = info.command
    return cfg


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
    called once on all of them and its entries join ``info.accuracy``. Each file is written atomically and
    ``config.json`` last (an earlier bundle's is removed first); runtime files of an earlier bundle in the
    folder that this one does not list are removed.
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
    if (out / CONFIG_NAME).is_file():  # an earlier bundle's: until this one is complete, the folder is none
        (out / CONFIG_NAME).unlink()
    atomic_write_bytes(out / WEIGHTS_NAME, save(state, metadata={"format": "pt", "attentivenas": json.dumps(spec)}))
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
    """``DIR/index.json`` of a Pareto set's bundles: folder, arch, MFLOPs, params, files, top-1 (atomic)."""
    records = []
    for name, cfg in zip(names, configs, strict=True):
        rec = {"folder": name, "arch": cfg["arch"], "mflops": cfg["mflops"], "params_m": cfg["params_m"],
               "files": sorted(cfg.get("files", {}))}
        if cfg.get("accuracy"):
            rec["accuracy"] = cfg["accuracy"]
        records.append(rec)
    return atomic_write_json(Path(folder) / INDEX_NAME, {"model_type": MODEL_TYPE, "bundles": records})


# --------------------------------------------------------------------------- the model card
def _fmt(x: Any, digits: int = 2) -> str:
    if isinstance(x, float):
        return "-" if not math.isfinite(x) else f"{x:.{digits}f}"
    return "-" if x is None else str(x)


def _yaml_str(text: str) -> str:
    return json.dumps(text)  # a JSON string is a valid YAML scalar


def model_card(cfg: Mapping[str, Any], info: CardInfo | None = None) -> str:
    """The ``README.md`` of a bundle: Hub-style YAML front matter, then the arch, costs, accuracy,
    latency, files, how to load it, and where it came from."""
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
             f"A subnet of the `{space.name}` search space, extracted from an AttentiveNAS supernet and "
             "exported with the `attentivenas` toolkit. It runs without the supernet.", ""]
    lines += ["## Architecture", "", f"Input resolution: {cfg['resolution']} x {cfg['resolution']}, "
              f"{cfg['num_classes']} classes.", "",
              "| stage | width | depth | kernel | expand |", "|---|---|---|---|---|"]
    stage_names = [s.name for s in space.stages]
    widths = list(arch.width)
    lines.append(f"| first conv | {widths[0]} | | | |")
    for i, name in enumerate(stage_names):
        expand = arch.expand_ratio[i]
        expand_text = str(int(expand)) if float(expand).is_integer() else str(expand)
        lines.append(f"| {name} | {widths[i + 1]} | {arch.depth[i]} | {arch.kernel_size[i]} | {expand_text} |")
    if len(widths) > len(stage_names) + 1:
        lines.append(f"| last conv | {widths[-1]} | | | |")
    plan = net_plan(space, arch)
    lines += ["", f"{len(plan.blocks)} MBConv blocks. Arch (JSON): `{dumps_json(cfg['arch'])}`", ""]
    lines += ["## Cost", "", "| MFLOPs (MACs) | params (M) |", "|---|---|",
              f"| {_fmt(cfg['mflops'])} | {_fmt(cfg['params_m'], 3)} |", "",
              "MFLOPs count multiply-accumulates, as the AttentiveNAS papers do.", ""]
    lines += ["## Accuracy", ""]
    if acc:
        lines += ["Top-1 of this model's weights as bundled (INT8: its runtime file, run by its runtime):", "",
                  "| split | precision | top-1 (%) | top-5 (%) | images |", "|---|---|---|---|---|"]
        for a in acc:
            lines.append(f"| {a['split']} | {a.get('precision', 'fp32')} | {_fmt(a['top1'])} | "
                         f"{_fmt(a.get('top5'))} | {_fmt(a.get('samples'))} |")
        lines += [f"* {a['note']}" for a in acc if a.get("note")]
        lines.append("")
    else:
        lines += ["Not measured (`--no-card-metrics`).", ""]
    lines += ["## Latency", ""]
    if info.latency or cfg.get("latency"):
        entries = info.latency or cfg["latency"]["entries"]
        machine = info.machine or (cfg.get("latency") or {}).get("machine") or "unknown"
        lines += [f"Measured when the bundle was written, on {machine}: each file loaded in its runtime and run "
                  "on batch 1 (a fixed-batch file on its batch), median and 90th percentile of a few timed runs "
                  "after a short warm-up. A rough figure: time it on the machine it will run on.", "",
                  "| runtime | file | precision | median (ms) | p90 (ms) | threads |", "|---|---|---|---|---|---|"]
        for e in entries:
            lines.append(f"| {RUNTIME_NAMES.get(str(e.get('runtime')), e.get('runtime'))} | `{e.get('file')}` | "
                         f"{e.get('precision')} | {_fmt(e.get('median_ms'), 3)} | {_fmt(e.get('p90_ms'), 3)} | "
                         f"{_fmt(e.get('threads'))} |")
        lines.append("")
    else:
        lines += ["Not measured (`--no-latency`).", ""]
    lines += ["## Files", "", "| file | format | precision | batch |", "|---|---|---|---|",
              f"| `{WEIGHTS_NAME}` | safetensors (weights) | fp32 | any |"]
    for name, f in cfg.get("files", {}).items():
        lines.append(f"| `{name}` | {f['format']} | {f['precision']} | {f['batch']} |")
    lines += [f"| `{CONFIG_NAME}` | the model's description | | |", ""]
    lines += ["## Use", "", "Images: RGB, resized and centre-cropped to the resolution above"
              + (f" ({cfg['interpolation']} interpolation)" if cfg.get("interpolation") else "")
              + (f", normalised with mean {cfg['normalization']['mean']} and std {cfg['normalization']['std']}"
                 if cfg.get("normalization") else "") + ".", "",
              "```python", "import attentivenas", "",
              "model = attentivenas.load_pretrained(\"path/to/this/folder\")  # a torch.nn.Module, eval mode",
              "logits = model(images)  # images: N x 3 x H x W, normalised", "```", ""]
    if "model.pt2" in cfg.get("files", {}):
        lines += ["`torch.export.load(\"model.pt2\").module()` runs the `.pt2` file with PyTorch alone.", ""]
    lines += ["## Provenance", ""]
    src = cfg.get("source") or {}
    if src:
        lines.append(f"* extracted from the checkpoint `{src.get('checkpoint')}` ({src.get('kind', 'ours')}), "
                     f"sha256 `{src.get('sha256')}`")
    lines.append(f"* search space: `{space.name}`")
    lines += [f"* {n}" for n in info.notes]
    if cfg.get("command"):
        lines += ["", "Made with:", "", "```bash", str(cfg["command"]), "```"]
    return "\n".join(lines).rstrip() + "\n"


# --------------------------------------------------------------------------- loading
def _config_error(path: Path, what: str) -> ExportError:
    return ExportError(f"{path}: {what}")


def read_bundle_config(folder: str | Path) -> dict[str, Any]:
    """The validated ``config.json`` of a bundle folder (one :class:`ExportError` line naming the file)."""
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
    return dict(cfg)


def bundle_space_arch(cfg: Mapping[str, Any], path: Path) -> tuple[SearchSpace, Arch]:
    """The space stored in a bundle's config and its arch, validated against it."""
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


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return re.sub(r"\s+", " ", text[0]) if text else type(exc).__name__


def load_pretrained(folder: str | Path, device: str | torch.device = "cpu") -> StaticSubnet:
    """The :class:`StaticSubnet` of a bundle folder, in eval mode on ``device``: built from its
    ``config.json`` (validated: the arch against the space it stores) and ``model.safetensors``
    (strict: every tensor present with its shape). No supernet and no pickle; a missing or damaged
    file is one :class:`ExportError` line naming it."""
    root = Path(folder)
    cfg = read_bundle_config(root)
    space, arch = bundle_space_arch(cfg, root / CONFIG_NAME)
    weights = root / WEIGHTS_NAME
    if not weights.is_file():
        raise ExportError(f"{weights} not found: the bundle has no weights")
    try:
        state = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ExportError(f"{weights} is not a valid safetensors file ({_one_line(exc)})") from None
    model = StaticSubnet(space, arch, int(cfg["num_classes"]))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ExportError(f"{weights}: weights do not match the arch of {CONFIG_NAME}: {_one_line(exc)}") from None
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise ExportError(f"{weights}: tensor {bad[0]} holds non-finite values")
    model.class_names = cfg.get("class_names")  # type: ignore[assignment]
    model.config = cfg  # type: ignore[assignment]
    return model.to(device).eval()


__all__ = ["BUNDLE_FORMATS", "CARD_NAME", "CONFIG_NAME", "FORMAT_VERSION", "INDEX_NAME", "MODEL_TYPE",
           "PRECISIONS", "RUNTIME_FILES", "WEIGHTS_NAME", "CardInfo", "bundle_config", "bundle_folder_name",
           "bundle_space_arch", "check_bundle_options", "load_pretrained", "model_card", "parse_formats", "read_bundle_config",
           "runtime_file_name", "write_bundle", "write_bundle_index"]
