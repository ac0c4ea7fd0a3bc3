"""What ``attentivenas export`` does and reports, as small functions the CLI calls: its flags checked before
the checkpoint is loaded (the precision once, into an :class:`~attentivenas.config.Int8Recipe`), whether BN
is recalibrated, and one subnet, a Pareto set or bundles written with the lines each prints."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from torch import nn

from ..config import Int8Recipe, MeasureSettings
from ..costs import count_flops
from ..errors import UserError
from ..io import check_output
from ..runtimes.quantize import INT8_FORMATS, PRECISIONS, accuracy_line, int8_drop_warning
from ..runtimes.records import find_format
from ..space import Arch, resolve_arch
from .bundle import check_bundle_options, parse_formats
from .bundle_set import BundleSet, export_bundles
from .card_measure import CARD_SPLITS
from .folders import export_lock
from .formats import DYNAMIC, FORMATS, MAX_BATCH, ONNX_EXPORTERS, TORCHSCRIPT_DEPRECATED, export_subnet, parse_batch
from .inputs import bundle_inputs, file_inputs
from .pareto import export_pareto_set, read_pareto_archs

Echo = Callable[[str], None]
#: the split names of an INT8 export's accuracy check
CHECK_SPLITS = ("holdout", "test")


def int8_recipe(precision: str, calibrate_flag: bool | None, calib_images: int | None, check_split: str,
                check_images: int, max_drop: float) -> Int8Recipe | None:
    """``--precision`` checked (the one place it is) with its INT8 flags: the recipe of an INT8 export,
    None for fp32 (one-line errors for a bad precision or check split, or ``--no-calibrate-bn`` with INT8)."""
    if precision not in PRECISIONS:
        raise UserError(f"--precision {precision!r} is not supported; allowed: {list(PRECISIONS)}")
    if precision != "int8":
        return None
    if calibrate_flag is False:
        raise UserError("--no-calibrate-bn: an INT8 export recalibrates BN first (its activation ranges are "
                        "calibrated on that model); drop --no-calibrate-bn")
    if check_split not in CHECK_SPLITS:
        raise UserError(f"--check-split {check_split!r} is not supported; allowed: {', '.join(CHECK_SPLITS)}")
    return Int8Recipe(calib_images=calib_images, check_split=check_split, check_images=check_images,
                      max_drop=max_drop)


def exactly_one_target(arch: str | None, pareto: Path | None) -> None:
    if arch is not None and pareto is not None:
        raise UserError("give exactly one of --arch ARCH or --pareto PARETO.json")


def check_format_name(fmt: str) -> None:
    """``--format`` is one of :data:`~attentivenas.export.formats.FORMATS` or ``bundle`` (one line)."""
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r} is not supported; allowed: {[*FORMATS, 'bundle']}")


def file_options(fmt: str, batch: str | None, onnx_exporter: str, int8: bool, arch: str | None,
                 pareto: Path | None, out: Path, warn: Echo) -> dict[str, Any]:
    """The flags of a file export (``--format`` other than bundle, checked by :func:`check_format_name`)
    checked before the checkpoint is loaded; returns the format writer's keyword arguments (``batch``,
    ``exporter``)."""
    if onnx_exporter not in ONNX_EXPORTERS:
        raise UserError(f"--onnx-exporter {onnx_exporter!r} is not supported; allowed: {list(ONNX_EXPORTERS)}")
    rt = find_format(fmt)  # None: a weights format (safetensors, torchscript)
    takes_exporter = rt is not None and "exporter" in rt.file_options
    if onnx_exporter != "dynamo" and not takes_exporter:
        raise UserError(f"--onnx-exporter applies to --format onnx, not to {fmt}")
    kwargs: dict[str, Any] = {}
    if batch is not None or rt is not None:
        kwargs["batch"] = parse_batch(batch, fmt)
    if takes_exporter:
        kwargs["exporter"] = onnx_exporter
    if int8 and (rt is None or rt.int8 is None):
        raise UserError(f"--precision int8 applies to --format {', '.join(INT8_FORMATS)}, not to {fmt}")
    exactly_one_target(arch, pareto)
    check_output(out, "dir" if pareto is not None or fmt == "safetensors" else "file")  # safetensors: a folder
    if fmt == "torchscript":
        warn(TORCHSCRIPT_DEPRECATED)
    return kwargs


def check_archs(net: nn.Module, arch: str | None, pareto: Path | None) -> None:
    """The arch (or the Pareto set's archs) checked against the checkpoint's space (one line)."""
    if pareto is not None:
        with warnings.catch_warnings():  # what it warns about is said again when the set is exported
            warnings.simplefilter("ignore")
            read_pareto_archs(pareto, net.space)
    else:
        resolve_arch(arch, net.space)  # type: ignore[arg-type]


def resolve_calibration(flag: bool | None, meta: dict[str, Any], int8: bool, warn: Echo) -> bool:
    """Whether an export recalibrates BN: always for INT8; as ``--calibrate-bn/--no-calibrate-bn`` say;
    by default for a supernet's subnet and not for a fine-tuned subnet checkpoint (one warning line for
    a supernet's subnet exported with its stored statistics)."""
    if int8:
        return True
    subnet = bool(meta.get("subnet"))
    if flag is None:
        return not subnet
    if flag is False and not subnet:
        warn("--no-calibrate-bn: the BN statistics are the supernet's as stored, which may be placeholders "
             "for this subnet (its top-1 can be at chance); drop the flag to recalibrate them on training data")
    return flag


def _int8_lines(info: dict[str, Any], echo: Echo, warn: Echo, name: str | None = None) -> None:
    """The INT8 check's line, and a warning line when it dropped more than ``--max-int8-drop``."""
    if "top1_int8" in info:
        echo(accuracy_line(info))
        message = int8_drop_warning(info, name or Path(str(info.get("path", "the INT8 file"))).name)
        if message is not None:
            warn(message)


@contextlib.contextmanager
def _no_torchscript_warning() -> Iterator[None]:
    """The library's FutureWarning about TorchScript, already said in one line by :func:`file_options`."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="the torchscript format is deprecated", category=FutureWarning)
        yield


def _batch_text(info: dict[str, Any]) -> str:
    return f", batch {info['batch']}" if "batch" in info else ""


def export_files(net: nn.Module, meta: dict[str, Any], target: str | Path, out: Path, fmt: str, *, pareto: bool,
                 data: str | None, measure: MeasureSettings, calibrate: bool, flag: bool | None,
                 recipe: Int8Recipe | None, kwargs: dict[str, Any], echo: Echo, warn: Echo) -> dict[str, Any]:
    """``export --arch`` (one file, written holding its lock) or ``--pareto`` (``target``: the Pareto file;
    one file per subnet and ``index.json``); prints its lines and returns the ``--json`` object."""
    options = file_inputs(net, meta, data, measure, calibrate, flag, recipe)
    precision = "int8" if recipe is not None else "fp32"
    max_drop = (recipe or Int8Recipe()).max_drop
    calibrated = options["calib_batches"] is not None
    if pareto:
        with _no_torchscript_warning():
            records = export_pareto_set(net, target, out, fmt, precision=precision, max_int8_drop=max_drop,
                                        **options, **kwargs)
        for r in records:
            echo(f"wrote {out / r['file']} ({r['mflops']:.2f} MFLOPs{_batch_text(r)})")
            _int8_lines(r, echo, warn, r["file"])
        echo(f"index: {out / 'index.json'}")
        return {"index": str(out / "index.json"), "files": records, "calibrated_bn": calibrated}
    a = resolve_arch(str(target), net.space)
    with export_lock(out, folder=False), _no_torchscript_warning():
        for torn in out.parent.glob(f".{out.name}.*.tmp"):  # what a killed export of this file left
            torn.unlink(missing_ok=True)
        info = export_subnet(net.extract(a).eval(), out, fmt, precision=precision, max_int8_drop=max_drop,
                             **options, **kwargs)
    mflops = count_flops(net.space, a, net.num_classes)
    echo(f"wrote {info['path']} ({fmt}, {mflops:.2f} MFLOPs{_batch_text(info)})")
    _int8_lines(info, echo, warn)
    plain = {k: v for k, v in info.items() if isinstance(v, (str, int, float, bool, type(None)))}
    return {"files": [{**plain, "format": fmt, "mflops": mflops, "arch": a.to_dict(), "calibrated_bn": calibrated}]}


def bundle_batch(text: str) -> int | str:
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


def bundle_options(with_formats: str, batch: str | None, onnx_exporter: str, card_split: str,
                   recipe: Int8Recipe | None, arch: str | None, pareto: Path | None,
                   out: Path) -> tuple[tuple[str, ...], tuple[str, ...], int | str | None]:
    """The flags of ``export --format bundle`` checked before the checkpoint is loaded: its runtime
    formats, precisions and batch."""
    if onnx_exporter != "dynamo":
        raise UserError("--onnx-exporter applies to --format onnx; a bundle's ONNX file uses the dynamo exporter")
    exactly_one_target(arch, pareto)
    if card_split not in CARD_SPLITS:
        raise UserError(f"--card-split {card_split!r} is not one of {list(CARD_SPLITS)}")
    formats = parse_formats(with_formats)
    precisions = ("fp32", "int8") if recipe is not None else ("fp32",)
    parsed_batch = None if batch is None else bundle_batch(batch)
    check_bundle_options(formats, precisions, parsed_batch)
    check_output(out, "dir")
    return formats, precisions, parsed_batch


def write_bundles(net: nn.Module, meta: dict[str, Any], target: str | Path, out: Path, s: BundleSet, *,
                  pareto: bool, data: str | None, measure: MeasureSettings, card_split: str | None,
                  calibrate: bool, flag: bool | None, echo: Echo, warn: Echo) -> list[dict[str, Any]]:
    """``export --format bundle`` once its flags are checked and the checkpoint loaded: the data read
    (``card_split`` None: no card metrics), then :func:`~attentivenas.export.bundle_set.export_bundles`."""
    archs: list[Arch] = read_pareto_archs(target, net.space) if pareto else [resolve_arch(str(target), net.space)]
    inputs = bundle_inputs(net, meta, data, measure, card_split=card_split, calibrate_bn=calibrate,
                           calibrate_flag=flag, recipe=s.recipe, warn=warn)
    return export_bundles(net, meta, archs, out, s, inputs, pareto=pareto, echo=echo, warn=warn)
