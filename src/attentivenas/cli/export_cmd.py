"""The ``export`` command: one subnet (or a whole Pareto set) as standalone models.

The torch-based layers are imported inside the command, so ``attentivenas --help`` starts fast.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path

import typer

from ..config import DEFAULT_CALIB_BATCH_SIZE, DEFAULT_CALIB_BATCHES, measure_from_flags
from ..costs import count_flops
from ..errors import UserError
from ..io import check_output
from ..space import resolve_arch
from .common import ARCH_HELP, DATA_CHOICES, INTERPOLATION_HELP, SPACE_HELP, calib_seed_help, load_export_source


def export_cmd(
    ctx: typer.Context,
    checkpoint: Path = typer.Option(..., "--checkpoint", help="Our checkpoint or one released by the authors."),
    out: Path = typer.Option(..., "--out", help="Output file (with --arch) or folder (with --pareto or --format bundle)."),
    arch: str | None = typer.Option(None, "--arch", help=ARCH_HELP),
    pareto: Path | None = typer.Option(None, "--pareto", help="Export every arch of a pareto.json instead."),
    fmt: str = typer.Option("torch-export", "--format", help="torch-export (.pt2, loaded with torch.export.load), "
                           "onnx, safetensors, executorch (.pte, XNNPACK; extra [executorch]), openvino (.xml + .bin; extra "
                           "[openvino]) or torchscript "
                           "(deprecated: torch.jit is deprecated in PyTorch); bundle: a model folder (model.safetensors, "
                           "config.json, the runtime files of --with, a README.md model card)."),
    batch: str | None = typer.Option(
        None, "--batch", show_default=False,
        help="Batch of the exported file: N, or dynamic (a symbolic batch axis; onnx and torch-export only). "
        "For onnx, torch-export and executorch; default: dynamic for onnx and torch-export, 1 for executorch."),
    onnx_exporter: str = typer.Option("dynamo", "--onnx-exporter",
                                      help="For --format onnx: dynamo (torch.export-based) or torchscript "
                                      "(PyTorch's deprecated TorchScript-based exporter)."),
    space: str | None = typer.Option(None, "--space", help=SPACE_HELP + " Default: from the checkpoint."),
    calibrate_bn: bool = typer.Option(False, "--calibrate-bn", help="Recalibrate BN statistics on data first."),
    data: str | None = typer.Option(
        None, "--data", help=f"Data for --calibrate-bn: {DATA_CHOICES} "
        "(default: the checkpoint's training data)."),
    calib_batches: int = typer.Option(DEFAULT_CALIB_BATCHES, "--calib-batches", min=1,
                                      help="Training batches for --calibrate-bn."),
    calib_batch_size: int = typer.Option(DEFAULT_CALIB_BATCH_SIZE, "--calib-batch-size", min=1,
                                         help="Batch size for --calibrate-bn."),
    interpolation: str | None = typer.Option(None, "--interpolation", show_default=False,
                                             help="For --calibrate-bn: " + INTERPOLATION_HELP),
    calib_seed: int | None = typer.Option(None, "--calib-seed", show_default=False,
                                          help="For --calibrate-bn: " + calib_seed_help("0")),
    precision: str = typer.Option("fp32", "--precision", help="fp32, or int8: post-training static quantization "
                                  "(formats executorch, onnx, openvino); BN is recalibrated first, then activations "
                                  "on --calib-images training images, and the file's top-1 is checked."),
    calib_images: int | None = typer.Option(None, "--calib-images", min=1, show_default=False,
                                            help="For --precision int8: training images the activation ranges "
                                            "are calibrated on (default 256)."),
    check_split: str = typer.Option("test", "--check-split", help="For --precision int8: the split of the "
                                    "accuracy check, holdout or test."),
    check_images: int = typer.Option(500, "--check-images", min=0, help="For --precision int8: images of the "
                                     "accuracy check (a seeded random subset of --check-split; 0: no check)."),
    with_formats: str = typer.Option("torch-export", "--with", help="For --format bundle: its runtime files, a "
                                     "comma list of torch-export, onnx, executorch."),
    card_split: str = typer.Option("both", "--card-split", help="For --format bundle: the splits of the card's "
                                   "top-1: holdout, test or both (the hold-out only where the checkpoint held "
                                   "images out)."),
    card_metrics: bool = typer.Option(True, "--card-metrics/--no-card-metrics",
                                      help="For --format bundle: measure the card's top-1 on the checkpoint's data."),
    card_latency: bool = typer.Option(True, "--latency/--no-latency", help="For --format bundle: time each "
                                      "runtime file for the card (batch 1, a few runs, on this machine)."),
) -> None:
    """Export one subnet (or a whole Pareto set) as standalone models."""
    from ..accuracy import resolve_data  # heavy (torch): loaded when the command runs
    from ..nn import FORMATS, cache_calibration_batches, export_pareto_set, export_subnet
    from ..nn.export import ONNX_EXPORTERS, TORCHSCRIPT_DEPRECATED, parse_batch

    if fmt == "bundle":
        from .export_bundle import export_bundle_cmd  # heavy (torch): loaded when the command runs

        export_bundle_cmd(checkpoint, out, arch, pareto, batch=batch, onnx_exporter=onnx_exporter, space=space,
                          calibrate_bn=calibrate_bn, data=data, calib_batches=calib_batches,
                          calib_batch_size=calib_batch_size, interpolation=interpolation, calib_seed=calib_seed,
                          with_formats=with_formats, card_split=card_split, card_metrics=card_metrics,
                          latency=card_latency, precision=precision, calib_images=calib_images,
                          check_images=check_images, ctx=ctx)
        return
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r} is not supported; allowed: {[*FORMATS, 'bundle']}")
    _refuse_bundle_flags(ctx, fmt)
    if onnx_exporter not in ONNX_EXPORTERS:
        raise UserError(f"--onnx-exporter {onnx_exporter!r} is not supported; allowed: {list(ONNX_EXPORTERS)}")
    if onnx_exporter != "dynamo" and fmt != "onnx":
        raise UserError(f"--onnx-exporter applies to --format onnx, not to {fmt}")
    kwargs: dict = {}
    if batch is not None or fmt in ("onnx", "torch-export", "executorch", "openvino"):
        kwargs["batch"] = parse_batch(batch, fmt)  # checked before loading the checkpoint
    if fmt == "onnx":
        kwargs["exporter"] = onnx_exporter
    calibrate_bn = _check_precision(precision, fmt, check_split) or calibrate_bn  # int8: BN recalibrated first
    int8: dict = {}
    if arch is not None and pareto is not None:
        raise UserError("give exactly one of --arch ARCH or --pareto PARETO.json")
    check_output(out, "dir" if pareto is not None else "file")
    measure = measure_from_flags(interpolation=interpolation, calib_seed=calib_seed, calib_batches=calib_batches,
                                 calib_batch_size=calib_batch_size)  # checks the flags before loading
    if fmt == "torchscript":
        typer.echo(f"warning: {TORCHSCRIPT_DEPRECATED}", err=True)
    net, meta, arch = load_export_source(checkpoint, space, arch, pareto)  # a supernet or a fine-tuned subnet
    batches = None
    if calibrate_bn:
        p = measure.resolved(meta)  # the checkpoint's evaluation: 224 crops, its interpolation and seed
        seed = int(p.calib_seed or 0)
        bundle = resolve_data(data, net.space, meta, seed=seed, interpolation=p.interpolation)
        batches = cache_calibration_batches(bundle.train, p.calib_batches, p.calib_batch_size, seed)
        if precision == "int8":
            int8 = _int8_data(bundle, calib_images, check_split, check_images, seed)
    if pareto is not None:
        with _no_torchscript_warning():  # said once above
            records = export_pareto_set(net, pareto, out, fmt, calib_batches=batches, precision=precision, **int8,
                                        **kwargs)
        for r in records:
            typer.echo(f"wrote {out / r['file']} ({r['mflops']:.2f} MFLOPs{_batch_text(r)})")
            _echo_int8_check(r)
        typer.echo(f"index: {out / 'index.json'}")
        return
    a = resolve_arch(arch, net.space)
    with _no_torchscript_warning():
        info = export_subnet(net.extract(a).eval(), out, fmt, calib_batches=batches, precision=precision, **int8,
                             **kwargs)
    typer.echo(f"wrote {info['path']} ({fmt}, {count_flops(net.space, a, net.num_classes):.2f} MFLOPs"
               f"{_batch_text(info)})")
    _echo_int8_check(info)


def _check_precision(precision: str, fmt: str, check_split: str) -> bool:
    """Whether ``precision`` is int8 (one-line errors for a bad precision, format or check split)."""
    from ..nn.quantize import INT8_FORMATS, PRECISIONS  # heavy (torch)

    if precision not in PRECISIONS:
        raise UserError(f"--precision {precision!r} is not supported; allowed: {list(PRECISIONS)}")
    if precision == "int8" and fmt not in INT8_FORMATS:
        raise UserError(f"--precision int8 applies to --format {', '.join(INT8_FORMATS)}, not to {fmt}")
    if check_split not in ("holdout", "test"):
        raise UserError(f"--check-split {check_split!r} is not supported; allowed: holdout, test")
    return precision == "int8"


def _int8_data(bundle: object, calib_images: int | None, check_split: str, check_images: int, seed: int) -> dict:
    """The INT8 export's calibration images (seeded, from the training split) and its check data
    (a seeded random subset of ``check_split``; none for 0 images)."""
    import numpy as np  # heavy (loaded with torch)
    import torch  # heavy

    from ..accuracy.protocol import split_of  # heavy (torch)
    from ..nn import cache_calibration_batches  # heavy (torch)
    from ..nn.quantize import DEFAULT_CALIB_IMAGES  # heavy (torch)

    n = calib_images or DEFAULT_CALIB_IMAGES
    out: dict = {"calib_images": cache_calibration_batches(bundle.train, 1, n, seed + 1)[0]}  # type: ignore[attr-defined]
    if check_images > 0:
        split = split_of(bundle, check_split)  # type: ignore[arg-type]
        total = len(split)  # type: ignore[arg-type]
        idx = np.sort(np.random.default_rng(seed).choice(total, min(check_images, total), replace=False))
        items = [split[int(i)] for i in idx]
        out["check_data"] = (torch.stack([it[0] for it in items]), torch.as_tensor([int(it[1]) for it in items]))
    return out


def _echo_int8_check(info: dict) -> None:
    if "top1_int8" in info:
        from ..nn.quantize import accuracy_line  # heavy (torch)

        typer.echo(accuracy_line(info))


def _refuse_bundle_flags(ctx: typer.Context, fmt: str) -> None:
    """One line for a flag of ``--format bundle`` given with another format."""
    for name, flag in (("with_formats", "--with"), ("card_split", "--card-split"), ("card_metrics", "--no-card-metrics"),
                       ("card_latency", "--no-latency")):
        source = ctx.get_parameter_source(name)
        if source is not None and source.name == "COMMANDLINE":
            raise UserError(f"{flag} applies to --format bundle, not to {fmt}")


def _batch_text(info: dict) -> str:
    return f", batch {info['batch']}" if "batch" in info else ""


@contextlib.contextmanager
def _no_torchscript_warning() -> Iterator[None]:
    """The library's FutureWarning about TorchScript, already printed as one line by the command."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="the torchscript format is deprecated", category=FutureWarning)
        yield


def register(app: typer.Typer) -> None:
    """Add ``export`` to ``app``."""
    app.command("export")(export_cmd)
