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
from .common import ARCH_HELP, DATA_CHOICES, INTERPOLATION_HELP, SPACE_HELP, calib_seed_help


def export_cmd(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="Our checkpoint or one released by the authors."),
    out: Path = typer.Option(..., "--out", help="Output file (with --arch) or folder (with --pareto)."),
    arch: str | None = typer.Option(None, "--arch", help=ARCH_HELP),
    pareto: Path | None = typer.Option(None, "--pareto", help="Export every arch of a pareto.json instead."),
    fmt: str = typer.Option("torch-export", "--format", help="torch-export (.pt2, loaded with torch.export.load), "
                           "onnx, safetensors, executorch (.pte, XNNPACK; extra [executorch]) or torchscript "
                           "(deprecated: torch.jit is deprecated in PyTorch)."),
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
) -> None:
    """Export one subnet (or a whole Pareto set) as standalone models."""
    from ..accuracy import resolve_data  # heavy (torch): loaded when the command runs
    from ..nn import FORMATS, cache_calibration_batches, export_pareto_set, export_subnet, load_supernet
    from ..nn.export import ONNX_EXPORTERS, TORCHSCRIPT_DEPRECATED, parse_batch

    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r} is not supported; allowed: {list(FORMATS)}")
    if onnx_exporter not in ONNX_EXPORTERS:
        raise UserError(f"--onnx-exporter {onnx_exporter!r} is not supported; allowed: {list(ONNX_EXPORTERS)}")
    if onnx_exporter != "dynamo" and fmt != "onnx":
        raise UserError(f"--onnx-exporter applies to --format onnx, not to {fmt}")
    kwargs: dict = {}
    if batch is not None or fmt in ("onnx", "torch-export", "executorch"):
        kwargs["batch"] = parse_batch(batch, fmt)  # checked before loading the checkpoint
    if fmt == "onnx":
        kwargs["exporter"] = onnx_exporter
    if (arch is None) == (pareto is None):
        raise UserError("give exactly one of --arch ARCH or --pareto PARETO.json")
    check_output(out, "dir" if pareto is not None else "file")
    measure = measure_from_flags(interpolation=interpolation, calib_seed=calib_seed, calib_batches=calib_batches,
                                 calib_batch_size=calib_batch_size)  # checks the flags before loading
    if fmt == "torchscript":
        typer.echo(f"warning: {TORCHSCRIPT_DEPRECATED}", err=True)
    net, meta = load_supernet(checkpoint, space)
    batches = None
    if calibrate_bn:
        p = measure.resolved(meta)  # the checkpoint's evaluation: 224 crops, its interpolation and seed
        seed = int(p.calib_seed or 0)
        bundle = resolve_data(data, net.space, meta, seed=seed, interpolation=p.interpolation)
        batches = cache_calibration_batches(bundle.train, p.calib_batches, p.calib_batch_size, seed)
    if pareto is not None:
        with _no_torchscript_warning():  # said once above
            records = export_pareto_set(net, pareto, out, fmt, calib_batches=batches, **kwargs)
        for r in records:
            typer.echo(f"wrote {out / r['file']} ({r['mflops']:.2f} MFLOPs{_batch_text(r)})")
        typer.echo(f"index: {out / 'index.json'}")
        return
    a = resolve_arch(arch, net.space)
    with _no_torchscript_warning():
        info = export_subnet(net.extract(a).eval(), out, fmt, calib_batches=batches, **kwargs)
    typer.echo(f"wrote {info['path']} ({fmt}, {count_flops(net.space, a, net.num_classes):.2f} MFLOPs"
               f"{_batch_text(info)})")


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
