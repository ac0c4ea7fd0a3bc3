"""How a deployment runtime runs a model: exported programs, ONNX, ExecuTorch, OpenVINO, INT8.

Lives here: ``records`` (one :class:`Runtime` record per runtime: name, format, package and extra,
suffix, batch policy, export at a precision, load with a thread count, INT8 quantizer and settings;
the only table of runtimes), ``programs`` (each runtime's API: exported programs, ONNX sessions,
ExecuTorch methods, OpenVINO models, files loaded as :class:`Loaded`), ``int8`` (the INT8 builders:
ExecuTorch PT2E/XNNPACK, ONNX Runtime QDQ, OpenVINO NNCF), ``quantize`` (precisions, INT8 predictions,
the INT8 accuracy check) and ``runners`` (a model exported, loaded and bound to its input as a
:class:`Runner`, through its record).

May import: ``attentivenas.space``, ``costs``, ``nn``, ``config``, ``devices``, ``errors``, ``io``.
"""

from .programs import (
    Loaded,
    MissingRuntimeError,
    executorch_bytes,
    executorch_method,
    exported_program,
    onnx_bytes,
    onnx_session,
    program_bytes,
    set_executorch_threads,
)
from .quantize import (
    DEFAULT_CALIB_IMAGES,
    INT8_FORMATS,
    INT8_RUNTIMES,
    PRECISIONS,
    QuantizationError,
    check_int8_accuracy,
    int8_executorch_bytes,
    int8_onnx_bytes,
    int8_openvino_model,
    int8_predict_fn,
)
from .records import RUNTIMES, Int8Quantizer, Runtime, find_format, is_available, require, runtime, runtime_for_format

__all__ = [
    "RUNTIMES",
    "Int8Quantizer",
    "Runtime",
    "find_format",
    "runtime",
    "runtime_for_format",
    "Loaded",
    "MissingRuntimeError",
    "executorch_bytes",
    "executorch_method",
    "exported_program",
    "is_available",
    "onnx_bytes",
    "onnx_session",
    "program_bytes",
    "require",
    "set_executorch_threads",
    "DEFAULT_CALIB_IMAGES",
    "INT8_FORMATS",
    "INT8_RUNTIMES",
    "PRECISIONS",
    "QuantizationError",
    "check_int8_accuracy",
    "int8_executorch_bytes",
    "int8_onnx_bytes",
    "int8_openvino_model",
    "int8_predict_fn",
]
