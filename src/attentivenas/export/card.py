"""A bundle's model card (``README.md``): YAML front matter in the Hub's style, the arch table, costs,
accuracy and latency, and code that runs each runtime file without attentivenas. Every text the card
did not write itself is escaped (:func:`md_text`, :func:`md_code_block`)."""


from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Mapping
from typing import Any

from ..config.bundle import WEIGHTS_NAME
from ..io import dumps_json
from ..space import Arch, SearchSpace, net_plan
from .bundle_format import CardInfo, bundle_runtime, runtime_title
from .weights import CONFIG_NAME


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
        rt = bundle_runtime(str(f.get("format")))
        if rt is None or not rt.card_snippet:
            continue
        snippet = rt.card_snippet
        lines += [f"`{name}` ({runtime_title(rt.format)}, {f['precision']}):", "", "```python",
                  *[ln.format(file=name, batch=f.get("batch")) for ln in snippet],
                  "probabilities = softmax(logits)  # per class; CLASSES[probabilities.argmax(1)[0]]", "```", ""]
    return lines


def _front_matter(cfg: Mapping[str, Any], title: str, acc: list[Mapping[str, Any]]) -> list[str]:
    """The card's YAML front matter in the Hub's style (with a ``model-index`` of the measured top-1s)."""
    front = ["---", "library_name: attentivenas", "pipeline_tag: image-classification",
             "tags:", "- image-classification", "- neural-architecture-search", "- attentivenas",
             "- safetensors"]
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
    return front


def _arch_lines(cfg: Mapping[str, Any], space: SearchSpace, arch: Arch) -> list[str]:
    """The card's "Architecture" and "Cost" sections."""
    lines = ["## Architecture", "", f"Input resolution: {cfg['resolution']} x {cfg['resolution']}, "
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
    return lines + ["## Cost", "", "| MFLOPs (MACs) | params (M) |", "|---|---|",
                    f"| {_fmt(cfg['mflops'])} | {_fmt(cfg['params_m'], 3)} |", "",
                    "MFLOPs count multiply-accumulates, as the AttentiveNAS papers do.", ""]


def _measured_lines(cfg: Mapping[str, Any], info: CardInfo, acc: list[Mapping[str, Any]]) -> list[str]:
    """The card's "Accuracy" and "Latency" sections."""
    lines = ["## Accuracy", ""]
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
    if not (info.latency or cfg.get("latency")):
        return lines + ["Not measured (`--no-latency`).", ""]
    entries = info.latency or cfg["latency"]["entries"]
    machine = info.machine or (cfg.get("latency") or {}).get("machine") or "unknown"
    lines += [f"Measured when the bundle was written, on {md_text(machine)}: each file loaded in its runtime and "
              "run on batch 1 (a fixed-batch file on its batch), median and 90th percentile of a few timed runs "
              "after a short warm-up. A rough figure: time it on the machine it will run on.", "",
              "| runtime | file | precision | median (ms) | p90 (ms) | threads |", "|---|---|---|---|---|---|"]
    for e in entries:
        lines.append(f"| {md_text(runtime_title(e.get('runtime')))} | "
                     f"`{md_text(e.get('file'))}` | {md_text(e.get('precision'))} | {_fmt(e.get('median_ms'), 3)} | "
                     f"{_fmt(e.get('p90_ms'), 3)} | {_fmt(e.get('threads'))} |")
    return lines + [""]


def _files_lines(cfg: Mapping[str, Any]) -> list[str]:
    """The card's "Files" section."""
    lines = ["## Files", "", "| file | format | precision | batch |", "|---|---|---|---|",
             f"| `{WEIGHTS_NAME}` | safetensors (weights) | fp32 | any |"]
    for name, f in cfg.get("files", {}).items():
        lines.append(f"| `{md_text(name)}` | {md_text(f['format'])} | {md_text(f['precision'])} | "
                     f"{md_text(f['batch'])} |")
    return lines + [f"| `{CONFIG_NAME}` | the model's description (sha256 of every file) | | |", ""]


def _provenance_lines(cfg: Mapping[str, Any], info: CardInfo, space: SearchSpace) -> list[str]:
    """The card's "Provenance" section: the checkpoint, the space, the notes and the command."""
    lines = ["## Provenance", ""]
    src = cfg.get("source") or {}
    if src:
        lines.append(f"* extracted from the checkpoint {md_text(src.get('checkpoint'))} "
                     f"({md_text(src.get('kind', 'ours'))}), sha256 {_hex_or_text(src.get('sha256'))}")
    lines.append(f"* search space: {md_text(space.name)}")
    lines += [f"* {n}" for n in info.notes]
    if cfg.get("command"):
        lines += ["", "Made with:", "", *md_code_block(str(cfg["command"]), "bash")]
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
    acc = [a for a in cfg.get("accuracy", []) if a.get("top1") is not None]
    lines = [*_front_matter(cfg, title, acc), "", f"# {title}", "",
             f"A subnet of the {md_text(space.name)} search space, extracted from an AttentiveNAS supernet and "
             "exported with the `attentivenas` toolkit. It runs without the supernet.", ""]
    lines += _arch_lines(cfg, space, arch) + _measured_lines(cfg, info, acc) + _files_lines(cfg)
    lines += _use_lines(cfg) + _provenance_lines(cfg, info, space)
    return "\n".join(lines).rstrip() + "\n"
