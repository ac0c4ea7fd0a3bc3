"""Deployment runtimes a model is timed in: PyTorch eager (``torch``), ONNX Runtime, ExecuTorch
(XNNPACK delegate) and OpenVINO (CPU plugin).

:func:`prepare` turns a model and an example input into a :class:`Runner`: the model exported and
loaded in the runtime, bound to the input, with the runtime's threads set. The timing loop
(:func:`attentivenas.latency.measure_latency`) is the same for every runtime. The runtimes other
than ``torch`` run on the CPU and are exported at a fixed input shape (batch included), as they
would be deployed.

``precision="int8"`` (runtimes :data:`~attentivenas.runtimes.quantize.INT8_RUNTIMES`: ExecuTorch, ONNX
Runtime, OpenVINO) times the model post-training quantized as :mod:`attentivenas.runtimes.quantize` does
it for export, calibrated on :data:`LATENCY_CALIB_IMAGES` seeded random-normal inputs: latency does
not depend on the calibration data (the ranges change the scales, not the ops or their shapes), so
no data set is needed to time or tabulate INT8 models.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import torch
from torch import nn

from ..devices import resolve_device
from ..errors import UserError
from .programs import (
    executorch_bytes,
    executorch_method,
    onnx_bytes,
    onnx_session,
    openvino_compiled,
    openvino_config,
    require,
    set_executorch_threads,
)
from .quantize import (
    check_int8_runtime,
    check_precision,
    int8_executorch_bytes,
    int8_onnx_bytes,
    int8_openvino_model,
    seeded_calibration,
)

RUNTIMES = ("torch", "onnxruntime", "executorch", "openvino")
#: runtimes whose work runs on the calling thread with one thread (so ``clock="cpu"`` counts it)
CPU_CLOCK_RUNTIMES = ("torch", "onnxruntime", "executorch")
#: runtimes that load a program file (bytes), which can be exported in another process
PROGRAM_RUNTIMES = ("onnxruntime", "executorch")
#: seeded random-normal images an INT8 model is calibrated on for timing (latency does not depend on them)
LATENCY_CALIB_IMAGES = 8
_PACKAGES = {"torch": "torch", "onnxruntime": "onnxruntime", "executorch": "executorch", "openvino": "openvino"}


@dataclass
class Runner:
    """One model loaded in a runtime and bound to its input: ``run()`` is one forward."""

    runtime: str
    run: Callable[[], Any]
    threads: int
    device: str = "cpu"
    sync: Callable[[], None] = field(default=lambda: None)
    session: Callable[[], contextlib.AbstractContextManager[None]] = field(default=contextlib.nullcontext)


def check_runtime(runtime: str, device: str | torch.device | None = "cpu", precision: str = "fp32") -> torch.device:
    """The device ``runtime`` runs on; a user error for an unknown runtime or precision, INT8 in a
    runtime that does not run it, a missing package or quantizer (naming its extra) or a device it
    does not run on here."""
    if runtime not in RUNTIMES:
        raise UserError(f"unknown runtime {runtime!r}; use one of {', '.join(RUNTIMES)}")
    if check_precision(precision) == "int8":
        check_int8_runtime(runtime)
    dev = resolve_device(device)
    if runtime != "torch":
        require(runtime)
        if dev.type != "cpu":
            raise UserError(f"runtime {runtime!r} is measured on the CPU here; use --device cpu")
    return dev


def runtime_version(runtime: str) -> str:
    """The installed version of the runtime's package ('' when unknown)."""
    try:
        return metadata.version(_PACKAGES.get(runtime, runtime))
    except metadata.PackageNotFoundError:
        return ""


