"""How a deployment runtime runs a model: exported programs, ONNX, ExecuTorch, OpenVINO, INT8.

Lives here: ``programs`` (a model as a runtime runs it: exported programs, ONNX sessions, ExecuTorch
methods, OpenVINO models; optional runtimes named by their extra), ``quantize`` (INT8 programs:
ExecuTorch PT2E/XNNPACK, ONNX Runtime QDQ, OpenVINO NNCF; the INT8 accuracy check) and ``runners``
(PyTorch eager, ONNX Runtime, ExecuTorch, OpenVINO: a model exported, loaded and bound to its input as a
:class:`Runner`).

May import: ``attentivenas.space``, ``costs``, ``nn``, ``config``, ``devices``, ``errors``, ``io``.
"""

from .programs import (
    OPTIONAL,
    MissingRuntimeError,
    executorch_bytes,
    executorch_method,
    exported_program,
    is_available,
    onnx_bytes,
    onnx_session,
    openvino_compiled,
    program_bytes,
    require,
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

__all__ = [
    "OPTIONAL",
    "MissingRuntimeError",
    "executorch_bytes",
    "executorch_method",
    "exported_program",
    "is_available",
    "onnx_bytes",
    "onnx_session",
    "openvino_compiled",
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
