"""``export --format bundle``: model folders with their card measured (top-1 per split and precision
with the project's evaluator, latency of each runtime file with the latency layer's timing loop).

Imported by the ``export`` command when it runs (torch-based), so ``attentivenas --help`` stays fast.
"""

from __future__ import annotations

import contextlib
import io
import os
import platform
import shlex
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import typer
from torch import nn

from ..accuracy import SubnetEvaluator, holdout_warning, stage2_data_config
from ..accuracy.evaluate import evaluate_subnet
from ..config import DataConfig, MeasureSettings, checkpoint_kind, measure_from_flags
from ..costs import count_flops
from ..data.facts import class_names_of, normalization_of
from ..data.plan import TENSOR_SOURCES, eval_resize_of
from ..devices import device_name
from ..errors import UserError
from ..export.bundle import (
    bundle_folder_name,
    check_bundle_options,
    parse_formats,
    preprocessing_of,
    start_bundle_set,
    write_bundle,
    write_bundle_index,
)
from ..export.bundle_format import CardInfo
from ..export.folders import export_lock, file_sha256
from ..export.formats import DYNAMIC, MAX_BATCH
from ..export.pareto import read_pareto_archs
from ..io import check_output
from ..latency.measure import result_of, time_runner
from ..nn import cache_calibration_batches, to_model_resolution
from ..nn.bn import calibrate_bn as recalibrate_bn
from ..runtimes.quantize import (
    DEFAULT_CALIB_IMAGES,
    DEFAULT_CHECK_IMAGES,
    DEFAULT_MAX_INT8_DROP,
    PRECISIONS,
    check_int8_accuracy,
    int8_drop_fields,
)
from ..runtimes.runners import Runner, load_program
from ..space import Arch, resolve_arch
from .common import load_export_source, warn_line
from .export_cmd import calibration_data, check_archs, resolve_calibration

#: ``--card-split`` values and the splits each measures
CARD_SPLITS = {"holdout": ("holdout",), "test": ("test",), "both": ("holdout", "test")}
#: the card's latency: a quick measurement (warm-up runs, timed runs)
LATENCY_WARMUP, LATENCY_REPEATS = 3, 10
#: the runtime that loads each runtime file (``torch`` runs a ``.pt2`` with ``torch.export.load``)
FILE_RUNTIMES = {"torch-export": "torch", "onnx": "onnxruntime", "executorch": "executorch"}


def command_line(ctx: Any = None) -> str:
    """The command that is running (``ctx``: its ``typer.Context``) as a shell line: the flags given on the
    command line, in the command's order, values quoted."""
    if ctx is None:
        return "attentivenas export"
    parts = shlex.split(ctx.command_path) if ctx.command_path else ["attentivenas", "export"]
    for param in ctx.command.params:
        name = getattr(param, "name", None)
        source = ctx.get_parameter_source(name) if name else None
        if not getattr(param, "opts", None) or source is None or source.name != "COMMANDLINE":
            continue
        value = ctx.params.get(name)
        if getattr(param, "is_flag", False):
            parts.append(param.opts[0] if value or not param.secondary_opts else param.secondary_opts[0])
        else:
            parts += [param.opts[0], str(value)]
    return shlex.join(parts)


def machine_line(threads: int) -> str:
    """The machine the card's latency was measured on: CPU model, cores, OS, threads used."""
    return (f"{device_name('cpu')} ({os.cpu_count()} logical cores, {platform.system()} {platform.machine()}), "
            f"{threads} thread{'s' if threads != 1 else ''}")


def file_runner(path: Path, fmt: str, batch: int, resolution: int, threads: int) -> Runner:
    """A runtime file loaded in its runtime and bound to a seeded random batch."""
    x = torch.randn(batch, 3, resolution, resolution, generator=torch.Generator().manual_seed(0))
    if fmt == "torch-export":
        module = torch.export.load(io.BytesIO(path.read_bytes())).module()

        def run() -> Any:
            return module(x)

        return Runner("torch-export", run, threads, session=torch.inference_mode)
    return load_program(path.read_bytes(), x, FILE_RUNTIMES[fmt], threads)