def prepare(model: nn.Module, x: torch.Tensor, runtime: str = "torch", device: str | torch.device | None = "cpu",
            threads: int | None = None, precision: str = "fp32") -> Runner:
    """``model`` (put in eval mode) as ``runtime`` runs it on the input ``x``, in ``precision``
    (``int8``: quantized, see the module's docstring); ``threads`` defaults to PyTorch's intra-op
    thread count, and is always stated in the runner."""
    dev = check_runtime(runtime, device, precision)
    n = _threads(threads)
    model.eval()
    if runtime == "torch":
        return _torch_runner(model, x, dev, n)
    if runtime in PROGRAM_RUNTIMES:
        return load_program(export_program(model, x, runtime, precision), x, runtime, n)
    x = x.detach().to("cpu", torch.float32)
    if precision == "int8":
        ov = require("openvino")
        quantized = int8_openvino_model(model.to("cpu"), x, latency_calibration(x))
        compiled = ov.Core().compile_model(quantized, "CPU", openvino_config(n))
    else:
        compiled = openvino_compiled(model.to("cpu"), x, n)
    request = compiled.create_infer_request()
    arr = x.numpy()
    return Runner(runtime, lambda: request.infer({0: arr}), n)


def latency_calibration(x: torch.Tensor) -> torch.Tensor:
    """The seeded random-normal images an INT8 model timed on inputs like ``x`` is calibrated on."""
    return seeded_calibration(tuple(x.shape[1:]), LATENCY_CALIB_IMAGES, seed=0)


def export_program(model: nn.Module, x: torch.Tensor, runtime: str, precision: str = "fp32") -> bytes:
    """The program file ``runtime`` (one of :data:`PROGRAM_RUNTIMES`) loads, for ``model`` at the
    shape of ``x``, in ``precision``: ONNX for ONNX Runtime (INT8: QDQ), ``.pte`` (XNNPACK; INT8:
    PT2E) for ExecuTorch. Needs no runtime state, so worker processes can export while this one
    loads (:mod:`.exports`)."""
    check_runtime(runtime, precision=precision)
    model.eval()
    x = x.detach().to("cpu", torch.float32)
    if precision == "int8" and runtime == "onnxruntime":
        with cached_onnx_registry():
            return int8_onnx_bytes(model.to("cpu"), x, latency_calibration(x))
    if precision == "int8" and runtime == "executorch":
        with cached_pt2e_patterns():
            return int8_executorch_bytes(model.to("cpu"), x, latency_calibration(x))
    if runtime == "onnxruntime":
        return onnx_bytes(model.to("cpu"), x, dynamic_batch=False)
    if runtime == "executorch":
        return executorch_bytes(model.to("cpu"), x)
    raise _not_a_program_runtime(runtime)


_ONNX_REGISTRIES: dict[Any, Any] = {}


@contextlib.contextmanager
def cached_onnx_registry() -> Iterator[None]:
    """Meanwhile, ``torch.onnx``'s dynamo exporter (the INT8 ONNX path) builds its registry of torchlib
    functions once per opset and reuses it: it builds it again on every export otherwise, which was
    most of an INT8 op's export in a latency table (``benchmarks/results/int8-table-build.json``).
    The registry is only read by an export without a custom translation table (ours). Where the
    exporter's private API differs, nothing is cached."""
    try:
        from torch.onnx._internal.exporter import _registration  # heavy (torch.onnx), private API: guarded
        real = _registration.ONNXRegistry.__dict__["from_torchlib"].__func__
    except (ImportError, AttributeError, KeyError):
        yield
        return

    def from_torchlib(cls: type, opset_version: Any = None) -> Any:
        key = (cls, opset_version)
        if key not in _ONNX_REGISTRIES:
            _ONNX_REGISTRIES[key] = real(cls) if opset_version is None else real(cls, opset_version)
        return _ONNX_REGISTRIES[key]

    _registration.ONNXRegistry.from_torchlib = classmethod(from_torchlib)
    try:
        yield
    finally:
        _registration.ONNXRegistry.from_torchlib = classmethod(real)


_PT2E_PATTERNS: dict[Any, Any] = {}


