"""Standalone subnets: ``torch.export`` programs (``.pt2``, checked with ``torch.export.load``; the
default), ONNX (dynamo exporter by default, checked with onnxruntime), ExecuTorch programs (``.pte``,
XNNPACK delegate, checked with ExecuTorch's runtime), safetensors + arch JSON, and TorchScript
(deprecated: ``torch.jit`` is deprecated in PyTorch; a :class:`FutureWarning` says so).

The batch of ONNX, ``.pt2`` and ``.pte`` files is ``batch``: a fixed size N or ``"dynamic"`` (a
symbolic batch axis, ``torch.export.Dim``; ONNX and ``.pt2`` only, ExecuTorch programs here have a
fixed input shape). Each writer returns it as ``"batch"`` in its info dict (and
:func:`export_pareto_set` in ``index.json``).

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

:func:`export_safetensors` writes the state dict with safetensors and, beside it,
``<stem>.arch.json`` (arch, space, number of classes) so :func:`load_safetensors_subnet` rebuilds
the subnet without pickle. :func:`export_subnet` dispatches on the format, optionally recalibrating
BN first; :func:`export_pareto_set` writes a whole Pareto set in one call.
"""

from __future__ import annotations

import copy
import io
import json
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save
from torch import nn

from ..errors import UserError
from ..io import atomic_write_bytes, atomic_write_json
from ..nn.bn import calibrate_bn
from ..nn.layers import resize_input
from ..nn.static import StaticSubnet
from ..runtimes.programs import (
    executorch_bytes,
    executorch_method,
    exported_program,
    onnx_bytes,
    onnx_session,
    openvino_config,
    program_bytes,
    quiet,
    require,
)
from ..runtimes.quantize import (
    DEFAULT_CALIB_IMAGES,
    DEFAULT_MAX_INT8_DROP,
    INT8_FORMATS,
    check_int8_accuracy,
    check_precision,
    fixed_batch_fn,
    int8_drop_fields,
    int8_executorch_bytes,
    int8_onnx_bytes,
    int8_openvino_model,
    save_openvino,
)
from ..space import Arch, SearchSpace

SUBNET_FORMAT = "attentivenas-subnet"
#: formats written without an optional extra (the quick start's choices), default first
BASE_FORMATS = ("torch-export", "onnx", "safetensors", "torchscript")
FORMATS = (*BASE_FORMATS, "executorch", "openvino")
DEFAULT_FORMAT = "torch-export"
#: formats whose files have a batch size (``batch=N`` or ``"dynamic"``)
BATCH_FORMATS = ("onnx", "torch-export", "executorch", "openvino")
#: formats whose files have a fixed input shape (no ``"dynamic"`` batch; default batch 1)
FIXED_BATCH_FORMATS = ("executorch", "openvino")
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
ONNX_EXPORTERS = ("dynamo", "torchscript")
DYNAMIC = "dynamic"
#: the largest ``--batch`` of an exported file: its export traces and checks the model on two random batches
#: of that size (at 224 px, batch 256 is about 150 MB of input and a few GB of activations)
MAX_BATCH = 256
TORCHSCRIPT_DEPRECATED = ("the torchscript format is deprecated (torch.jit is deprecated in PyTorch); "
                          "use --format torch-export (.pt2, loaded with torch.export.load)")
SUFFIXES = {"torchscript": ".pt", "onnx": ".onnx", "safetensors": ".safetensors", "torch-export": ".pt2",
            "executorch": ".pte", "openvino": ".xml"}


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
    if value is None:
        return 1 if fmt in FIXED_BATCH_FORMATS else DYNAMIC
    if fmt not in BATCH_FORMATS:
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
        if fmt in FIXED_BATCH_FORMATS:
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


# --------------------------------------------------------------------------- ONNX
def onnx_relative_error(onnx_bytes: bytes, model: nn.Module, x: torch.Tensor) -> float:
    """``max |onnx - torch| / max |torch|`` of the logits of ``x`` (onnxruntime, CPU)."""
    sess = onnx_session(onnx_bytes, threads=1)
    out = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    return relative_error(out, model, x)


