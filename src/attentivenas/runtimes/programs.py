"""A static model as a deployment runtime runs it: ``torch.export`` programs, ONNX bytes, ExecuTorch
(XNNPACK delegate) programs and OpenVINO compiled models, plus the optional-import helper that names
the extra to install.

The runtimes other than PyTorch and onnxruntime are optional extras (``pip install
attentivenas[executorch]``, ``[openvino]``); :func:`require` imports one or raises
:class:`MissingRuntimeError` (a user error: one line, exit code 2) naming the extra.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import io
import os
import re
import shutil
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

from ..errors import UserError

#: runtime -> (module to import, the extra of ``attentivenas`` that installs it)
OPTIONAL: dict[str, tuple[str, str]] = {
    "executorch": ("executorch", "executorch"),
    "openvino": ("openvino", "openvino"),
    "onnxruntime": ("onnxruntime", ""),
}


class MissingRuntimeError(UserError):
    """An optional runtime that is not installed (the message names the extra to install)."""


def require(runtime: str) -> ModuleType:
    """Import the package of ``runtime`` or raise :class:`MissingRuntimeError` naming its extra."""
    module, extra = OPTIONAL[runtime]
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        hint = f"pip install 'attentivenas[{extra}]'" if extra else f"pip install {module}"
        raise MissingRuntimeError(f"runtime {runtime!r} needs the {module} package ({hint}); "
                                  f"importing it failed: {exc}") from None


#: prefix of the temporary folders of an export in the system's temporary folder: ``attentivenas-<pid>-<what>-``
TEMP_PREFIX = "attentivenas-"


@contextlib.contextmanager
def private_temp_dir(what: str, where: str | os.PathLike[str] | None = None) -> Iterator[Path]:
    """A temporary folder named after this process (``attentivenas-<pid>-<what>-*``, in ``where`` or the
    system's temporary folder), removed on exit; one a killed process left is removed by the next
    :func:`remove_orphan_temp_dirs`."""
    with tempfile.TemporaryDirectory(prefix=f"{TEMP_PREFIX}{os.getpid()}-{what}-", dir=where) as tmp:
        yield Path(tmp)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        return True
    return True


def remove_orphan_temp_dirs(where: str | os.PathLike[str] | None = None) -> list[Path]:
    """Remove the folders of :func:`private_temp_dir` (in ``where`` or the system's temporary folder)
    whose process is gone (a killed export's); returns them."""
    root = Path(where) if where is not None else Path(tempfile.gettempdir())
    removed = []
    for d in root.glob(f"{TEMP_PREFIX}*-*-*"):
        pid_text = d.name[len(TEMP_PREFIX):].split("-", 1)[0]
        if d.is_dir() and not d.is_symlink() and pid_text.isdigit() and not _alive(int(pid_text)):
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
    return removed


def is_available(runtime: str) -> bool:
    """Whether the package of ``runtime`` imports (``torch`` always does)."""
    if runtime == "torch":
        return True
    try:
        require(runtime)
    except MissingRuntimeError:
        return False
    return True


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence the exporters' warnings and prints (they are about internals, not the user's model)."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def _eval_cpu(model: nn.Module) -> nn.Module:
    return model.to(device="cpu", dtype=torch.float32).eval()


# --------------------------------------------------------------------------- torch.export
def exported_program(model: nn.Module, x: torch.Tensor, dynamic_batch: bool = False) -> torch.export.ExportedProgram:
    """``torch.export`` of ``model`` (put in eval mode on the CPU) on the example ``x``; with
    ``dynamic_batch`` the batch axis is symbolic (1 to 1024)."""
    model = _eval_cpu(model)
    shapes = None
    if dynamic_batch:
        name = next(iter(_forward_args(model)), "x")
        shapes = {name: {0: torch.export.Dim("batch", min=1, max=1024)}}
    with quiet(), torch.no_grad():
        return torch.export.export(model, (x,), dynamic_shapes=shapes)


def _forward_args(model: nn.Module) -> list[str]:
    return list(inspect.signature(model.forward).parameters)


def program_bytes(program: torch.export.ExportedProgram) -> bytes:
    """The ``.pt2`` file of an ExportedProgram (``torch.export.save``)."""
    buf = io.BytesIO()
    torch.export.save(program, buf)
    return buf.getvalue()


# --------------------------------------------------------------------------- ONNX
def onnx_bytes(model: nn.Module, x: torch.Tensor, opset: int = 17, exporter: str = "torchscript",
               dynamic_batch: bool = True) -> bytes:
    """ONNX of ``model`` on the example ``x`` (input ``input``, output ``logits``)."""
    if exporter == "torchscript":
        buf = io.BytesIO()
        axes = {"input": {0: "batch"}, "logits": {0: "batch"}} if dynamic_batch else None
        with quiet():
            torch.onnx.export(model, (x,), buf, dynamo=False, input_names=["input"], output_names=["logits"],
                              dynamic_axes=axes, opset_version=opset, do_constant_folding=True)
        return buf.getvalue()
    shapes = {"x": {0: torch.export.Dim("batch")}} if dynamic_batch else None
    with quiet():
        prog = torch.onnx.export(model, (x,), dynamo=True, input_names=["input"], output_names=["logits"],
                                 dynamic_shapes=shapes, opset_version=max(opset, 18), verbose=False)
    return prog.model_proto.SerializeToString()


def onnx_session(data: bytes, threads: int) -> Any:
    """An onnxruntime CPU session of ``data`` running on ``threads`` intra-op threads, sequentially."""
    ort = require("onnxruntime")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"])


# --------------------------------------------------------------------------- ExecuTorch
def executorch_bytes(model: nn.Module, x: torch.Tensor) -> bytes:
    """The ``.pte`` program of ``model`` at the shape of ``x``, lowered to the XNNPACK delegate."""
    require("executorch")
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import (  # optional (executorch extra)
        XnnpackPartitioner,
    )
    from executorch.exir import EdgeCompileConfig, to_edge_transform_and_lower

    program = exported_program(model, x)
    with quiet():
        edge = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()],
                                           compile_config=EdgeCompileConfig(_check_ir_validity=False))
        return bytes(edge.to_executorch().buffer)


