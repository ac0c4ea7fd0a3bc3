"""One record per deployment runtime: everything the package knows about a runtime, in one place.

A :class:`Runtime` says what the runtime is called (``name``, as ``--runtime`` takes it; ``format``,
as ``export --format`` takes it; ``title``), what installs it (``package``, ``distribution``,
``extra``), what its files are (``suffix``, ``batch`` policy, whether a bundle holds one), how a
model is exported to it at a precision (:meth:`Runtime.export`, :meth:`Runtime.save`), how a file is
loaded and run with a thread count (:meth:`Runtime.load`), and its INT8 quantizer with the settings
it passes (:class:`Int8Quantizer`). Export, INT8 prediction, latency measurement and a bundle's file
timings all go through these records; :data:`RUNTIMES` is the only table of runtimes. Adding a
runtime is one more record here (docs/design.md, "Adding a runtime").

The functions a record names (in :mod:`.programs` and :mod:`.int8`) each know one runtime's API;
the rest of the package asks a record, never a runtime's name.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import MappingProxyType, ModuleType
from typing import Any, Literal

import torch
from torch import nn

from ..errors import UserError
from .int8 import (
    DEFAULT_CALIB_IMAGES,
    cached_onnx_registry,
    cached_pt2e_patterns,
    int8_executorch_bytes,
    int8_onnx_bytes,
    int8_openvino_model,
)
from .programs import (
    Loaded,
    executorch_bytes,
    import_package,
    load_onnx,
    load_openvino,
    load_pt2,
    load_pte,
    onnx_bytes,
    openvino_model,
    pt2_bytes,
    save_bytes,
    save_openvino,
)

#: a record's batch policy: ``dynamic`` files may have a symbolic batch axis (their default), ``fixed``
#: files have a fixed input shape (default batch 1)
BatchPolicy = Literal["dynamic", "fixed"]


def _frozen(mapping: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class Int8Quantizer:
    """How a runtime's INT8 file is made: post-training static quantization by ``build(model, example,
    calib, dynamic_batch, **settings)`` (bytes, or the runtime's model object), with the quantizer's
    package and the extra that installs it, and ``calib_images`` calibration images by default."""

    method: str
    package: str
    extra: str
    build: Callable[..., Any]
    settings: Mapping[str, Any] = field(default_factory=_frozen)
    calib_images: int = DEFAULT_CALIB_IMAGES
    #: what repeated builds run inside (a latency table builds one per op); it changes no result
    cache: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext


@dataclass(frozen=True)
class Runtime:
    """One deployment runtime (see the module docstring)."""

    name: str
    format: str
    title: str
    suffix: str
    package: str
    extra: str
    batch: BatchPolicy
    #: ``(model, example, dynamic_batch, **options) -> file`` (bytes, or the runtime's model object)
    export_fp32: Callable[..., Any]
    #: ``(file bytes, path or model object, threads) -> Loaded``
    load_file: Callable[[Any, int], Loaded]
    #: ``(file, path) -> {"path", ...}``: written atomically
    save_file: Callable[[Any, str | Path], dict[str, str]] = save_bytes
    int8: Int8Quantizer | None = None
    distribution: str = ""
    #: latency times the eager model on its device (PyTorch) rather than an exported file
    eager: bool = False
    #: its work runs on the calling thread with one thread (``clock="cpu"`` counts it)
    cpu_clock: bool = True
    #: its file is bytes, so worker processes can export it while this one loads (latency tables)
    program: bool = True
    #: a latency kit can be written for it (the kit's runner needs only its package)
    kit: bool = False
    #: a bundle may hold its file (``model<suffix>``)
    bundle: bool = False
    #: what its file check's message calls it ("ONNX check failed: ...")
    check_title: str = ""
    #: options of :meth:`export` that a file export takes, with their defaults there
    file_options: Mapping[str, Any] = field(default_factory=_frozen)
    #: the values an option of ``file_options`` may take, where they are a closed set
    option_values: Mapping[str, tuple[Any, ...]] = field(default_factory=_frozen)
    #: what a written file's info says about those options (``{"exporter", "opset"}`` for ONNX)
    file_info: Callable[..., dict[str, Any]] | None = None
    #: how the file check draws its seeded inputs: the example first (then the check batch), or two
    #: check-sized batches and the example drawn again from the seed (what ``.pt2`` files always did)
    example_first: bool = True
    #: Python lines that, given ``path`` and ``threads``, define ``run(array) -> logits`` with only
    #: numpy and the runtime's package: the INT8 check's isolated process runs them
    check_loader: str = ""
    #: lines of a model card that run ``{file}`` on ``x`` without attentivenas (``{batch}``: its batch)
    card_snippet: tuple[str, ...] = ()
    #: how a model card names the runtime of its file
    card_title: str = ""

    def require(self) -> ModuleType:
        """Import the runtime's package or raise :class:`~.programs.MissingRuntimeError` naming its extra."""
        return import_package(self.package, self.extra, self.name)

    def available(self) -> bool:
        """Whether the runtime's package imports."""
        try:
            self.require()
        except UserError:
            return False
        return True

    def version(self) -> str:
        """The installed version of the runtime's package ('' when unknown)."""
        try:
            return metadata.version(self.distribution or self.package)
        except metadata.PackageNotFoundError:
            return ""

    def check_int8(self) -> Int8Quantizer:
        """The INT8 quantizer; a one-line user error when the runtime has none here, or it or its
        package does not import (naming the extra)."""
        if self.int8 is None:
            names = ", ".join(int8_runtimes())
            raise UserError(f"precision int8 is available for runtimes {names}, not {self.name!r}")
        self.require()
        q = self.int8
        top = q.package.split(".")[0]
        try:
            importlib.import_module(q.package)
        except ImportError as exc:
            hint = f"pip install 'attentivenas[{q.extra}]'" if q.extra else f"pip install {top}"
            raise UserError(f"INT8 for {self.name!r} needs the {top} package ({hint}); "
                            f"importing it failed: {exc}") from None
        return q

    def export(self, model: nn.Module, example: torch.Tensor, precision: str = "fp32",
               calib: torch.Tensor | None = None, dynamic_batch: bool = False, **options: Any) -> Any:
        """``model`` (eval, CPU) as this runtime's file at the shape of ``example`` (a symbolic batch with
        ``dynamic_batch`` where the policy is dynamic), in ``precision``: ``int8`` is quantized on
        ``calib`` by :attr:`int8` with its settings. Bytes, or the runtime's model object (OpenVINO)."""
        if precision == "int8":
            q = self.check_int8()
            assert calib is not None, "an INT8 export needs calibration images"
            return q.build(model, example, calib, dynamic_batch, **q.settings)
        self.require()
        return self.export_fp32(model, example, dynamic_batch, **options)

    def load(self, file: Any, threads: int) -> Loaded:
        """A file of :meth:`export` (bytes, a path, or the runtime's model object) loaded with ``threads``."""
        self.require()
        return self.load_file(file, threads)

    def save(self, file: Any, path: str | Path) -> dict[str, str]:
        """Write a file of :meth:`export` as ``path`` (atomically); ``{"path", ...}``."""
        return self.save_file(file, path)


def _onnx_fp32(model: nn.Module, x: torch.Tensor, dynamic_batch: bool = False, exporter: str = "torchscript",
               opset: int = 17) -> bytes:
    return onnx_bytes(model, x, opset, exporter, dynamic_batch=dynamic_batch)


def _onnx_info(exporter: str, opset: int) -> dict[str, Any]:
    return {"exporter": exporter, "opset": opset if exporter == "torchscript" else max(opset, 18)}


def _fixed(export: Callable[[nn.Module, torch.Tensor], Any]) -> Callable[..., Any]:
    def fixed_shape(model: nn.Module, x: torch.Tensor, dynamic_batch: bool = False) -> Any:
        assert not dynamic_batch, "this runtime's files have a fixed input shape"
        return export(model, x)

    return fixed_shape


_ONNX_LOADER = """import onnxruntime as ort
o = ort.SessionOptions(); o.intra_op_num_threads = threads; o.inter_op_num_threads = 1
sess = ort.InferenceSession(path, sess_options=o, providers=["CPUExecutionProvider"])
name = sess.get_inputs()[0].name
run = lambda a: sess.run(None, {name: a})[0]
"""
_PTE_LOADER = """import torch
from executorch.runtime import Runtime
from executorch.extension.pybindings import portable_lib
portable_lib._unsafe_reset_threadpool(threads)
method = Runtime.get().load_program(path).load_method("forward")
run = lambda a: method.execute([torch.from_numpy(a)])[0].numpy()
"""
_OPENVINO_LOADER = """import openvino as ov
req = ov.Core().compile_model(path, "CPU", {"INFERENCE_NUM_THREADS": threads}).create_infer_request()
run = lambda a: np.array(req.infer({0: a})[0])
"""

#: the runtimes, by name, in the order messages list them
RUNTIMES: dict[str, Runtime] = {r.name: r for r in (
    Runtime(
        name="torch", format="torch-export", title="PyTorch", suffix=".pt2", package="torch", extra="",
        batch="dynamic", export_fp32=pt2_bytes, load_file=load_pt2, eager=True, program=False, bundle=True,
        check_title="torch.export", example_first=False, card_title="PyTorch (torch.export .pt2)",
        card_snippet=("import torch", "", "program = torch.export.load(\"{file}\").module()",
                      "logits = program(torch.from_numpy(x)).detach().numpy()")),
    Runtime(
        name="onnxruntime", format="onnx", title="ONNX Runtime", suffix=".onnx", package="onnxruntime", extra="",
        batch="dynamic", export_fp32=_onnx_fp32, load_file=load_onnx, kit=True, bundle=True, check_title="ONNX",
        file_options=_frozen({"exporter": "dynamo", "opset": 17}),
        option_values=_frozen({"exporter": ("dynamo", "torchscript")}), file_info=_onnx_info,
        check_loader=_ONNX_LOADER, card_title="ONNX Runtime",
        card_snippet=("import onnxruntime as ort", "",
                      "session = ort.InferenceSession(\"{file}\", providers=[\"CPUExecutionProvider\"])",
                      "logits = session.run(None, {{session.get_inputs()[0].name: x}})[0]"),
        int8=Int8Quantizer(
            method="ONNX Runtime static quantization, QDQ (uint8 activations, int8 weights in 7 bits)",
            package="onnxruntime.quantization", extra="", build=int8_onnx_bytes, cache=cached_onnx_registry,
            settings=_frozen({"per_channel": True, "reduce_range": True}))),
    Runtime(
        name="executorch", format="executorch", title="ExecuTorch", suffix=".pte", package="executorch",
        extra="executorch", batch="fixed", export_fp32=_fixed(executorch_bytes), load_file=load_pte, kit=True, bundle=True,
        check_title="ExecuTorch", check_loader=_PTE_LOADER, card_title="ExecuTorch (XNNPACK)",
        card_snippet=("import torch", "from executorch.runtime import Runtime", "",
                      "method = Runtime.get().load_program(\"{file}\").load_method(\"forward\")",
                      "logits = method.execute([torch.from_numpy(x)])[0].numpy()  # batch {batch}: pad a smaller one"),
        int8=Int8Quantizer(
            method="torchao PT2E with ExecuTorch's XNNPACK quantizer (symmetric), lowered to XNNPACK",
            package="torchao", extra="executorch", build=int8_executorch_bytes, cache=cached_pt2e_patterns,
            settings=_frozen({"is_per_channel": True}))),
    Runtime(
        name="openvino", format="openvino", title="OpenVINO", suffix=".xml", package="openvino", extra="openvino",
        batch="fixed", export_fp32=_fixed(openvino_model), load_file=load_openvino, save_file=save_openvino,
        cpu_clock=False, program=False, check_title="OpenVINO", check_loader=_OPENVINO_LOADER,
        int8=Int8Quantizer(
            method="NNCF post-training quantization (default preset, symmetric int8)", package="nncf",
            extra="openvino", build=int8_openvino_model, settings=_frozen({"overflow_fix": True}))),
)}


def runtime(name: str) -> Runtime:
    """The record of runtime ``name``; a one-line user error listing the runtimes otherwise."""
    if name not in RUNTIMES:
        raise UserError(f"unknown runtime {name!r}; use one of {', '.join(RUNTIMES)}")
    return RUNTIMES[name]


def find_format(fmt: str) -> Runtime | None:
    """The record whose files ``export --format fmt`` writes (``None`` for a format of no runtime)."""
    return next((r for r in RUNTIMES.values() if r.format == fmt), None)


def runtime_for_format(fmt: str) -> Runtime:
    """The record whose files ``export --format fmt`` writes; a user error naming the formats otherwise."""
    rt = find_format(fmt)
    if rt is None:
        raise UserError(f"no runtime writes format {fmt!r}; runtime formats: {', '.join(runtime_formats())}")
    return rt


def runtime_formats(*, extra: bool | None = None) -> tuple[str, ...]:
    """The runtimes' export formats in record order (``extra=False``: installed with the package,
    ``True``: with an extra)."""
    return tuple(r.format for r in RUNTIMES.values() if extra is None or bool(r.extra) == extra)


def int8_runtimes() -> tuple[str, ...]:
    """The runtimes with an INT8 quantizer, alphabetically."""
    return tuple(sorted(r.name for r in RUNTIMES.values() if r.int8 is not None))


def int8_formats() -> tuple[str, ...]:
    """The export formats with an INT8 quantizer, alphabetically."""
    return tuple(sorted(r.format for r in RUNTIMES.values() if r.int8 is not None))


def batch_formats() -> tuple[str, ...]:
    """The formats whose files have a batch: dynamic-batch formats, then fixed ones, each alphabetically."""
    return tuple(r.format for r in sorted(RUNTIMES.values(), key=lambda r: (r.batch, r.format)))


def require(name: str) -> ModuleType:
    """Import the package of runtime ``name`` or raise :class:`~.programs.MissingRuntimeError` naming its extra."""
    return runtime(name).require()


def is_available(name: str) -> bool:
    """Whether the package of runtime ``name`` imports (``torch`` always does)."""
    return runtime(name).available()