def relative_error(out: Any, model: nn.Module, x: torch.Tensor) -> float:
    """``max |out - model(x)| / max |model(x)|`` (``inf`` when the shapes differ)."""
    with torch.inference_mode():
        ref = model(x).numpy()
    out = np.asarray(out)
    if out.shape != ref.shape:
        return float("inf")
    scale = max(float(np.abs(ref).max()), 1e-12)
    return float(np.abs(out.astype(np.float64) - ref).max() / scale)


def export_onnx(subnet: nn.Module, path: str | Path, batch: int | str | None = None, opset: int = 17,
                tol: float = 1e-4, exporter: str = "dynamo", seed: int = 0) -> dict[str, Any]:
    """Export ``subnet`` to ONNX at its resolution and check it.

    ``batch``: ``"dynamic"`` (the default: a symbolic batch axis) or a fixed size N.
    ``exporter``: ``"dynamo"`` (``torch.export``-based, the default) or ``"torchscript"`` (PyTorch's
    deprecated tracing exporter, only on request). The exported file is run with onnxruntime on a
    seeded random batch (N images, or 3 for a dynamic batch, which the example batch of 2 does not
    fix); the file is only written when the relative error is <= ``tol``, otherwise
    :class:`ExportError`. Returns ``{"path", "rel_error", "exporter", "opset", "batch"}``.
    """
    batch = parse_batch(batch, "onnx")
    if exporter not in ONNX_EXPORTERS:
        raise ExportError(f"unknown ONNX exporter {exporter!r}; use {' or '.join(ONNX_EXPORTERS)}")
    _subnet_info(subnet)
    model = _cpu_eval_copy(subnet)
    r = int(model.resolution)
    gen = torch.Generator().manual_seed(seed)
    dynamic = batch == DYNAMIC
    x = torch.randn(2 if dynamic else batch, 3, r, r, generator=gen)
    data = onnx_bytes(model, x, opset, exporter, dynamic_batch=dynamic)
    check = torch.randn(3 if dynamic else batch, 3, r, r, generator=gen)
    err = onnx_relative_error(data, model, check)
    if not err <= tol:
        raise ExportError(f"ONNX check failed: relative error {err:.3g} > {tol:g} against PyTorch")
    out = atomic_write_bytes(path, data)
    return {"path": str(out), "rel_error": err, "exporter": exporter,
            "opset": opset if exporter == "torchscript" else max(opset, 18), "batch": batch}


# --------------------------------------------------------------------------- torch.export and ExecuTorch
def _check_inputs(subnet: nn.Module, batch: int, seed: int) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A CPU eval copy of ``subnet``, an example batch and a check batch (seeded)."""
    if batch < 1:
        raise ExportError(f"batch must be >= 1, got {batch}")
    _subnet_info(subnet)
    model = _cpu_eval_copy(subnet)
    r = int(model.resolution)
    gen = torch.Generator().manual_seed(seed)
    return model, torch.randn(batch, 3, r, r, generator=gen), torch.randn(batch, 3, r, r, generator=gen)


def torch_export_relative_error(data: bytes, model: nn.Module, x: torch.Tensor) -> float:
    """Relative error of a ``.pt2`` file loaded with ``torch.export.load`` against ``model`` on ``x``."""
    loaded = torch.export.load(io.BytesIO(data)).module()
    with torch.inference_mode():
        return relative_error(loaded(x).numpy(), model, x)


def export_torch_export(subnet: nn.Module, path: str | Path, batch: int | str | None = None, tol: float = 1e-4,
                        seed: int = 0) -> dict[str, Any]:
    """Write a ``.pt2`` ExportedProgram (``torch.export``) loadable with ``torch.export.load`` alone,
    checked against the eager subnet. ``batch``: ``"dynamic"`` (the default: a ``torch.export.Dim``
    batch axis, exported on a batch of 2 and checked on 3) or a fixed size N (checked on N)."""
    batch = parse_batch(batch, "torch-export")
    dynamic = batch == DYNAMIC
    model, _, check = _check_inputs(subnet, 3 if dynamic else batch, seed)
    example = torch.randn(2 if dynamic else batch, *check.shape[1:], generator=torch.Generator().manual_seed(seed))
    data = program_bytes(exported_program(model, example, dynamic_batch=dynamic))  # batch 2: not specialised to 1
    err = torch_export_relative_error(data, model, check)
    if not err <= tol:
        raise ExportError(f"torch.export check failed: relative error {err:.3g} > {tol:g} against PyTorch")
    return {"path": str(atomic_write_bytes(path, data)), "rel_error": err, "batch": batch}


def executorch_relative_error(data: bytes, model: nn.Module, x: torch.Tensor) -> float:
    """Relative error of an ExecuTorch program run by ExecuTorch's runtime against ``model`` on ``x``."""
    out = executorch_method(data).execute([x])[0]
    return relative_error(out.numpy(), model, x)


