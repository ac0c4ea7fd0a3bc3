"""Bundles of a checkpoint's subnets (``export --format bundle``): one model folder (``--arch``) or one per
subnet of a Pareto set with ``index.json``, each with its card measured (top-1 per split and precision with
the project's evaluator, latency of each runtime file with the latency layer's timing loop)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from ..config import DataConfig, Int8Recipe, checkpoint_kind
from ..costs import count_flops
from ..data.facts import normalization_of, source_image_size
from ..data.plan import TENSOR_SOURCES, eval_resize_of
from ..nn.bn import calibrate_bn as recalibrate_bn
from ..space import Arch
from .bundle import bundle_folder_name, preprocessing_of, start_bundle_set, write_bundle, write_bundle_index
from .bundle_format import CardInfo
from .card_measure import latency_fn, machine_line
from .folders import export_lock, file_sha256
from .inputs import BundleInputs

#: an INT8 file not at least this much faster (median, batch 1) than its fp32 file is not worth its drop
MIN_INT8_SPEEDUP = 1.1
Echo = Callable[[str], None]


@dataclass
class BundleSet:
    """What every bundle of one ``export --format bundle`` shares: runtime formats, precisions, batch,
    the INT8 recipe (None: fp32 only), whether latency is timed (and on how many threads), the command line
    and the checkpoint (its card's provenance)."""

    formats: Sequence[str]
    precisions: Sequence[str]
    batch: int | str | None
    recipe: Int8Recipe | None
    latency: bool
    checkpoint: Path
    command: str | None = None
    threads: int = 1
    notes: list[str] = field(default_factory=list)


def bundle_preprocessing(dcfg: DataConfig, resolution: int, train: Any = None) -> dict[str, Any]:
    """How the images of the data config ``dcfg`` are prepared for a model at ``resolution`` (the
    evaluation's transform), as a bundle's ``preprocessing`` (:func:`~attentivenas.export.bundle.preprocessing_of`)."""
    norm = normalization_of(dcfg.name)
    size = source_image_size(dcfg.name, train)
    if dcfg.name in TENSOR_SOURCES:  # grey images, resized whole (bilinear) by the loader
        return preprocessing_of(color="grayscale", resize=dcfg.image_size, resize_mode="whole_image", crop=None,
                                interpolation="bilinear", mean=norm["mean"], std=norm["std"], resolution=resolution,
                                source_size=size)
    return preprocessing_of(color="rgb", resize=eval_resize_of(dcfg), resize_mode="shorter_side",
                            crop=dcfg.image_size, interpolation=dcfg.interpolation, mean=norm["mean"],
                            std=norm["std"], resolution=resolution, source_size=size)


def _int8_line(name: str, cfg: Mapping[str, Any], lat: Mapping[str, Any], max_drop: float) -> tuple[str, bool]:
    """The line of one INT8 file of a bundle (see :func:`int8_summary`)."""
    f = cfg["files"][name]
    fp32 = next((n for n, g in cfg["files"].items() if g["format"] == f["format"] and g["precision"] == "fp32"),
                None)
    checks = [a for a in cfg.get("accuracy", []) if a.get("file") == name and "top1_fp32" in a]
    drop = max((a["int8_drop"] for a in checks), default=None)
    parts = [f"{name} against {fp32 or 'fp32'}:"]
    parts += [f"top-1 {a['top1']:.2f}% vs {a['top1_fp32']:.2f}% on {a['samples']} {a['split']} images "
              f"(drop {a['int8_drop']:.2f} points)" for a in checks] or ["top-1 not checked (--check-images 0)"]
    speedup = None
    if name in lat and fp32 in lat and lat[name]["median_ms"] > 0:
        speedup = lat[fp32]["median_ms"] / lat[name]["median_ms"]
        parts.append(f"median {lat[name]['median_ms']:.3f} ms vs {lat[fp32]['median_ms']:.3f} ms "
                     f"(speed-up {speedup:.2f}x)")
    else:
        parts.append("speed-up not measured (--no-latency)")
    line = " ".join(parts[:1]) + " " + "; ".join(parts[1:])
    reasons = []
    if drop is not None and drop > max_drop:
        reasons.append(f"INT8 loses {drop:.2f} points of top-1 (more than --max-int8-drop {max_drop:g})")
    if speedup is not None and speedup < MIN_INT8_SPEEDUP:
        reasons.append(f"it is only {speedup:.2f}x as fast (under {MIN_INT8_SPEEDUP:g}x)")
    if reasons and fp32 is not None:
        line += f". fp32 is the better file: ship {fp32}, not {name}: " + " and ".join(reasons)
    return line, bool(reasons)


def int8_summary(cfg: Mapping[str, Any], max_drop: float) -> list[tuple[str, bool]]:
    """Per INT8 file of a bundle's config: a line with its top-1 drop and speed-up beside its fp32 file,
    and whether fp32 is the better file (a drop above ``max_drop`` points, or a speed-up under
    :data:`MIN_INT8_SPEEDUP`)."""
    lat = {e["file"]: e for e in (cfg.get("latency") or {}).get("entries", [])}
    return [_int8_line(name, cfg, lat, max_drop) for name, f in cfg.get("files", {}).items()
            if f.get("precision") == "int8"]


def bn_note(calibrated: bool, subnet: bool) -> str:
    """The card's line on how the bundled model's BN statistics were set."""
    if calibrated:
        return ("BN statistics recalibrated on the checkpoint's training data before export (the default for a "
                "supernet's subnet; always with --precision int8)")
    if subnet:
        return "BN statistics: the fine-tuned subnet's own (calibrated when it was fine-tuned)"
    return ("BN statistics: the supernet's as stored (--no-calibrate-bn): they may be placeholders for this subnet, "
            "whose top-1 can then be at chance")


def bundle_summary(folder: Path, cfg: Mapping[str, Any], max_drop: float) -> dict[str, Any]:
    """A bundle's entry in ``export --json``: folder, MFLOPs, files, accuracy, the INT8 drop."""
    drops = [a["int8_drop"] for a in cfg.get("accuracy", []) if "int8_drop" in a]
    out = {"folder": str(folder), "mflops": cfg["mflops"], "files": sorted(cfg.get("files", {})),
           "accuracy": cfg.get("accuracy", [])}
    if drops:
        out.update({"int8_drop": max(drops), "max_int8_drop": max_drop, "int8_drop_exceeded": max(drops) > max_drop})
    return out


def _write_one(net: nn.Module, a: Arch, folder: Path, s: BundleSet, inputs: BundleInputs,
               source: dict[str, Any]) -> dict[str, Any]:
    """One subnet's bundle in ``folder``: extracted, BN recalibrated (when asked), its card measured."""
    sub = net.extract(a).eval()
    if inputs.calib_batches is not None:
        sub = recalibrate_bn(sub, inputs.calib_batches).eval()
    pre = bundle_preprocessing(inputs.dcfg, int(a.resolution), inputs.train)
    info = CardInfo(class_names=inputs.class_names, normalization={k: pre[k] for k in ("mean", "std")},
                    interpolation=pre["resize"]["interpolation"], preprocessing=pre, source=source,
                    command=s.command, notes=list(s.notes), machine=machine_line(s.threads) if s.latency else None)
    card, recipe = inputs.card, s.recipe
    if card is not None:
        info.accuracy = card.fp32(sub, a)
    int8_fn = None
    if card is not None and recipe is not None and recipe.check_images > 0:
        def int8_fn(where: Path, files: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
            assert card is not None and recipe is not None
            return card.int8(sub, a, where, files, recipe.check_images, recipe.max_drop)
    int8_options = None if inputs.calib_images is None else {"calib_images": inputs.calib_images}
    return write_bundle(sub, folder, formats=s.formats, precisions=s.precisions, batch=s.batch, info=info,
                        latency_fn=latency_fn(int(a.resolution), s.threads) if s.latency else None,
                        accuracy_fn=int8_fn, int8_options=int8_options)


def export_bundles(net: nn.Module, meta: dict[str, Any], archs: Sequence[Arch], out: Path, s: BundleSet,
                   inputs: BundleInputs, *, pareto: bool, echo: Echo, warn: Echo) -> list[dict[str, Any]]:
    """Write one bundle (``pareto`` False: ``archs`` holds one arch) in ``out``, or one per Pareto subnet
    under ``out`` plus ``out/index.json`` (``out`` locked, its earlier ``index.json`` removed first and the
    new one written last).

    The card's top-1 is that of the weights bundled (PyTorch for fp32, each INT8 file in its runtime on the
    recipe's ``check_images`` seeded images of each split). Returns each bundle's summary (folder, MFLOPs,
    files, accuracy, INT8 drops)."""
    space, num_classes = net.space, int(net.num_classes)
    max_drop = s.recipe.max_drop if s.recipe is not None else Int8Recipe().max_drop
    source = {"checkpoint": s.checkpoint.name, "sha256": file_sha256(s.checkpoint), "kind": checkpoint_kind(meta)}
    s.notes = [bn_note(inputs.calib_batches is not None, bool(meta.get("subnet")))]
    s.notes += inputs.card.notes if inputs.card is not None else []
    configs, names, summaries = [], [], []
    with contextlib.ExitStack() as stack:
        if pareto:
            stack.enter_context(export_lock(out, folder=True))
            start_bundle_set(out)
        for i, a in enumerate(archs):
            folder = out / bundle_folder_name(i, count_flops(space, a, num_classes)) if pareto else out
            cfg = _write_one(net, a, folder, s, inputs, source)
            configs.append(cfg)
            names.append(folder.name)
            top1 = next((f", top-1 {e['top1']:.2f}% ({e['split']})" for e in cfg.get("accuracy", [])), "")
            echo(f"wrote {folder}/ ({cfg['mflops']:.2f} MFLOPs, {', '.join(['model.safetensors', *cfg['files']])}"
                 f"{top1})")
            for line, worse in int8_summary(cfg, max_drop):
                (warn if worse else echo)(line)
            summaries.append(bundle_summary(folder, cfg, max_drop))
        if pareto:
            echo(f"index: {write_bundle_index(out, configs, names)}")
    return summaries
