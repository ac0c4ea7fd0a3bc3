"""Standalone subnets: ``torch.export`` programs (``.pt2``, checked with ``torch.export.load``; the
default), ONNX (dynamo exporter by default, checked with onnxruntime), ExecuTorch programs (``.pte``,
XNNPACK delegate, checked with ExecuTorch's runtime), the subnet's weights (safetensors), and TorchScript
(deprecated: ``torch.jit`` is deprecated in PyTorch; a :class:`FutureWarning` says so).

Every runtime file is written by :func:`export_file` through its runtime's record
(:mod:`attentivenas.runtimes.records`: export, load, save, INT8 quantizer); :func:`export_onnx`,
:func:`export_torch_export`, :func:`export_executorch` and :func:`export_openvino` name a format. The
batch of a runtime file is ``batch``: a fixed size N or ``"dynamic"`` (a symbolic batch axis, where the
record's batch policy is dynamic: ONNX and ``.pt2``; ExecuTorch and OpenVINO files here have a fixed
input shape). Each writer returns it as ``"batch"`` in its info dict (and :func:`export_pareto_set` in
``index.json``).

Every writer is atomic (:mod:`attentivenas.io`) and checks what it wrote against the PyTorch subnet
on a seeded random batch: the relative error is ``max |exported - torch| / max |torch|`` over all
logits (an elementwise ratio is meaningless for logits near zero) and must be <= ``tol`` (1e-4).

``precision="int8"`` (:data:`~attentivenas.runtimes.quantize.INT8_FORMATS`: ExecuTorch, ONNX, OpenVINO)
writes a post-training-quantized file (:mod:`attentivenas.runtimes.quantize`), calibrated on
``calib_images`` (normalised training images; :func:`export_subnet` recalibrates BN first when given
``calib_batches``). Its relative error against the fp32 subnet, on calibration images, is recorded
(:data:`INT8_TOL`: it must be finite; no bound by default); with ``check_data``
(images, labels) the file is also run by its runtime in a process without ``attentivenas`` and its
top-1 reported beside the fp32 subnet's (``top1_fp32``, ``top1_int8``, ``agreement``,
``drop_points``). OpenVINO files (``.xml`` + ``.bin``) come from ``openvino.convert_model`` of the
``torch.export`` program (fp32) or NNCF (int8), at a fixed batch.

:func:`export_safetensors` writes the subnet's weights as a bundle holds them (a folder with
``model.safetensors`` and ``config.json``, :mod:`attentivenas.export.weights`), which
:func:`~attentivenas.export.bundle.load_pretrained` rebuilds without pickle. :func:`export_subnet`
dispatches on the format, optionally recalibrating BN first; :func:`export_pareto_set` writes a whole Pareto set in one call.
"""

from __future__ import annotations

import copy
import io
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..costs import count_flops, count_params
from ..errors import UserError
from ..io import atomic_write_bytes
from ..nn.bn import calibrate_bn
from ..nn.layers import resize_input
from ..nn.static import StaticSubnet
from ..runtimes.quantize import (
    DEFAULT_CALIB_IMAGES,
    DEFAULT_MAX_INT8_DROP,
    INT8_FORMATS,
    check_int8_accuracy,
    check_precision,
    fixed_batch_fn,
    int8_drop_fields,
)
from ..runtimes.records import RUNTIMES, Runtime, batch_formats, find_format, runtime_for_format, runtime_formats
from ..space import Arch, SearchSpace
from .weights import cpu_state, write_weights_folder

SUBNET_FORMAT = "attentivenas-subnet"
#: the formats of no runtime, with their suffixes: the subnet's weights (read by attentivenas) and
#: deprecated TorchScript; every other format is a runtime's (:mod:`attentivenas.runtimes.records`)
WEIGHT_FORMATS = {"safetensors": ".safetensors", "torchscript": ".pt"}
#: formats written without an optional extra (the quick start's choices), default first
BASE_FORMATS = (*runtime_formats(extra=False), *WEIGHT_FORMATS)
FORMATS = (*BASE_FORMATS, *runtime_formats(extra=True))
DEFAULT_FORMAT = BASE_FORMATS[0]
#: formats whose files have a batch size (``batch=N`` or ``"dynamic"``): every runtime's
BATCH_FORMATS = batch_formats()
#: formats whose files have a fixed input shape (no ``"dynamic"`` batch; default batch 1)
FIXED_BATCH_FORMATS = tuple(r.format for r in RUNTIMES.values() if r.batch == "fixed")
#: The INT8 file's logits are compared with the fp32 subnet's and the relative error recorded, but
#: not held to a bound by default: INT8 rounding error depends on the model (0.2% on a seeded
#: network, 65-115% on an untrained one whose BN was recalibrated on data: channels of tiny
#: variance amplify the rounding), so the accuracy check, not this number, judges the file. Only
#: outputs that are not finite or of the wrong shape fail.
INT8_TOL = float("inf")
#: what ``index.json`` keeps of each file's info
INDEX_KEYS = ("rel_error", "exporter", "opset", "tensors", "batch", "precision", "calib_images", "top1_fp32",
              "top1_int8", "agreement", "drop_points", "check_images", "int8_drop", "max_int8_drop", "int8_drop_exceeded")