class ExecutorchMethod:
    """The ``forward`` method of a loaded ExecuTorch program; holds the program and its bytes alive
    (the method points into them)."""

    def __init__(self, data: bytes | str | os.PathLike[str]) -> None:
        from executorch.runtime import Runtime  # optional (executorch extra)

        self.data = data if isinstance(data, bytes) else os.fspath(data)
        self.program = Runtime.get().load_program(self.data)
        self.method = self.program.load_method("forward")

    def execute(self, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        return self.method.execute(inputs)


def executorch_method(data: bytes | str | os.PathLike[str], threads: int | None = None) -> ExecutorchMethod:
    """The ``forward`` method of an ExecuTorch program (bytes or a ``.pte`` path), loaded with
    ExecuTorch's Python runtime; ``threads`` resets its (process-wide) thread pool."""
    require("executorch")
    if threads is not None:
        set_executorch_threads(threads)
    return ExecutorchMethod(data)


#: what ExecuTorch's native code logs on stderr when its thread pool starts or is reset (CPU probing
#: on every process, "Resetting threadpool" on each reset): information, not errors, and one to
#: five lines each time; :func:`quiet_native_stderr` drops these lines and passes every other one on
NATIVE_NOISE = re.compile(r"^\[(cpuinfo_utils\.cpp|threadpool\.cpp):\d+\] ")


@contextlib.contextmanager
def quiet_native_stderr(noise: re.Pattern[str] = NATIVE_NOISE) -> Iterator[None]:
    """Capture what native code writes to file descriptor 2 meanwhile (Python's ``sys.stderr`` is not
    enough: the runtimes' C++ logging writes to the descriptor) and write it back to stderr without
    the lines matching ``noise``, so real errors still show."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no descriptor 2 (an embedded interpreter): nothing to silence
        yield
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            kept = [line for line in tmp.read().decode("utf-8", "replace").splitlines(keepends=True)
                    if not noise.match(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def set_executorch_threads(threads: int) -> int:
    """Set the threads of ExecuTorch's process-wide pool (XNNPACK runs on it); returns the count. The
    runtime's cpuinfo / thread-pool log lines are dropped (:func:`quiet_native_stderr`)."""
    with quiet_native_stderr():
        from executorch.extension.pybindings import portable_lib  # optional (executorch extra)

        if portable_lib._threadpool_get_thread_count() != threads:
            portable_lib._unsafe_reset_threadpool(threads)
        return int(portable_lib._threadpool_get_thread_count())


# --------------------------------------------------------------------------- OpenVINO
def openvino_compiled(model: nn.Module, x: torch.Tensor, threads: int) -> Any:
    """``model`` converted with OpenVINO (from its ``torch.export`` program) and compiled for the CPU
    plugin: ``threads`` inference threads, one stream, latency hint, float32 precision (OpenVINO's
    default on CPUs with bf16/f16 support is lower precision)."""
    ov = require("openvino")
    program = exported_program(model, x)
    with quiet():
        converted = ov.convert_model(program)
        return ov.Core().compile_model(converted, "CPU", openvino_config(threads))


def openvino_config(threads: int) -> dict[str, Any]:
    """The CPU plugin settings we measure with."""
    return {"INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": "f32"}