def latency_fn(resolution: int, threads: int):  # noqa: ANN201 - returns a export.bundle.LatencyFn
    """``latency_fn`` of :func:`write_bundle`: each runtime file timed at batch 1 (its own batch when fixed)."""

    def measure(path: Path, fmt: str, precision: str, batch: int | str) -> dict[str, Any]:
        n = batch if isinstance(batch, int) else 1
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            runner = file_runner(path, fmt, n, resolution, threads)
            times = time_runner(runner, LATENCY_WARMUP, LATENCY_REPEATS)
        finally:
            torch.set_num_threads(previous)
        res = result_of(times, runner, n, "wall", LATENCY_REPEATS).to_dict()
        return {k: res[k] for k in ("median_ms", "p90_ms", "batch", "threads", "repeats")}

    return measure


def _split_images(dataset: Any, model: nn.Module, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded random subset of ``n`` images of a split (all of them when it has fewer), at the model's size."""
    total = len(dataset)
    idx = np.sort(np.random.default_rng(seed).choice(total, min(n, total), replace=False))
    items = [dataset[int(i)] for i in idx]
    x = torch.stack([it[0] for it in items])
    return to_model_resolution(x, model).cpu(), torch.as_tensor([int(it[1]) for it in items])


class CardMeasure:
    """Top-1 of a bundled model on the checkpoint's data, per split and precision."""

    def __init__(self, net: nn.Module, meta: dict[str, Any], data: str | None, measure: MeasureSettings,
                 splits: Sequence[str], device: torch.device) -> None:
        ev = SubnetEvaluator.for_supernet(net, meta, data, measure.model_copy(update={"split": "test"}),
                                          device, warn=warn_line)  # the hold-out is checked below
        self.evaluator, self.device, self.notes = ev, device, []
        self.splits: list[str] = []
        for split in splits:
            message = holdout_warning(meta, ev.bundle, split) if split == "holdout" else None
            if split == "holdout" and len(ev.bundle.val) == 0:  # type: ignore[arg-type]
                self.notes.append("no hold-out split: the checkpoint held out no training images")
            elif message is not None and len(splits) > 1:
                self.notes.append("no hold-out top-1: the checkpoint trained on those images")
            else:
                if message is not None:
                    warn_line(message)
                self.splits.append(split)
        if not self.splits:
            raise UserError(f"--card-split {'/'.join(splits)}: {self.notes[0] if self.notes else 'nothing to measure'}"
                            "; use --card-split test or --no-card-metrics")

    @property
    def data_name(self) -> str:
        return str(self.evaluator.bundle.name)

    def class_names(self, num_classes: int) -> list[str] | None:
        return class_names_of(self.evaluator.bundle.test, num_classes, self.data_name)

    def fp32(self, model: nn.Module, arch: Arch) -> list[dict[str, Any]]:
        """Top-1 and top-5 of ``model`` (PyTorch, fp32) on each split."""
        out = []
        for split in self.splits:
            ev = self.evaluator.on_split(split)
            res = evaluate_subnet(model, ev.loader_for(arch), self.device)
            out.append({"split": split, "precision": "fp32", "dataset": self.data_name, "top1": res["top1"],
                        "top5": res["top5"], "samples": int(res["samples"])})
        return out

    def int8(self, model: nn.Module, arch: Arch, folder: Path, files: Mapping[str, Mapping[str, Any]],
             check_images: int, max_drop: float = DEFAULT_MAX_INT8_DROP) -> list[dict[str, Any]]:
        """Top-1 of each INT8 runtime file, run by its runtime, on ``check_images`` images of each split (a
        seeded random subset), beside the fp32 model's on the same images."""
        out = []
        cpu_model = model.to("cpu")
        for split in self.splits:
            ev = self.evaluator.on_split(split)
            images, labels = _split_images(ev.loader_for(arch).dataset, cpu_model, check_images,
                                           int(ev.settings.calib_seed or 0))
            for name, f in files.items():
                if f["precision"] != "int8":
                    continue
                batch = f["batch"] if isinstance(f["batch"], int) else 1
                res = check_int8_accuracy(folder / name, f["format"], images, labels, cpu_model, batch=batch)
                out.append({"split": split, "precision": "int8", "file": name, "dataset": self.data_name,
                            "top1": res["top1_int8"], "samples": int(res["check_images"]),
                            "top1_fp32": res["top1_fp32"], **int8_drop_fields(res, max_drop),
                            "note": f"{name} on {split}: fp32 top-1 on the same {res['check_images']} images "
                                    f"{res['top1_fp32']:.2f}%, agreement {100 * res['agreement']:.1f}%"})
        return out


#: an INT8 file not at least this much faster (median, batch 1) than its fp32 file is not worth its drop
MIN_INT8_SPEEDUP = 1.1
#: the training images' size of the data sets whose images are all one size
SOURCE_SIZES = {"digits": (8, 8), "fashion_mnist": (28, 28), "cifar10": (32, 32), "cifar100": (32, 32)}


def _first_image_size(dataset: Any) -> tuple[int, int] | None:
    """(height, width) of an image folder's first training image (its header only), None when unknown."""
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


def bundle_preprocessing(dcfg: DataConfig, resolution: int, train: Any = None) -> dict[str, Any]:
    """How the images of the data config ``dcfg`` are prepared for a model at ``resolution`` (the
    evaluation's transform), as a bundle's ``preprocessing`` (:func:`~attentivenas.export.bundle.preprocessing_of`)."""
    norm = normalization_of(dcfg.name)
    size = SOURCE_SIZES.get(dcfg.name) or _first_image_size(train)
    if dcfg.name in TENSOR_SOURCES:  # grey images, resized whole (bilinear) by the loader
        return preprocessing_of(color="grayscale", resize=dcfg.image_size, resize_mode="whole_image", crop=None,
                                interpolation="bilinear", mean=norm["mean"], std=norm["std"], resolution=resolution,
                                source_size=size)
    return preprocessing_of(color="rgb", resize=eval_resize_of(dcfg), resize_mode="shorter_side",
                            crop=dcfg.image_size, interpolation=dcfg.interpolation, mean=norm["mean"],
                            std=norm["std"], resolution=resolution, source_size=size)


def int8_summary(cfg: Mapping[str, Any], max_drop: float) -> list[tuple[str, bool]]:
    """Per INT8 file of a bundle's config: a line with its top-1 drop and speed-up beside its fp32 file,
    and whether fp32 is the better file (a drop above ``max_drop`` points, or a speed-up under
    :data:`MIN_INT8_SPEEDUP`)."""
    lat = {e["file"]: e for e in (cfg.get("latency") or {}).get("entries", [])}
    out = []
    for name, f in cfg.get("files", {}).items():
        if f.get("precision") != "int8":
            continue
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
        out.append((line, bool(reasons)))
    return out


def export_bundles(net: nn.Module, meta: dict[str, Any], checkpoint: Path, out: Path, *, arch: str | None,
                   pareto: Path | None, formats: str, precisions: Sequence[str], batch: int | str | None,
                   calibrate_bn: bool, data: str | None, measure: MeasureSettings, card_split: str,
                   card_metrics: bool, latency: bool, threads: int = 1, calib_images: int | None = None,
                   check_images: int = DEFAULT_CHECK_IMAGES, command: str | None = None,
                   max_int8_drop: float = DEFAULT_MAX_INT8_DROP, calibrate_flag: bool | None = None,
                   echo: Callable[[str], None] = typer.echo) -> list[dict[str, Any]]:
    """Write one bundle (``--arch``) in ``out``, or one per Pareto subnet under ``out`` plus ``out/index.json``
    (``out`` locked, its earlier ``index.json`` removed first and the new one written last).

    The card's top-1 is that of the weights bundled (PyTorch for fp32, each INT8 file in its runtime on
    ``check_images`` seeded images of each split); with ``calibrate_bn`` (or INT8 files) the training batches are
    drawn as ``evaluate`` draws them (the evaluator's own when the card is measured). Returns each bundle's
    summary (folder, MFLOPs, files, accuracy, INT8 drops)."""
    if card_split not in CARD_SPLITS:
        raise UserError(f"--card-split {card_split!r} is not one of {list(CARD_SPLITS)}")
    fmts = parse_formats(formats)
    space, num_classes = net.space, int(net.num_classes)
    archs = [resolve_arch(str(arch), space)] if pareto is None else read_pareto_archs(pareto, space)
    device = next(net.parameters()).device
    p = measure.resolved(meta)  # the checkpoint's evaluation: its crops, interpolation and seed
    try:
        dcfg = stage2_data_config(data, space, meta, interpolation=p.interpolation)
    except UserError as exc:
        if calibrate_flag is None and data is None and calibrate_bn:
            raise UserError(f"{exc} (export recalibrates BN on it by default), or --no-calibrate-bn to keep the "
                            "stored statistics") from None
        raise
    card = CardMeasure(net, meta, data, measure, CARD_SPLITS[card_split], device) if card_metrics else None
    if card is not None:
        data_name = card.data_name
        class_names = card.class_names(num_classes)
    else:
        data_name = dcfg.name
        class_names = class_names_of(None, num_classes, data_name)
    calibrate_bn = calibrate_bn or "int8" in precisions  # INT8 files: BN recalibrated first, as export does
    calib_batches, int8_options, train = None, None, None
    if calibrate_bn:
        seed = int(p.calib_seed or 0)
        if card is not None:  # the evaluator's batches: the same draw
            train, calib_batches = card.evaluator.bundle.train, card.evaluator.calib
        else:
            bundle = calibration_data(data, space, meta, seed, p.interpolation, calibrate_flag)
            train = bundle.train  # type: ignore[attr-defined]
            calib_batches = cache_calibration_batches(bundle.calibration_set(),  # type: ignore[attr-defined]
                                                      p.calib_batches, p.calib_batch_size, seed, device)
        if "int8" in precisions:  # activation ranges: seeded training images, drawn as export draws them
            n = calib_images or DEFAULT_CALIB_IMAGES
            int8_options = {"calib_images": cache_calibration_batches(train, 1, n, seed + 1)[0].cpu()}
    if train is None and card is not None:
        train = card.evaluator.bundle.train
    source = {"checkpoint": checkpoint.name, "sha256": file_sha256(checkpoint), "kind": checkpoint_kind(meta)}
    notes = [_bn_note(calib_batches is not None, bool(meta.get("subnet")))]
    notes += card.notes if card is not None else []
    configs, names, summaries = [], [], []
    with contextlib.ExitStack() as stack:
        if pareto is not None:
            stack.enter_context(export_lock(out, folder=True))
            start_bundle_set(out)
        for i, a in enumerate(archs):
            sub = net.extract(a).eval()
            if calib_batches is not None:
                sub = recalibrate_bn(sub, calib_batches).eval()
            folder = out if pareto is None else out / bundle_folder_name(i, count_flops(space, a, num_classes))
            pre = bundle_preprocessing(dcfg, int(a.resolution), train)
            info = CardInfo(class_names=class_names, normalization={k: pre[k] for k in ("mean", "std")},
                            interpolation=pre["resize"]["interpolation"], preprocessing=pre, source=source,
                            command=command, notes=list(notes), machine=machine_line(threads) if latency else None)
            if card is not None:
                info.accuracy = card.fp32(sub, a)
            int8_fn = None
            if card is not None and "int8" in precisions and check_images > 0:
                def int8_fn(where: Path, files: Mapping[str, Mapping[str, Any]], sub: nn.Module = sub,
                            a: Arch = a) -> list[dict[str, Any]]:
                    assert card is not None
                    return card.int8(sub, a, where, files, check_images, max_int8_drop)
            cfg = write_bundle(sub, folder, formats=fmts, precisions=precisions, batch=batch, info=info,
                               latency_fn=latency_fn(int(a.resolution), threads) if latency else None,
                               accuracy_fn=int8_fn, int8_options=int8_options)
            configs.append(cfg)
            names.append(folder.name)
            top1 = next((f", top-1 {e['top1']:.2f}% ({e['split']})" for e in info.accuracy), "")
            echo(f"wrote {folder}/ ({cfg['mflops']:.2f} MFLOPs, {', '.join(['model.safetensors', *cfg['files']])}"
                 f"{top1})")
            lines = int8_summary(cfg, max_int8_drop)
            for line, worse in lines:
                (warn_line if worse else echo)(line)
            summaries.append(_summary(folder, cfg, max_int8_drop))
        if pareto is not None:
            echo(f"index: {write_bundle_index(out, configs, names)}")
    return summaries


def _bn_note(calibrated: bool, subnet: bool) -> str:
    if calibrated:
        return ("BN statistics recalibrated on the checkpoint's training data before export (the default for a "
                "supernet's subnet; always with --precision int8)")
    if subnet:
        return "BN statistics: the fine-tuned subnet's own (calibrated when it was fine-tuned)"
    return ("BN statistics: the supernet's as stored (--no-calibrate-bn): they may be placeholders for this subnet, "
            "whose top-1 can then be at chance")


def _summary(folder: Path, cfg: Mapping[str, Any], max_drop: float) -> dict[str, Any]:
    """A bundle's entry in ``export --json``: folder, MFLOPs, files, accuracy, the INT8 drop."""
    drops = [a["int8_drop"] for a in cfg.get("accuracy", []) if "int8_drop" in a]
    out = {"folder": str(folder), "mflops": cfg["mflops"], "files": sorted(cfg.get("files", {})),
           "accuracy": cfg.get("accuracy", [])}
    if drops:
        out.update({"int8_drop": max(drops), "max_int8_drop": max_drop, "int8_drop_exceeded": max(drops) > max_drop})
    return out


def export_bundle_cmd(checkpoint: Path, out: Path, arch: str | None, pareto: Path | None, *, batch: str | None,
                      onnx_exporter: str, space: str | None, calibrate_bn: bool | None, data: str | None,
                      calib_batches: int, calib_batch_size: int, interpolation: str | None, calib_seed: int | None,
                      with_formats: str, card_split: str, card_metrics: bool, latency: bool,
                      precision: str = "fp32", calib_images: int | None = None,
                      check_images: int = DEFAULT_CHECK_IMAGES, max_int8_drop: float = DEFAULT_MAX_INT8_DROP,
                      ctx: Any = None, echo: Callable[[str], None] = typer.echo) -> list[dict[str, Any]]:
    """``export --format bundle``: the flags checked before the checkpoint is loaded, then :func:`export_bundles`
    (BN recalibrated as :func:`~attentivenas.cli.export_cmd.resolve_calibration` decides)."""
    if onnx_exporter != "dynamo":
        raise UserError("--onnx-exporter applies to --format onnx; a bundle's ONNX file uses the dynamo exporter")
    if arch is not None and pareto is not None:
        raise UserError("give exactly one of --arch ARCH or --pareto PARETO.json")
    if precision not in PRECISIONS:
        raise UserError(f"--precision {precision!r} is not supported; allowed: {list(PRECISIONS)}")
    if card_split not in CARD_SPLITS:
        raise UserError(f"--card-split {card_split!r} is not one of {list(CARD_SPLITS)}")
    formats = parse_formats(with_formats)
    precisions = ("fp32", "int8") if precision == "int8" else ("fp32",)
    parsed_batch = None if batch is None else _bundle_batch(batch)
    check_bundle_options(formats, precisions, parsed_batch)
    check_output(out, "dir")
    measure = measure_from_flags(interpolation=interpolation, calib_seed=calib_seed, calib_batches=calib_batches,
                                 calib_batch_size=calib_batch_size)  # checks the flags before loading
    net, meta, arch = load_export_source(checkpoint, space, arch, pareto)  # a supernet or a fine-tuned subnet
    check_archs(net, arch, pareto)  # before any data is read
    calibrate = resolve_calibration(calibrate_bn, meta, precision == "int8")
    return export_bundles(net, meta, checkpoint, out, arch=arch, pareto=pareto, formats=",".join(formats),
                          precisions=precisions, batch=parsed_batch, calibrate_bn=calibrate, data=data,
                          measure=measure, card_split=card_split, card_metrics=card_metrics, latency=latency,
                          calib_images=calib_images, check_images=check_images, command=command_line(ctx),
                          max_int8_drop=max_int8_drop, calibrate_flag=calibrate_bn, echo=echo)


def _bundle_batch(text: str) -> int | str:
    """``--batch`` of a bundle's runtime files: N or ``dynamic`` (checked per format by the bundle)."""
    value = text.strip().lower()
    if value == DYNAMIC:
        return DYNAMIC
    try:
        n = int(value)
    except ValueError:
        raise UserError(f"--batch must be a positive integer or 'dynamic', got {text!r}") from None
    if not 1 <= n <= MAX_BATCH:
        raise UserError(f"--batch {n} is out of range: 1 to {MAX_BATCH}, or dynamic")
    return n


__all__ = ["CARD_SPLITS", "CardMeasure", "bundle_preprocessing", "command_line", "export_bundle_cmd",
           "export_bundles", "file_sha256", "int8_summary", "latency_fn", "machine_line", "normalization_of"]