INDEX_NAME = "index.json"
#: ONNX exporters: ``torch.export``-based (the default) and PyTorch's deprecated TorchScript-based one
ONNX_EXPORTERS = runtime_for_format("onnx").option_values["exporter"]
DYNAMIC = "dynamic"
#: the largest ``--batch`` of an exported file: its export traces and checks the model on two random batches
#: of that size (at 224 px, batch 256 is about 150 MB of input and a few GB of activations)
MAX_BATCH = 256
TORCHSCRIPT_DEPRECATED = ("the torchscript format is deprecated (torch.jit is deprecated in PyTorch); "
                          "use --format torch-export (.pt2, loaded with torch.export.load)")
SUFFIXES = {**{r.format: r.suffix for r in RUNTIMES.values()}, **WEIGHT_FORMATS}


class ExportError(UserError):
    """An export that cannot be done or whose check failed."""


def _subnet_info(subnet: nn.Module) -> tuple[SearchSpace, Arch, int]:
    for attr in ("space", "arch", "num_classes"):
        if not hasattr(subnet, attr):
            raise ExportError(f"model has no '{attr}': export a StaticSubnet (Supernet.extract(arch))")
    return subnet.space, subnet.arch, int(subnet.num_classes)


def parse_batch(value: int | str | None, fmt: str) -> int | str:
    """``--batch`` of ``fmt``: a size N >= 1 or ``"dynamic"``; ``None`` is the format's default
    (dynamic for ONNX and ``.pt2``, 1 for ExecuTorch). Raises :class:`ExportError` (one line) for a
    bad value, a format without a batch, or ``dynamic`` for ExecuTorch."""
    rt = find_format(fmt)
    if value is None:
        return 1 if rt is not None and rt.batch == "fixed" else DYNAMIC
    if rt is None:
        raise ExportError(f"--batch applies to {', '.join(BATCH_FORMATS)}, not to {fmt}")
    if isinstance(value, str):
        text = value.strip().lower()
        if text == DYNAMIC:
            value = DYNAMIC
        else:
            try:
                value = int(text)
            except ValueError:
                raise ExportError(f"--batch must be a positive integer or 'dynamic', got {value!r}") from None
    if value == DYNAMIC:
        if rt.batch == "fixed":
            raise ExportError(f"--batch dynamic is not supported for {fmt} (its program here has a fixed "
                              "input shape): give --batch N")
        return DYNAMIC
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ExportError(f"--batch must be a positive integer or 'dynamic', got {value!r}")
    if value > MAX_BATCH:
        raise ExportError(f"--batch {value} is too large: at most {MAX_BATCH} (the export runs the model on two "
                          "random batches of that size), or dynamic where the format has a symbolic batch")
    return value


def _cpu_eval_copy(subnet: nn.Module) -> nn.Module:
    return copy.deepcopy(subnet).to(device="cpu", dtype=torch.float32).eval()


def arch_json_path(path: str | Path) -> Path:
    """``model.safetensors`` -> ``model.arch.json``."""
    return Path(path).with_suffix(".arch.json")


# --------------------------------------------------------------------------- TorchScript
def script_subnet(subnet: StaticSubnet) -> torch.jit.ScriptModule:
    """TorchScript of a static subnet in eval mode (the subnet itself is left unchanged)."""
    was_training = subnet.training
    subnet.eval()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated but still the portable format
            scripted = torch.jit.script(subnet)
    finally:
        subnet.train(was_training)
    return scripted


