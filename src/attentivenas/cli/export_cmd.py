"""The ``export`` command: one subnet (or a whole Pareto set) as standalone models.

The torch-based layers are imported inside the command, so ``attentivenas --help`` starts fast.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import typer

from ..config import DEFAULT_CALIB_BATCH_SIZE, DEFAULT_CALIB_BATCHES, MeasureSettings, measure_from_flags
from ..costs import count_flops
from ..errors import UserError
from ..io import check_output
from ..space import resolve_arch
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
#: ``runtimes.quantize.DEFAULT_MAX_INT8_DROP`` and ``DEFAULT_CHECK_IMAGES`` (repeated: ``--help`` needs no torch)
DEFAULT_MAX_INT8_DROP = 2.0
DEFAULT_CHECK_IMAGES = 500


#: ``--calibrate-bn/--no-calibrate-bn``
CALIBRATE_HELP = ("Recalibrate BN statistics on the checkpoint's training data before export, as stage 2 measures "
                  "(the checkpoint's crops, interpolation and calibration seed; --data, --calib-batches, ...). "
                  "Default: on for a supernet's subnet (a supernet's stored BN statistics are not its subnets': "
                  "without recalibration a subnet can be at chance); off for a fine-tuned subnet checkpoint "
                  "(finetune calibrated them; --calibrate-bn recalibrates anyway). Always on with --precision "
                  "int8. --no-calibrate-bn keeps the stored statistics and says so in one warning line.")
#: flags that only an INT8 export uses
INT8_FLAGS = (("calib_images", "--calib-images"), ("check_images", "--check-images"),
              ("check_split", "--check-split"), ("max_int8_drop", "--max-int8-drop"))


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
        help=f"Batch of the exported file: N (1 to {MAX_BATCH}), or dynamic (a symbolic batch axis; onnx and "
        "torch-export only). For onnx, torch-export and executorch; default: dynamic for onnx and torch-export, "
        "1 for executorch."),
    onnx_exporter: str = typer.Option("dynamo", "--onnx-exporter",
                                      help="For --format onnx: dynamo (torch.export-based) or torchscript "
                                      "(PyTorch's deprecated TorchScript-based exporter)."),
    space: str | None = typer.Option(None, "--space", help=SPACE_HELP + " Default: from the checkpoint."),
    calibrate_bn: bool | None = typer.Option(None, "--calibrate-bn/--no-calibrate-bn", show_default=False,
                                             help=CALIBRATE_HELP),
    data: str | None = typer.Option(
        None, "--data", help=f"Data of the BN recalibration: {DATA_CHOICES} "
        "(default: the checkpoint's training data)."),
    calib_batches: int = typer.Option(DEFAULT_CALIB_BATCHES, "--calib-batches", min=1,
                                      help="Training batches of the BN recalibration."),
    calib_batch_size: int = typer.Option(DEFAULT_CALIB_BATCH_SIZE, "--calib-batch-size", min=1,
                                         help="Batch size of the BN recalibration."),
    interpolation: str | None = typer.Option(None, "--interpolation", show_default=False,
                                             help="For the BN recalibration: " + INTERPOLATION_HELP),
    calib_seed: int | None = typer.Option(None, "--calib-seed", show_default=False,
                                          help="For the BN recalibration: " + calib_seed_help("0")),
    precision: str = typer.Option("fp32", "--precision", help="fp32, or int8: post-training static quantization "
                                  "(formats executorch, onnx, openvino); BN is recalibrated first, then activations "
                                  "on --calib-images training images, and the file's top-1 is checked."),
    calib_images: int | None = typer.Option(None, "--calib-images", min=1, max=MAX_INT8_IMAGES, show_default=False,
                                            help="For --precision int8: training images the activation ranges "
                                            "are calibrated on (default 256)."),
    check_split: str = typer.Option("test", "--check-split", help="For --precision int8: the split of the "
                                    "accuracy check, holdout or test."),
    check_images: int = typer.Option(DEFAULT_CHECK_IMAGES, "--check-images", min=0, max=MAX_INT8_IMAGES,
                                     help="For --precision int8: images of the "
                                     "accuracy check (a seeded random subset of --check-split; 0: no check)."),
    max_int8_drop: float = typer.Option(DEFAULT_MAX_INT8_DROP, "--max-int8-drop", min=0.0, max=100.0,
                                        help="For --precision int8: the largest drop of top-1 (points) below fp32 "
                                        "in the accuracy check before a warning line says the fp32 file is the "
                                        "better one (the JSON's int8_drop holds the drop)."),
    with_formats: str = typer.Option("torch-export", "--with", help="For --format bundle: its runtime files, a "
                                     "comma list of torch-export, onnx, executorch."),
    card_split: str = typer.Option("both", "--card-split", help="For --format bundle: the splits of the card's "
                                   "top-1: holdout, test or both (the hold-out only where the checkpoint held "
                                   "images out)."),
    card_metrics: bool = typer.Option(True, "--card-metrics/--no-card-metrics",
                                      help="For --format bundle: measure the card's top-1 on the checkpoint's data."),
    card_latency: bool = typer.Option(True, "--latency/--no-latency", help="For --format bundle: time each "
                                      "runtime file for the card (batch 1, a few runs, on this machine)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (the files written, their checks; "
                                 "INT8: int8_drop) on stdout; messages go to stderr."),
) -> None:
    """Export one subnet (or a whole Pareto set) as standalone models."""
    from ..export.formats import (  # heavy
        FORMATS,  # heavy (torch): loaded when the command runs
        ONNX_EXPORTERS,
        TORCHSCRIPT_DEPRECATED,
        parse_batch,
    )

    _refuse_int8_flags(ctx, precision)
    if calibrate_bn is False and precision == "int8":
        raise UserError("--no-calibrate-bn: an INT8 export recalibrates BN first (its activation ranges are "
                        "calibrated on that model); drop --no-calibrate-bn")
    echo = _echo(as_json)
    if fmt == "bundle":
        from .export_bundle import export_bundle_cmd  # heavy (torch): loaded when the command runs

        result = export_bundle_cmd(checkpoint, out, arch, pareto, batch=batch, onnx_exporter=onnx_exporter,
                                   space=space, calibrate_bn=calibrate_bn, data=data, calib_batches=calib_batches,
                                   calib_batch_size=calib_batch_size, interpolation=interpolation,
                                   calib_seed=calib_seed, with_formats=with_formats, card_split=card_split,
                                   card_metrics=card_metrics, latency=card_latency, precision=precision,
                                   calib_images=calib_images, check_images=check_images,
                                   max_int8_drop=max_int8_drop, ctx=ctx, echo=echo)
        if as_json:
            print_json({"bundles": result})
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
    int8 = _check_precision(precision, fmt, check_split)
    if arch is not None and pareto is not None:
        raise UserError("give exactly one of --arch ARCH or --pareto PARETO.json")
    check_output(out, "dir" if pareto is not None else "file")
    measure = measure_from_flags(interpolation=interpolation, calib_seed=calib_seed, calib_batches=calib_batches,
                                 calib_batch_size=calib_batch_size)  # checks the flags before loading
    if fmt == "torchscript":
        warn_line(TORCHSCRIPT_DEPRECATED)
    net, meta, arch = load_export_source(checkpoint, space, arch, pareto)  # a supernet or a fine-tuned subnet
    check_archs(net, arch, pareto)  # before any data is read
    calibrate = resolve_calibration(calibrate_bn, meta, int8)
    options = _export_data(net, meta, data, measure, calibrate, calibrate_bn, int8, calib_images, check_split,
                           check_images)
    if pareto is not None:
        _export_pareto(net, pareto, out, fmt, precision, options, max_int8_drop, kwargs, echo, as_json)
        return
    _export_one(net, arch, out, fmt, precision, options, max_int8_drop, kwargs, echo, as_json)


def check_archs(net: object, arch: str | None, pareto: Path | None) -> None:
    """The arch (or the Pareto set's archs) checked against the checkpoint's space (one line)."""
    from ..export.pareto import read_pareto_archs  # heavy (torch)

    if pareto is not None:
        with warnings.catch_warnings():  # what it warns about is said again when the set is exported
            warnings.simplefilter("ignore")
            read_pareto_archs(pareto, net.space)  # type: ignore[attr-defined]
    else:
        resolve_arch(arch, net.space)  # type: ignore[attr-defined]


def resolve_calibration(flag: bool | None, meta: dict, int8: bool) -> bool:
    """Whether an export recalibrates BN: always for INT8; as ``--calibrate-bn/--no-calibrate-bn`` say;
    by default for a supernet's subnet and not for a fine-tuned subnet checkpoint (one warning line for
    a supernet's subnet exported with its stored statistics)."""
    if int8:
        return True
    subnet = bool(meta.get("subnet"))
    if flag is None:
        return not subnet
    if flag is False and not subnet:
        warn_line("--no-calibrate-bn: the BN statistics are the supernet's as stored, which may be placeholders "
                  "for this subnet (its top-1 can be at chance); drop the flag to recalibrate them on training data")
    return flag


def calibration_data(data: str | None, space: object, meta: dict, seed: int, interpolation: str | None,
                     flag: bool | None) -> object:
    """The checkpoint's data for the BN recalibration (``resolve_data``); when the checkpoint names none and
    recalibration is the default, the one-line error says how to opt out."""
    from ..accuracy import resolve_data  # heavy (torch)

    try:
        return resolve_data(data, space, meta, seed=seed, interpolation=interpolation)  # type: ignore[arg-type]
    except UserError as exc:
        if flag is None and data is None:
            raise UserError(f"{exc} (export recalibrates BN on it by default), or --no-calibrate-bn to keep the "
                            "stored statistics") from None
        raise


def _export_data(net: object, meta: dict, data: str | None, measure: MeasureSettings, calibrate: bool,
                 flag: bool | None, int8: bool, calib_images: int | None, check_split: str,
                 check_images: int) -> dict:
    """The recalibration batches (``calib_batches``) and the INT8 export's images of an export."""
    from ..nn import cache_calibration_batches  # heavy (torch)

    if not calibrate:
        return {"calib_batches": None}
    p = measure.resolved(meta)  # the checkpoint's evaluation: its crops, interpolation and seed
    seed = int(p.calib_seed or 0)
    bundle = calibration_data(data, net.space, meta, seed, p.interpolation, flag)  # type: ignore[attr-defined]
    images = bundle.calibration_set()  # type: ignore[attr-defined]  # as stage 2: the evaluator's images and draw
    out = {"calib_batches": cache_calibration_batches(images, p.calib_batches, p.calib_batch_size, seed)}
    if int8:
        out.update(_int8_data(bundle, calib_images, check_split, check_images, seed))
    return out


def _export_one(net: object, arch: str | None, out: Path, fmt: str, precision: str, options: dict,
                max_int8_drop: float, kwargs: dict, echo: Callable[[str], None], as_json: bool) -> None:
    """``export --arch``: one file, written holding its lock."""
    from ..export.folders import export_lock  # heavy
    from ..export.formats import export_subnet  # heavy (torch)

    a = resolve_arch(arch, net.space)  # type: ignore[attr-defined]
    with export_lock(out, folder=False), _no_torchscript_warning():
        for torn in out.parent.glob(f".{out.name}.*.tmp"):  # what a killed export of this file left
            torn.unlink(missing_ok=True)
        info = export_subnet(net.extract(a).eval(), out, fmt, precision=precision,  # type: ignore[attr-defined]
                             max_int8_drop=max_int8_drop, **options, **kwargs)
    mflops = count_flops(net.space, a, net.num_classes)  # type: ignore[attr-defined]
    echo(f"wrote {info['path']} ({fmt}, {mflops:.2f} MFLOPs{_batch_text(info)})")
    _echo_int8_check(info, echo)
    if as_json:
        print_json({"files": [{**_jsonable(info), "format": fmt, "mflops": mflops, "arch": a.to_dict(),
                               "calibrated_bn": options["calib_batches"] is not None}]})


def _export_pareto(net: object, pareto: Path, out: Path, fmt: str, precision: str, options: dict,
                   max_int8_drop: float, kwargs: dict, echo: Callable[[str], None], as_json: bool) -> None:
    """``export --pareto``: one file per subnet and ``index.json`` (written last, holding the folder's lock)."""
    from ..export.pareto import export_pareto_set  # heavy (torch)

    with _no_torchscript_warning():  # said once above
        records = export_pareto_set(net, pareto, out, fmt, precision=precision, max_int8_drop=max_int8_drop,
                                    **options, **kwargs)
    for r in records:
        echo(f"wrote {out / r['file']} ({r['mflops']:.2f} MFLOPs{_batch_text(r)})")
        _echo_int8_check(r, echo, r["file"])
    echo(f"index: {out / 'index.json'}")
    if as_json:
        print_json({"index": str(out / "index.json"), "files": records,
                    "calibrated_bn": options["calib_batches"] is not None})


def _jsonable(info: dict) -> dict:
    return {k: v for k, v in info.items() if isinstance(v, (str, int, float, bool, type(None)))}


def _echo(as_json: bool) -> Callable[[str], None]:
    """Where the command's lines go: stdout, or stderr under ``--json``."""
    return (lambda line: typer.echo(line, err=True)) if as_json else typer.echo


def _refuse_int8_flags(ctx: typer.Context, precision: str) -> None:
    """One line for a flag of ``--precision int8`` given with another precision (it would do nothing)."""
    if precision == "int8":
        return
    for name, flag in INT8_FLAGS:
        source = ctx.get_parameter_source(name)
        if source is not None and source.name == "COMMANDLINE":
            raise UserError(f"{flag} applies to --precision int8, not to {precision}")


def _check_precision(precision: str, fmt: str, check_split: str) -> bool:
    """Whether ``precision`` is int8 (one-line errors for a bad precision, format or check split)."""
    from ..runtimes.quantize import INT8_FORMATS, PRECISIONS  # heavy (torch)

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
    from ..runtimes.quantize import DEFAULT_CALIB_IMAGES  # heavy (torch)

    n = calib_images or DEFAULT_CALIB_IMAGES
    out: dict = {"calib_images": cache_calibration_batches(bundle.train, 1, n, seed + 1)[0]}  # type: ignore[attr-defined]
    if check_images > 0:
        split = split_of(bundle, check_split)  # type: ignore[arg-type]
        total = len(split)  # type: ignore[arg-type]
        idx = np.sort(np.random.default_rng(seed).choice(total, min(check_images, total), replace=False))
        items = [split[int(i)] for i in idx]
        out["check_data"] = (torch.stack([it[0] for it in items]), torch.as_tensor([int(it[1]) for it in items]))
    return out


def _echo_int8_check(info: dict, echo: Callable[[str], None] = typer.echo, name: str | None = None) -> None:
    """The INT8 check's line, and a warning line when it dropped more than ``--max-int8-drop``."""
    if "top1_int8" in info:
        from ..runtimes.quantize import accuracy_line, int8_drop_warning  # heavy (torch)

        echo(accuracy_line(info))
        message = int8_drop_warning(info, name or Path(str(info.get("path", "the INT8 file"))).name)
        if message is not None:
            warn_line(message)


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