def export_executorch(subnet: nn.Module, path: str | Path, batch: int | str | None = None, tol: float = 1e-4,
                      seed: int = 0) -> dict[str, Any]:
    """Write a ``.pte`` ExecuTorch program (XNNPACK delegate, fixed input shape ``batch x 3 x r x r``,
    default batch 1; ``"dynamic"`` is refused) checked with ExecuTorch's runtime against the eager
    subnet; needs the ``executorch`` extra."""
    batch = parse_batch(batch, "executorch")
    assert isinstance(batch, int)
    model, x, check = _check_inputs(subnet, batch, seed)
    data = executorch_bytes(model, x)
    err = executorch_relative_error(data, model, check)
    if not err <= tol:
        raise ExportError(f"ExecuTorch check failed: relative error {err:.3g} > {tol:g} against PyTorch")
    return {"path": str(atomic_write_bytes(path, data)), "rel_error": err, "batch": batch}


# --------------------------------------------------------------------------- OpenVINO
def _openvino_run(ov_model: Any, batch: int) -> Any:
    """``images -> logits`` of an ``openvino.Model`` compiled for the CPU (one thread)."""
    ov = require("openvino")
    request = ov.Core().compile_model(ov_model, "CPU", openvino_config(1)).create_infer_request()
    return fixed_batch_fn(lambda a: np.array(request.infer({0: a})[0]), batch)


def export_openvino(subnet: nn.Module, path: str | Path, batch: int | str | None = None, tol: float = 1e-4,
                    seed: int = 0) -> dict[str, Any]:
    """Write an OpenVINO IR (``.xml`` + ``.bin``; ``path``'s suffix becomes ``.xml``) of the subnet's
    ``torch.export`` program at a fixed batch (default 1), checked with OpenVINO's CPU plugin against
    the eager subnet; needs the ``openvino`` extra."""
    batch = parse_batch(batch, "openvino")
    assert isinstance(batch, int)
    ov = require("openvino")
    model, x, check = _check_inputs(subnet, batch, seed)
    with quiet(), torch.no_grad():
        converted = ov.convert_model(exported_program(model, x))
    err = relative_error(_openvino_run(converted, batch)(check).numpy(), model, check)
    if not err <= tol:
        raise ExportError(f"OpenVINO check failed: relative error {err:.3g} > {tol:g} against PyTorch")
    return {**save_openvino(converted, path), "rel_error": err, "batch": batch}