def export_torchscript(subnet: StaticSubnet, path: str | Path, check: bool = True) -> Path:
    """Write a TorchScript file loadable with ``torch.jit.load`` alone; checks its output against
    the eager subnet on a random input when ``check``."""
    scripted = script_subnet(subnet)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(scripted, buf)
        buf.seek(0)
        loaded = torch.jit.load(buf, map_location="cpu") if check else None
    if loaded is not None:
        p0 = next(subnet.parameters())
        x = torch.randn(2, 3, subnet.resolution, subnet.resolution, generator=torch.Generator().manual_seed(0))
        was_training = subnet.training
        subnet.eval()
        with torch.no_grad():
            ref = subnet(x.to(p0.device, p0.dtype)).float().cpu()
            out = loaded.to("cpu").float()(x)
        subnet.train(was_training)
        err = (out - ref).abs().max().item()
        if err > 1e-4 * max(1.0, ref.abs().max().item()):
            raise RuntimeError(f"TorchScript export differs from the eager model (max abs error {err:.3g})")
    return atomic_write_bytes(path, buf.getvalue())


# --------------------------------------------------------------------------- runtime files
def relative_error(out: Any, model: nn.Module, x: torch.Tensor) -> float:
    """``max |out - model(x)| / max |model(x)|`` (``inf`` when the shapes differ)."""
    with torch.inference_mode():
        ref = model(x).numpy()
    out = np.asarray(out)
    if out.shape != ref.shape:
        return float("inf")
    scale = max(float(np.abs(ref).max()), 1e-12)
    return float(np.abs(out.astype(np.float64) - ref).max() / scale)


def file_relative_error(rt: Runtime, file: Any, model: nn.Module, x: torch.Tensor) -> float:
    """Relative error of ``rt``'s file (as :meth:`Runtime.export` gave it), run by its runtime on one
    thread, against ``model`` on ``x``."""
    return relative_error(rt.load(file, 1).predict(x.numpy()), model, x)


