"""The ``export`` command: one subnet (or a whole Pareto set) as standalone models, or model folders
(bundles). What it does lives in :mod:`attentivenas.export.commands`, imported when the command runs, so
``attentivenas --help`` starts without torch."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import typer

from ..config import DEFAULT_CALIB_BATCH_SIZE, DEFAULT_CALIB_BATCHES, measure_from_flags
from ..errors import UserError
from .common import (
    ARCH_HELP,
    DATA_CHOICES,
    INTERPOLATION_HELP,
    SPACE_HELP,
    calib_seed_help,
    load_export_source,
    print_json,
    warn_line,
)

#: the largest ``--batch`` of an exported file (``export.formats.MAX_BATCH``, repeated here so ``--help`` needs no torch)
MAX_BATCH = 256
#: the largest ``--calib-images`` / ``--check-images`` (at 224 px, 10,000 images are 6 GB of float32)
MAX_INT8_IMAGES = 10_000
#: ``config.int8.DEFAULT_MAX_INT8_DROP`` and ``DEFAULT_CHECK_IMAGES`` (repeated: ``--help`` needs no torch)
DEFAULT_MAX_INT8_DROP = 2.0
DEFAULT_CHECK_IMAGES = 500
#: flags that only an INT8 export uses, and those only a bundle uses
INT8_FLAGS = (("calib_images", "--calib-images"), ("check_images", "--check-images"),
              ("check_split", "--check-split"), ("max_int8_drop", "--max-int8-drop"))
BUNDLE_FLAGS = (("with_formats", "--with"), ("card_split", "--card-split"), ("card_metrics", "--no-card-metrics"),
                ("card_latency", "--no-latency"))
Opt = typer.Option

FORMAT_HELP = ("torch-export (.pt2, loaded with torch.export.load), onnx, safetensors (a folder: model.safetensors "
               "and config.json, read by attentivenas.load_pretrained), executorch (.pte, XNNPACK; extra "
               "[executorch]), openvino (.xml + .bin; extra [openvino]) or torchscript (deprecated: torch.jit is "
               "deprecated in PyTorch); bundle: a model folder (model.safetensors, config.json, the runtime files "
               "of --with, a README.md model card).")
BATCH_HELP = (f"Batch of the exported file: N (1 to {MAX_BATCH}), or dynamic (a symbolic batch axis; onnx and "
              "torch-export only). For onnx, torch-export and executorch; default: dynamic for onnx and torch-export, "
              "1 for executorch.")
CALIBRATE_HELP = ("Recalibrate BN statistics on the checkpoint's training data before export, as stage 2 measures "
                  "(the checkpoint's crops, interpolation and calibration seed; --data, --calib-batches, ...). "
                  "Default: on for a supernet's subnet (a supernet's stored BN statistics are not its subnets': "
                  "without recalibration a subnet can be at chance); off for a fine-tuned subnet checkpoint "
                  "(finetune calibrated them; --calibrate-bn recalibrates anyway). Always on with --precision "
                  "int8. --no-calibrate-bn keeps the stored statistics and says so in one warning line.")
PRECISION_HELP = ("fp32, or int8: post-training static quantization (formats executorch, onnx, openvino); BN is "
                  "recalibrated first, then activations on --calib-images training images, and the file's top-1 is "
                  "checked.")
DROP_HELP = ("For --precision int8: the largest drop of top-1 (points) below fp32 in the accuracy check before a "
             "warning line says the fp32 file is the better one (the JSON's int8_drop holds the drop).")
B = "For --format bundle: "


CHECKPOINT_OPT = Opt(..., "--checkpoint", help="Our checkpoint or one released by the authors.")
OUT_OPT = Opt(..., "--out", help="Output file (with --arch) or folder (with --pareto, --format safetensors or "
                   "bundle).")
ARCH_OPT = Opt(None, "--arch", help=ARCH_HELP)
PARETO_OPT = Opt(None, "--pareto", help="Export every arch of a pareto.json instead.")
FMT_OPT = Opt("torch-export", "--format", help=FORMAT_HELP)
BATCH_OPT = Opt(None, "--batch", show_default=False, help=BATCH_HELP)
ONNX_EXPORTER_OPT = Opt("dynamo", "--onnx-exporter", help="For --format onnx: dynamo (torch.export-based) or "
                   "torchscript (PyTorch's deprecated TorchScript-based exporter).")
SPACE_OPT = Opt(None, "--space", help=SPACE_HELP + " Default: from the checkpoint.")
CALIBRATE_BN_OPT = Opt(None, "--calibrate-bn/--no-calibrate-bn", show_default=False, help=CALIBRATE_HELP)
DATA_OPT = Opt(None, "--data", help=f"Data of the BN recalibration: {DATA_CHOICES} (default: the "
                   "checkpoint's training data).")
CALIB_BATCHES_OPT = Opt(DEFAULT_CALIB_BATCHES, "--calib-batches", min=1, help="Training batches of the BN "
                   "recalibration.")
CALIB_BATCH_SIZE_OPT = Opt(DEFAULT_CALIB_BATCH_SIZE, "--calib-batch-size", min=1, help="Batch size of the BN "
                   "recalibration.")
INTERPOLATION_OPT = Opt(None, "--interpolation", show_default=False, help="For the BN recalibration: "
                   + INTERPOLATION_HELP)
CALIB_SEED_OPT = Opt(None, "--calib-seed", show_default=False, help="For the BN recalibration: "
                   + calib_seed_help("0"))
PRECISION_OPT = Opt("fp32", "--precision", help=PRECISION_HELP)
CALIB_IMAGES_OPT = Opt(None, "--calib-images", min=1, max=MAX_INT8_IMAGES, show_default=False, help="For "
                   "--precision int8: training images the activation ranges are calibrated on (default "
                   "256; the search's seed, so a set chosen on INT8 top-1 is quantized on its images).")
CHECK_SPLIT_OPT = Opt("test", "--check-split", help="For --precision int8: the split of the accuracy check, "
                   "holdout or test.")
CHECK_IMAGES_OPT = Opt(DEFAULT_CHECK_IMAGES, "--check-images", min=0, max=MAX_INT8_IMAGES, help="For --precision "
                   "int8: images of the accuracy check (a seeded random subset of --check-split; 0: no check).")
MAX_INT8_DROP_OPT = Opt(DEFAULT_MAX_INT8_DROP, "--max-int8-drop", min=0.0, max=100.0, help=DROP_HELP)
WITH_FORMATS_OPT = Opt("torch-export", "--with", help=B + "its runtime files, a comma list of torch-export, onnx, "
                   "executorch.")
CARD_SPLIT_OPT = Opt("both", "--card-split", help=B + "the splits of the card's top-1: holdout, test or both (the "
                   "hold-out only where the checkpoint held images out).")
CARD_METRICS_OPT = Opt(True, "--card-metrics/--no-card-metrics", help=B + "measure the card's top-1 on the "
                   "checkpoint's data.")
CARD_LATENCY_OPT = Opt(True, "--latency/--no-latency", help=B + "time each runtime file for the card (batch 1, a "
                   "few runs, on this machine).")
AS_JSON_OPT = Opt(False, "--json", help="Print one JSON object (the files written, their checks; INT8: "
                   "int8_drop) on stdout; messages go to stderr.")


def export_cmd(
    ctx: typer.Context,
    checkpoint: Path = CHECKPOINT_OPT,
    out: Path = OUT_OPT,
    arch: str | None = ARCH_OPT,
    pareto: Path | None = PARETO_OPT,
    fmt: str = FMT_OPT,
    batch: str | None = BATCH_OPT,
    onnx_exporter: str = ONNX_EXPORTER_OPT,
    space: str | None = SPACE_OPT,
    calibrate_bn: bool | None = CALIBRATE_BN_OPT,
    data: str | None = DATA_OPT,
    calib_batches: int = CALIB_BATCHES_OPT,
    calib_batch_size: int = CALIB_BATCH_SIZE_OPT,
    interpolation: str | None = INTERPOLATION_OPT,
    calib_seed: int | None = CALIB_SEED_OPT,
    precision: str = PRECISION_OPT,
    calib_images: int | None = CALIB_IMAGES_OPT,
    check_split: str = CHECK_SPLIT_OPT,
    check_images: int = CHECK_IMAGES_OPT,
    max_int8_drop: float = MAX_INT8_DROP_OPT,
    with_formats: str = WITH_FORMATS_OPT,
    card_split: str = CARD_SPLIT_OPT,
    card_metrics: bool = CARD_METRICS_OPT,
    card_latency: bool = CARD_LATENCY_OPT,
    as_json: bool = AS_JSON_OPT,
) -> None:
    """Export one subnet (or a whole Pareto set) as standalone models."""
    from ..export import commands as ex  # heavy (torch): loaded when the command runs

    _refuse(ctx, INT8_FLAGS, f"--precision int8, not to {precision}", precision != "int8")
    recipe = ex.int8_recipe(precision, calibrate_bn, calib_images, check_split, check_images, max_int8_drop)
    if fmt == "bundle":
        formats, precisions, parsed = ex.bundle_options(with_formats, batch, onnx_exporter, card_split, recipe, arch,
                                                        pareto, out)
    else:
        ex.check_format_name(fmt)
        _refuse(ctx, BUNDLE_FLAGS, f"--format bundle, not to {fmt}", True)
        kwargs = ex.file_options(fmt, batch, onnx_exporter, recipe is not None, arch, pareto, out, warn_line)
    measure = measure_from_flags(interpolation=interpolation, calib_seed=calib_seed, calib_batches=calib_batches,
                                 calib_batch_size=calib_batch_size)  # checks the flags before loading
    net, meta, arch = load_export_source(checkpoint, space, arch, pareto)  # a supernet or a fine-tuned subnet
    ex.check_archs(net, arch, pareto)  # before any data is read
    calibrate = ex.resolve_calibration(calibrate_bn, meta, recipe is not None, warn_line)
    echo = (lambda line: typer.echo(line, err=True)) if as_json else typer.echo
    common: dict[str, Any] = {"pareto": pareto is not None, "data": data, "measure": measure, "calibrate": calibrate,
                              "flag": calibrate_bn, "echo": echo, "warn": warn_line}
    if fmt == "bundle":
        s = ex.BundleSet(formats, precisions, parsed, recipe, card_latency, checkpoint, command_line(ctx))
        result: dict[str, Any] = {"bundles": ex.write_bundles(net, meta, pareto or str(arch), out, s, **common,
                                                              card_split=card_split if card_metrics else None)}
    else:
        result = ex.export_files(net, meta, pareto or str(arch), out, fmt, recipe=recipe, kwargs=kwargs, **common)
    if as_json:
        print_json(result)


def _refuse(ctx: typer.Context, flags: tuple[tuple[str, str], ...], applies_to: str, refuse: bool) -> None:
    """One line for a flag given on the command line that would do nothing (``refuse``): it applies to
    ``applies_to``."""
    for name, flag in flags if refuse else ():
        source = ctx.get_parameter_source(name)
        if source is not None and source.name == "COMMANDLINE":
            raise UserError(f"{flag} applies to {applies_to}")


def command_line(ctx: Any = None) -> str:
    """The command that is running (``ctx``: its ``typer.Context``) as a shell line: the flags given on the
    command line, in the command's order, values quoted (a bundle's card records it)."""
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


def register(app: typer.Typer) -> None:
    """Add ``export`` to ``app``."""
    app.command("export")(export_cmd)
