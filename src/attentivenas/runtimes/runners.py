"""Deployment runtimes a model is timed in (:data:`RUNTIMES`: PyTorch eager, ONNX Runtime, ExecuTorch
with the XNNPACK delegate, OpenVINO's CPU plugin), each through its record
(:mod:`attentivenas.runtimes.records`).

:func:`prepare` turns a model and an example input into a :class:`Runner`: the model exported and
loaded in the runtime, bound to the input, with the runtime's threads set. The timing loop
(:func:`attentivenas.latency.measure_latency`) is the same for every runtime. The runtimes other
than the eager one run on the CPU and are exported at a fixed input shape (batch included), as they
would be deployed.

``precision="int8"`` (runtimes :data:`~attentivenas.runtimes.quantize.INT8_RUNTIMES`: those whose
record has a quantizer) times the model post-training quantized as the record does it for export,
calibrated on :data:`LATENCY_CALIB_IMAGES` seeded random-normal inputs: latency does not depend on
the calibration data (the ranges change the scales, not the ops or their shapes), so no data set is
needed to time or tabulate INT8 models.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import torch
from torch import nn

from ..devices import resolve_device
from ..errors import UserError
from .int8 import seeded_calibration
from .quantize import check_int8_runtime, check_precision
from .records import RUNTIMES as RECORDS
from .records import Runtime, runtime

#: the runtimes a model is timed in, in the order messages list them
RUNTIMES = tuple(RECORDS)
#: runtimes whose work runs on the calling thread with one thread (so ``clock="cpu"`` counts it)
CPU_CLOCK_RUNTIMES = tuple(r.name for r in RECORDS.values() if r.cpu_clock)
#: runtimes that load a program file (bytes), which can be exported in another process
PROGRAM_RUNTIMES = tuple(r.name for r in RECORDS.values() if r.program)
#: seeded random-normal images an INT8 model is calibrated on for timing (latency does not depend on them)
LATENCY_CALIB_IMAGES = 8


@dataclass
class Runner:
    """One model loaded in a runtime and bound to its input: ``run()`` is one forward."""

    runtime: str
    run: Callable[[], Any]
    threads: int
    device: str = "cpu"
    sync: Callable[[], None] = field(default=lambda: None)
    session: Callable[[], contextlib.AbstractContextManager[None]] = field(default=contextlib.nullcontext)


def check_runtime(name: str, device: str | torch.device | None = "cpu", precision: str = "fp32") -> torch.device:
    """The device runtime ``name`` runs on; a user error for an unknown runtime or precision, INT8 in a
    runtime that does not run it, a missing package or quantizer (naming its extra) or a device it
    does not run on here."""
    rt = runtime(name)
    if check_precision(precision) == "int8":
        check_int8_runtime(name)
    dev = resolve_device(device)
    if not rt.eager:
        rt.require()
        if dev.type != "cpu":
            raise UserError(f"runtime {name!r} is measured on the CPU here; use --device cpu")
    return dev


def runtime_version(name: str) -> str:
    """The installed version of the runtime's package ('' when unknown)."""
    if name in RECORDS:
        return RECORDS[name].version()
    try:
        return metadata.version(name)
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
    rt = RECORDS[runtime]
    if rt.eager:
        return _torch_runner(model, x, dev, n)
    x = x.detach().to("cpu", torch.float32)
    return bind_file(rt, _export(rt, model, x, precision), x, n)


def latency_calibration(x: torch.Tensor) -> torch.Tensor:
    """The seeded random-normal images an INT8 model timed on inputs like ``x`` is calibrated on."""
    return seeded_calibration(tuple(x.shape[1:]), LATENCY_CALIB_IMAGES, seed=0)


def _export(rt: Runtime, model: nn.Module, x: torch.Tensor, precision: str) -> Any:
    """``model`` (eval) as ``rt``'s file at the shape of ``x`` (on the CPU, float32); INT8 calibrated on
    :func:`latency_calibration`, inside the quantizer's cache."""
    if precision == "int8":
        with rt.check_int8().cache():
            return rt.export(model.to("cpu"), x, "int8", latency_calibration(x))
    return rt.export(model.to("cpu"), x)


def export_program(model: nn.Module, x: torch.Tensor, runtime: str, precision: str = "fp32") -> bytes:
    """The program file ``runtime`` (one of :data:`PROGRAM_RUNTIMES`) loads, for ``model`` at the
    shape of ``x``, in ``precision`` (the record's export: ONNX for ONNX Runtime, INT8: QDQ; ``.pte``
    for ExecuTorch, INT8: PT2E). Needs no runtime state, so worker processes can export while this one
    loads (:mod:`attentivenas.latency.exports`)."""
    check_runtime(runtime, precision=precision)
    check_program_runtime(runtime)
    model.eval()
    return _export(RECORDS[runtime], model, x.detach().to("cpu", torch.float32), precision)


def load_program(data: bytes, x: torch.Tensor, runtime: str, threads: int | None = None) -> Runner:
    """A program of :func:`export_program` loaded in ``runtime`` and bound to the input ``x``."""
    n = _threads(threads)
    check_program_runtime(runtime)
    return bind_file(RECORDS[runtime], data, x.detach().to("cpu", torch.float32), n)


def bind_file(rt: Runtime, file: Any, x: torch.Tensor, threads: int) -> Runner:
    """A file of ``rt`` (bytes, a path or the runtime's model object) loaded with ``threads`` and bound
    to the input ``x``."""
    loaded = rt.load(file, threads)
    return Runner(rt.name, loaded.bind(x), threads, session=loaded.session)


def check_program_runtime(runtime: str) -> None:
    """Refuse (``ValueError``) a runtime that is not loaded from a program file."""
    rt = RECORDS.get(runtime)
    if rt is None or not rt.program:
        raise ValueError(f"runtime {runtime!r} is not loaded from a program file; use one of {PROGRAM_RUNTIMES}")


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
