"""Networks: the dynamic ops and their static twins, the supernet, BN calibration, checkpoints, export.

Lives here: ``layers`` (activations, resize, pooling, drop-connect, weight slicing), ``static``
(plain ``torch.nn`` modules and :class:`StaticSubnet`), ``dynamic`` (the weight-sharing ops, each
with ``to_static``), ``supernet`` (:class:`Supernet`), ``bn`` (BN recalibration on cached batches),
``checkpoint`` (our layout and the authors'), ``export`` (``torch.export`` — the default —, ONNX,
safetensors, ExecuTorch and deprecated TorchScript files), ``programs`` (a model as a deployment runtime runs it:
exported programs, ONNX, ExecuTorch, OpenVINO; optional runtimes named by their extra) and
``memory`` (measured memory of a module).

May import: ``attentivenas.space``, ``attentivenas.costs``, ``attentivenas.errors``, ``attentivenas.io``.
"""

from .bn import CalibrationDataError, cache_calibration_batches, calibrate_bn, to_model_resolution
from .checkpoint import (
    FORMAT,
    VERSION,
    authors_state_dict,
    is_authors,
    is_ours,
    load_supernet,
    payload_checksum,
    read_checkpoint,
    save_supernet,
    sealed,
    supernet_payload,
)
from .export import (
    FORMATS,
    SUFFIXES,
    ExportError,
    arch_json_path,
    executorch_relative_error,
    export_executorch,
    export_onnx,
    export_pareto_set,
    export_safetensors,
    export_subnet,
    export_torch_export,
    export_torchscript,
    load_safetensors_subnet,
    onnx_relative_error,
    read_pareto_archs,
    relative_error,
    script_subnet,
    subnet_spec,
    torch_export_relative_error,
)
from .layers import resize_input
from .memory import measure_peak_activation_bytes, measure_weight_bytes
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
from .static import StaticSubnet
from .supernet import Supernet

__all__ = [
    "CalibrationDataError", "cache_calibration_batches", "calibrate_bn", "to_model_resolution",
    "FORMAT", "VERSION", "authors_state_dict", "is_authors", "is_ours", "load_supernet", "payload_checksum",
    "read_checkpoint", "save_supernet", "sealed", "supernet_payload",
    "FORMATS", "SUFFIXES", "ExportError", "arch_json_path", "onnx_relative_error", "subnet_spec", "export_onnx", "export_pareto_set", "export_safetensors",
    "export_subnet", "export_torchscript", "load_safetensors_subnet", "read_pareto_archs", "script_subnet",
    "executorch_relative_error", "export_executorch", "export_torch_export", "relative_error",
    "torch_export_relative_error", "OPTIONAL", "MissingRuntimeError", "executorch_bytes", "executorch_method",
    "exported_program", "is_available", "onnx_bytes", "onnx_session", "openvino_compiled", "program_bytes",
    "require", "set_executorch_threads",
    "resize_input", "measure_peak_activation_bytes", "measure_weight_bytes", "StaticSubnet", "Supernet",
]
