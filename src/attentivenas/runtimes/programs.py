"""A static model as a deployment runtime runs it: ``torch.export`` programs, ONNX bytes, ExecuTorch
(XNNPACK delegate) programs and OpenVINO compiled models, plus the optional-import helper that names
the extra to install.

Each function here knows one runtime's API and nothing about which runtimes exist: the records of
:mod:`attentivenas.runtimes.records` name them (package, extra, suffix, batch policy) and call these.
The runtimes other than PyTorch and onnxruntime are optional extras; a record's ``require()`` raises
:class:`MissingRuntimeError` (a user error: one line, exit code 2) naming the extra before any of these
functions imports the package.
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import UserError
from ..io import atomic_write_bytes


class MissingRuntimeError(UserError):
    """An optional runtime that is not installed (the message names the extra to install)."""


def import_package(module: str, extra: str, runtime: str) -> ModuleType:
    """Import ``module`` (the package of ``runtime``) or raise :class:`MissingRuntimeError` naming ``extra``."""
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


def pt2_bytes(model: nn.Module, x: torch.Tensor, dynamic_batch: bool = False) -> bytes:
    """The ``.pt2`` file of ``model``'s ``torch.export`` program on the example ``x``."""
    return program_bytes(exported_program(model, x, dynamic_batch=dynamic_batch))


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
    ort = importlib.import_module("onnxruntime")  # the record's require() named its extra first
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"])


# --------------------------------------------------------------------------- ExecuTorch
def executorch_bytes(model: nn.Module, x: torch.Tensor) -> bytes:
    """The ``.pte`` program of ``model`` at the shape of ``x``, lowered to the XNNPACK delegate."""
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
def openvino_model(model: nn.Module, x: torch.Tensor) -> Any:
    """``model`` converted with OpenVINO from its ``torch.export`` program at the shape of ``x``."""
    ov = importlib.import_module("openvino")
    with quiet(), torch.no_grad():
        return ov.convert_model(exported_program(model, x))


def openvino_config(threads: int) -> dict[str, Any]:
    """The CPU plugin settings we measure with: ``threads`` inference threads, one stream, latency hint,
    float32 precision (OpenVINO's default on CPUs with bf16/f16 support is lower precision)."""
    return {"INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": "f32"}


def save_openvino(ov_model: Any, path: str | Path) -> dict[str, str]:
    """Write an ``openvino.Model`` as ``path`` (``.xml``) and its ``.bin`` (weights not compressed to
    fp16), atomically: written in a temporary folder beside, then renamed."""
    ov = importlib.import_module("openvino")
    out = Path(path).with_suffix(".xml")
    out.parent.mkdir(parents=True, exist_ok=True)
    with private_temp_dir("openvino", out.parent) as tmp:
        tmp_xml = Path(tmp) / out.name
        ov.save_model(ov_model, str(tmp_xml), compress_to_fp16=False)
        os.replace(tmp_xml.with_suffix(".bin"), out.with_suffix(".bin"))
        os.replace(tmp_xml, out)
    return {"path": str(out), "weights": str(out.with_suffix(".bin"))}


def save_bytes(data: bytes, path: str | Path) -> dict[str, str]:
    """Write a program file atomically; ``{"path"}``."""
    return {"path": str(atomic_write_bytes(path, data))}


# --------------------------------------------------------------------------- loaded files
@dataclass(frozen=True)
class Loaded:
    """A file loaded in its runtime: ``predict(array)`` gives the logits (numpy) of a batch of the file's
    input shape; ``bind(x)`` is a forward without arguments on ``x`` (what a timing loop calls); each
    timing runs inside ``session()``."""

    predict: Callable[[np.ndarray], np.ndarray]
    bind: Callable[[torch.Tensor], Callable[[], Any]]
    session: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext


def _source(data: Any) -> Any:
    return os.fspath(data) if isinstance(data, (str, os.PathLike)) else data


def load_pt2(data: bytes | str | os.PathLike[str], threads: int) -> Loaded:
    """A ``.pt2`` program (bytes or path) loaded with ``torch.export.load`` (its module run eagerly)."""
    src = io.BytesIO(data) if isinstance(data, bytes) else io.BytesIO(Path(data).read_bytes())
    module = torch.export.load(src).module()

    def predict(a: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(a)).detach().numpy()

    return Loaded(predict, lambda x: lambda: module(x), torch.inference_mode)


def load_onnx(data: bytes | str | os.PathLike[str], threads: int) -> Loaded:
    """An ONNX file (bytes or path) in an onnxruntime CPU session (:func:`onnx_session`)."""
    sess = onnx_session(_source(data), threads)
    name = sess.get_inputs()[0].name

    def bind(x: torch.Tensor) -> Callable[[], Any]:
        feed = {name: x.numpy()}
        return lambda: sess.run(None, feed)

    return Loaded(lambda a: sess.run(None, {name: a})[0], bind)


def load_pte(data: bytes | str | os.PathLike[str], threads: int) -> Loaded:
    """An ExecuTorch program (bytes or path) loaded with ExecuTorch's runtime, its thread pool set to
    ``threads`` (again before each timing: the pool is process-wide)."""
    set_executorch_threads(threads)
    method = ExecutorchMethod(data)
    return Loaded(lambda a: method.execute([torch.from_numpy(a)])[0].numpy(), lambda x: lambda: method.execute([x]),
                  lambda: _executorch_threads(threads))


def load_openvino(model: Any, threads: int) -> Loaded:
    """An ``openvino.Model`` (or an ``.xml`` path) compiled for the CPU plugin (:func:`openvino_config`)."""
    ov = importlib.import_module("openvino")
    request = ov.Core().compile_model(_source(model), "CPU", openvino_config(threads)).create_infer_request()

    def bind(x: torch.Tensor) -> Callable[[], Any]:
        arr = x.numpy()
        return lambda: request.infer({0: arr})

    return Loaded(lambda a: np.array(request.infer({0: a})[0]), bind)


@contextlib.contextmanager
def _executorch_threads(threads: int) -> Iterator[None]:
    set_executorch_threads(threads)  # process-wide pool: set again before each timing
    yield