@contextlib.contextmanager
def cached_pt2e_patterns() -> Iterator[None]:
    """Meanwhile, the XNNPACK quantizer's conv + BN patterns (each ``torch.export``-ed again, 4 per
    conv pattern, on every INT8 ExecuTorch export) are exported once and copied: the pattern graph
    depends on the pattern's code, its closure (conv function, ReLU flags) and the example inputs'
    shapes only. Patterns without such a key, or another quantizer version, are not cached."""
    try:
        from executorch.backends.xnnpack.quantizer import xnnpack_quantizer_utils as utils  # optional, private
        real = utils._get_aten_graph_module_for_pattern
    except (ImportError, AttributeError):
        yield
        return

    def cached(pattern: Any, example_inputs: tuple[Any, ...], is_cuda: bool = False, **kwargs: Any) -> Any:
        key = _pattern_key(pattern, example_inputs, is_cuda, kwargs)
        if key is None:
            return real(pattern, example_inputs, is_cuda, **kwargs)
        if key not in _PT2E_PATTERNS:
            _PT2E_PATTERNS[key] = real(pattern, example_inputs, is_cuda, **kwargs)
        return copy.deepcopy(_PT2E_PATTERNS[key])

    utils._get_aten_graph_module_for_pattern = cached
    try:
        yield
    finally:
        utils._get_aten_graph_module_for_pattern = real


def _pattern_key(pattern: Any, example_inputs: tuple[Any, ...], is_cuda: bool, kwargs: dict[str, Any]) -> Any:
    """What a quantizer pattern's graph depends on, hashable; ``None`` when it cannot be told."""
    fn = getattr(pattern, "fn", None)
    code = getattr(fn, "__code__", None)
    if code is None:
        return None
    try:
        cells = tuple(c.cell_contents for c in (fn.__closure__ or ()))
        shapes = tuple((tuple(x.shape), str(x.dtype)) if isinstance(x, torch.Tensor) else x for x in example_inputs)
        key = (code, cells, shapes, bool(is_cuda), tuple(sorted(kwargs.items())))
        hash(key)
    except (TypeError, ValueError):  # an empty cell, an unhashable closure or argument
        return None
    return key


def load_program(data: bytes, x: torch.Tensor, runtime: str, threads: int | None = None) -> Runner:
    """A program of :func:`export_program` loaded in ``runtime`` and bound to the input ``x``."""
    n = _threads(threads)
    x = x.detach().to("cpu", torch.float32)
    if runtime == "onnxruntime":
        sess = onnx_session(data, n)
        feed = {sess.get_inputs()[0].name: x.numpy()}
        return Runner(runtime, lambda: sess.run(None, feed), n)
    if runtime == "executorch":
        _executorch_pool(n)
        method = executorch_method(data)
        return Runner(runtime, lambda: method.execute([x]), n, session=lambda: _executorch_threads(n))
    raise _not_a_program_runtime(runtime)


def check_program_runtime(runtime: str) -> None:
    """Refuse (``ValueError``) a runtime that is not loaded from a program file."""
    if runtime not in PROGRAM_RUNTIMES:
        raise _not_a_program_runtime(runtime)


def _not_a_program_runtime(runtime: str) -> ValueError:
    return ValueError(f"runtime {runtime!r} is not loaded from a program file; use one of {PROGRAM_RUNTIMES}")


def _executorch_pool(threads: int) -> None:
    """ExecuTorch's process-wide thread pool set to ``threads`` (its log lines silenced there)."""
    set_executorch_threads(threads)


def _threads(threads: int | None) -> int:
    if threads is not None and threads < 1:
        raise UserError(f"threads must be >= 1, got {threads}")
    return int(threads if threads is not None else torch.get_num_threads())


def _torch_runner(model: nn.Module, x: torch.Tensor, dev: torch.device, threads: int) -> Runner:
    model.to(dev)
    xd = x.to(dev)

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    return Runner("torch", lambda: model(xd), threads, str(dev), sync, lambda: _torch_threads(threads))


@contextlib.contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            yield
    finally:
        torch.set_num_threads(old)


@contextlib.contextmanager
def _executorch_threads(threads: int) -> Iterator[None]:
    _executorch_pool(threads)  # process-wide pool: set again before each timing
    yield