# --------------------------------------------------------------------------- INT8
def export_int8(subnet: nn.Module, path: str | Path, fmt: str, calib_images: torch.Tensor,
                batch: int | str | None = None, tol: float = INT8_TOL, seed: int = 0) -> dict[str, Any]:
    """Write the INT8 file of ``subnet`` as ``fmt`` (one of :data:`INT8_FORMATS`), post-training
    quantized on ``calib_images`` (:mod:`attentivenas.runtimes.quantize`; BN is not touched here). The
    file's logits on up to 8 calibration images are compared with the fp32 subnet's: the relative
    error is recorded and must be finite and <= ``tol`` (:data:`INT8_TOL`: no bound by default).
    ``batch``: N (ExecuTorch and OpenVINO: default 1) or ``"dynamic"`` (ONNX only, its default)."""
    if fmt not in INT8_FORMATS:
        raise ExportError(f"--precision int8 applies to formats {', '.join(INT8_FORMATS)}, not to {fmt}")
    batch = parse_batch(batch, fmt)
    dynamic = batch == DYNAMIC
    model, x, _ = _check_inputs(subnet, 2 if dynamic else int(batch), seed)
    calib = calib_images.detach().to("cpu", torch.float32)
    probe = calib[:8]
    probe = resize_input(probe, int(x.shape[2]))
    if fmt == "onnx":
        data = int8_onnx_bytes(model, x, calib, dynamic_batch=dynamic)
        sess = onnx_session(data, threads=1)
        name = sess.get_inputs()[0].name
        out = fixed_batch_fn(lambda a: sess.run(None, {name: a})[0], probe.shape[0] if dynamic else int(batch))(probe)
    elif fmt == "executorch":
        data = int8_executorch_bytes(model, x, calib)
        method = executorch_method(data)
        out = fixed_batch_fn(lambda a: method.execute([torch.from_numpy(a)])[0].numpy(), int(batch))(probe)
    else:
        ov_model = int8_openvino_model(model, x, calib)
        out = _openvino_run(ov_model, int(batch))(probe)
    err = relative_error(out.numpy(), model, probe)
    if not (np.isfinite(err) and err <= tol):
        raise ExportError(f"INT8 {fmt} check failed: relative error {err:.3g} > {tol:g} against the fp32 subnet")
    info = save_openvino(ov_model, path) if fmt == "openvino" else {"path": str(atomic_write_bytes(path, data))}
    return {**info, "rel_error": err, "batch": batch, "precision": "int8", "calib_images": int(calib.shape[0])}


# --------------------------------------------------------------------------- safetensors
def subnet_spec(subnet: nn.Module) -> dict[str, Any]:
    """The JSON that rebuilds a subnet: arch, space and number of classes."""
    space, arch, num_classes = _subnet_info(subnet)
    return {"format": SUBNET_FORMAT, "version": 1, "arch": arch.to_dict(), "space": space.to_dict(),
            "num_classes": num_classes, "resolution": int(arch.resolution)}


def export_safetensors(subnet: nn.Module, path: str | Path) -> dict[str, Any]:
    """Write the state dict with safetensors (spec also in its metadata) and ``<stem>.arch.json``."""
    spec = subnet_spec(subnet)
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in subnet.state_dict().items()}
    data = save(state, metadata={"attentivenas": json.dumps(spec)})
    out = atomic_write_bytes(path, data)
    js = atomic_write_json(arch_json_path(out), spec)
    return {"path": str(out), "arch_json": str(js), "tensors": len(state)}


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
    if fmt == "onnx":
        info = export_onnx(subnet, path, **kwargs)
    elif fmt == "safetensors":
        info = export_safetensors(subnet, path)
    elif fmt == "torch-export":
        info = export_torch_export(subnet, path, **kwargs)
    elif fmt == "executorch":
        info = export_executorch(subnet, path, **kwargs)
    elif fmt == "openvino":
        info = export_openvino(subnet, path, **kwargs)
    else:
        warnings.warn(TORCHSCRIPT_DEPRECATED, FutureWarning, stacklevel=2)
        info = {"path": str(export_torchscript(subnet, path))}
    return {**info, "precision": "fp32"}


def check_format(fmt: str, kwargs: Mapping[str, Any], precision: str = "fp32") -> None:
    """Refuse an unknown format or precision, and options its writer does not take, before any work."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; use one of {list(FORMATS)}")
    check_precision(precision)
    if precision == "int8" and fmt not in INT8_FORMATS:
        raise ExportError(f"--precision int8 applies to formats {', '.join(INT8_FORMATS)}, not to {fmt}")
    if precision == "int8" and kwargs.get("exporter") not in (None, "dynamo"):
        raise ExportError("an INT8 ONNX file is exported with the dynamo exporter; drop --onnx-exporter")
    if kwargs.get("batch") is not None:
        parse_batch(kwargs["batch"], fmt)
    if kwargs.get("exporter") is not None and fmt != "onnx":
        raise ExportError(f"an ONNX exporter applies to --format onnx, not to {fmt}")
    if fmt in ("torchscript", "safetensors"):
        extra = sorted(k for k, v in kwargs.items() if v is not None)
        if extra:
            raise ExportError(f"the {fmt} format takes no {', '.join(extra)}")