def _check_inputs(subnet: nn.Module, batch: int, seed: int,
                  check_batch: int | None = None) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A CPU eval copy of ``subnet``, an example batch and a check batch (seeded, drawn in that order)."""
    if batch < 1:
        raise ExportError(f"batch must be >= 1, got {batch}")
    _subnet_info(subnet)
    model = _cpu_eval_copy(subnet)
    r = int(model.resolution)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 3, r, r, generator=gen)
    return model, x, torch.randn(check_batch or batch, 3, r, r, generator=gen)


def _file_inputs(subnet: nn.Module, rt: Runtime, batch: int | str,
                 seed: int) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """The model, example and check batches of a file check: N images each, or a dynamic file exported
    on 2 (not specialised to 1) and checked on 3 (which the example does not fix); drawn as the
    record says (``example_first``)."""
    n_ex, n_check = (2, 3) if batch == DYNAMIC else (int(batch), int(batch))
    if rt.example_first:
        return _check_inputs(subnet, n_ex, seed, n_check)
    model, _, check = _check_inputs(subnet, n_check, seed)
    return model, torch.randn(n_ex, *check.shape[1:], generator=torch.Generator().manual_seed(seed)), check


def _file_options(rt: Runtime, options: Mapping[str, Any]) -> dict[str, Any]:
    """The record's file options with those given; a value outside the option's set is refused."""
    opts = {**rt.file_options, **{k: v for k, v in options.items() if v is not None}}
    for key, allowed in rt.option_values.items():
        if opts[key] not in allowed:
            raise ExportError(f"unknown {rt.check_title} {key} {opts[key]!r}; use {' or '.join(allowed)}")
    return opts


def export_file(subnet: nn.Module, path: str | Path, fmt: str, batch: int | str | None = None, tol: float = 1e-4,
                seed: int = 0, **options: Any) -> dict[str, Any]:
    """Write ``subnet`` (fp32) as the file of format ``fmt``'s runtime (its record's export, at the
    subnet's resolution) and check it: run by its runtime on a seeded random batch, the file is only
    written when the relative error is <= ``tol``, otherwise :class:`ExportError`.

    ``batch``: a fixed size N, or ``"dynamic"`` (a symbolic batch axis: the default of a record whose
    batch policy is dynamic; refused by a fixed one, whose default is 1). ``options``: the record's
    file options (ONNX: ``exporter``, ``opset``). Returns ``{"path", ..., "rel_error", ..., "batch"}``."""
    rt = runtime_for_format(fmt)
    batch = parse_batch(batch, fmt)
    opts = _file_options(rt, options)
    model, x, check = _file_inputs(subnet, rt, batch, seed)
    file = rt.export(model, x, dynamic_batch=batch == DYNAMIC, **opts)
    err = file_relative_error(rt, file, model, check)
    if not err <= tol:
        raise ExportError(f"{rt.check_title} check failed: relative error {err:.3g} > {tol:g} against PyTorch")
    info = rt.save(file, path)
    return {**info, "rel_error": err, **(rt.file_info(**opts) if rt.file_info else {}), "batch": batch}


def export_onnx(subnet: nn.Module, path: str | Path, batch: int | str | None = None, opset: int = 17,
                tol: float = 1e-4, exporter: str = "dynamo", seed: int = 0) -> dict[str, Any]:
    """:func:`export_file` as ONNX, checked with onnxruntime. ``batch``: ``"dynamic"`` (the default) or
    N. ``exporter``: ``"dynamo"`` (``torch.export``-based, the default) or ``"torchscript"`` (PyTorch's
    deprecated tracing exporter, only on request). Returns ``{"path", "rel_error", "exporter", "opset",
    "batch"}``."""
    return export_file(subnet, path, "onnx", batch, tol, seed, exporter=exporter, opset=opset)


def export_torch_export(subnet: nn.Module, path: str | Path, batch: int | str | None = None, tol: float = 1e-4,
                        seed: int = 0) -> dict[str, Any]:
    """:func:`export_file` as a ``.pt2`` ExportedProgram (``torch.export``) loadable with
    ``torch.export.load`` alone. ``batch``: ``"dynamic"`` (the default: a ``torch.export.Dim`` batch
    axis) or N."""
    return export_file(subnet, path, "torch-export", batch, tol, seed)


def export_executorch(subnet: nn.Module, path: str | Path, batch: int | str | None = None, tol: float = 1e-4,
                      seed: int = 0) -> dict[str, Any]:
    """:func:`export_file` as a ``.pte`` ExecuTorch program (XNNPACK delegate, fixed input shape
    ``batch x 3 x r x r``, default batch 1; ``"dynamic"`` is refused); needs the ``executorch`` extra."""
    return export_file(subnet, path, "executorch", batch, tol, seed)


def export_openvino(subnet: nn.Module, path: str | Path, batch: int | str | None = None, tol: float = 1e-4,
                    seed: int = 0) -> dict[str, Any]:
    """:func:`export_file` as an OpenVINO IR (``.xml`` + ``.bin``; ``path``'s suffix becomes ``.xml``) of
    the subnet's ``torch.export`` program at a fixed batch (default 1); needs the ``openvino`` extra."""
    return export_file(subnet, path, "openvino", batch, tol, seed)


# --------------------------------------------------------------------------- INT8
def export_int8(subnet: nn.Module, path: str | Path, fmt: str, calib_images: torch.Tensor,
                batch: int | str | None = None, tol: float = INT8_TOL, seed: int = 0) -> dict[str, Any]:
    """Write the INT8 file of ``subnet`` as ``fmt`` (one of :data:`INT8_FORMATS`), post-training
    quantized on ``calib_images`` by its record's quantizer (BN is not touched here). The file's logits
    on up to 8 calibration images are compared with the fp32 subnet's: the relative error is recorded
    and must be finite and <= ``tol`` (:data:`INT8_TOL`: no bound by default). ``batch``: N (fixed
    formats: default 1) or ``"dynamic"`` (dynamic formats, their default)."""
    rt = find_format(fmt)
    if rt is None or rt.int8 is None:
        raise ExportError(f"--precision int8 applies to formats {', '.join(INT8_FORMATS)}, not to {fmt}")
    batch = parse_batch(batch, fmt)
    dynamic = batch == DYNAMIC
    model, x, _ = _check_inputs(subnet, 2 if dynamic else int(batch), seed)
    calib = calib_images.detach().to("cpu", torch.float32)
    probe = resize_input(calib[:8], int(x.shape[2]))
    file = rt.export(model, x, "int8", calib, dynamic_batch=dynamic)
    out = fixed_batch_fn(rt.load(file, 1).predict, probe.shape[0] if dynamic else int(batch))(probe)
    err = relative_error(out.numpy(), model, probe)
    if not (np.isfinite(err) and err <= tol):
        raise ExportError(f"INT8 {fmt} check failed: relative error {err:.3g} > {tol:g} against the fp32 subnet")
    return {**rt.save(file, path), "rel_error": err, "batch": batch, "precision": "int8",
            "calib_images": int(calib.shape[0])}


# --------------------------------------------------------------------------- safetensors
def subnet_spec(subnet: nn.Module) -> dict[str, Any]:
    """The JSON that rebuilds a subnet: arch, space and number of classes."""
    space, arch, num_classes = _subnet_info(subnet)
    return {"format": SUBNET_FORMAT, "version": 1, "arch": arch.to_dict(), "space": space.to_dict(),
            "num_classes": num_classes, "resolution": int(arch.resolution)}


def export_safetensors(subnet: nn.Module, path: str | Path) -> dict[str, Any]:
    """Write the subnet's weights as a bundle holds them: the folder ``path`` with ``model.safetensors``
    (its description in the metadata) and ``config.json``, read by
    :func:`~attentivenas.export.bundle.load_pretrained` (:mod:`attentivenas.export.weights`)."""
    spec = subnet_spec(subnet)
    space, arch, n = _subnet_info(subnet)
    return write_weights_folder(path, cpu_state(subnet), spec, count_flops(space, arch, n),
                                count_params(space, arch, n) / 1e6)


def export_subnet(subnet: nn.Module, path: str | Path, fmt: str = DEFAULT_FORMAT,
                  calib_batches: Sequence[torch.Tensor] | None = None, precision: str = "fp32",
                  calib_images: torch.Tensor | None = None,
                  check_data: tuple[torch.Tensor, torch.Tensor] | None = None,
                  max_int8_drop: float = DEFAULT_MAX_INT8_DROP, **kwargs: Any) -> dict[str, Any]:
    """Export one subnet as ``fmt`` (one of :data:`FORMATS`); with ``calib_batches`` its BN
    statistics are first recalibrated on them (on a copy). ``kwargs`` go to the format's writer
    (``batch`` for ONNX, ``.pt2``, ``.pte`` and OpenVINO; ``exporter`` for ONNX).

    ``precision="int8"`` (formats :data:`INT8_FORMATS`): :func:`export_int8` on ``calib_images``
    (``N x 3 x H x W``; ``None``: the first :data:`DEFAULT_CALIB_IMAGES` images of
    ``calib_batches``), after the BN recalibration. ``check_data`` (images, labels): the INT8 file is
    run by its runtime in a process without ``attentivenas`` and ``top1_fp32``, ``top1_int8``,
    ``agreement``, ``drop_points``, ``check_images`` and the drop against ``max_int8_drop`` (points:
    ``int8_drop``, ``int8_drop_exceeded``) join the info (:func:`check_int8_accuracy`).
    The info always has ``precision``."""
    check_precision(precision)
    check_format(fmt, kwargs, precision)
    if precision == "int8" and calib_images is None:
        if not calib_batches:
            raise ExportError("an INT8 export needs calibration images (calib_images, or calib_batches of "
                              "training images; --calib-images on the command line)")
        calib_images = torch.cat([b.detach().to("cpu", torch.float32) for b in calib_batches])[:DEFAULT_CALIB_IMAGES]
    if calib_batches is not None:
        subnet = calibrate_bn(copy.deepcopy(subnet), calib_batches)
    if precision == "int8":
        assert calib_images is not None
        info = export_int8(subnet, path, fmt, calib_images, batch=kwargs.get("batch"))
        if check_data is not None:
            batch = info["batch"] if isinstance(info["batch"], int) else 32
            info.update(check_int8_accuracy(info["path"], fmt, check_data[0], check_data[1], subnet, batch=batch))
            info.update(int8_drop_fields(info, max_int8_drop))
        return info
    if find_format(fmt) is not None:
        info = export_file(subnet, path, fmt, **kwargs)
    elif fmt == "safetensors":
        info = export_safetensors(subnet, path)
    else:
        warnings.warn(TORCHSCRIPT_DEPRECATED, FutureWarning, stacklevel=2)
        info = {"path": str(export_torchscript(subnet, path))}
    return {**info, "precision": "fp32"}


def check_format(fmt: str, kwargs: Mapping[str, Any], precision: str = "fp32") -> None:
    """Refuse an unknown format or precision, and options its writer does not take, before any work."""
    rt = find_format(fmt)
    if rt is None and fmt not in WEIGHT_FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; use one of {list(FORMATS)}")
    check_precision(precision)
    if precision == "int8" and (rt is None or rt.int8 is None):
        raise ExportError(f"--precision int8 applies to formats {', '.join(INT8_FORMATS)}, not to {fmt}")
    takes = rt.file_options if rt is not None else {}
    given = {k: v for k, v in kwargs.items() if v is not None and k != "batch"}
    for key, value in given.items():
        if precision == "int8" and key in takes and value != takes[key]:  # the quantizer exports with the default
            raise ExportError(f"an INT8 {rt.check_title} file is exported with the {takes[key]} {key}; "  # type: ignore[union-attr]
                              f"drop --{fmt}-{key}")
    if kwargs.get("batch") is not None:
        parse_batch(kwargs["batch"], fmt)
    for key in given:
        owner = next((r for r in RUNTIMES.values() if key in r.file_options), None)
        if key not in takes and owner is not None:
            raise ExportError(f"an {owner.check_title} {key} applies to --format {owner.format}, not to {fmt}")
    if rt is None and given:
        raise ExportError(f"the {fmt} format takes no {', '.join(sorted(given))}")
