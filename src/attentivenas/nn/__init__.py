"""Networks: the dynamic ops and their static twins, the supernet, BN calibration, checkpoints, export.

Lives here: ``layers`` (activations, resize, pooling, drop-connect, weight slicing), ``static``
(plain ``torch.nn`` modules and :class:`StaticSubnet`), ``dynamic`` (the weight-sharing ops, each
with ``to_static``), ``supernet`` (:class:`Supernet`), ``bn`` (BN recalibration on cached batches),
``checkpoint`` (our layout and the authors'; fine-tuned subnets), ``export`` (``torch.export`` — the default —, ONNX,
safetensors, ExecuTorch and deprecated TorchScript files), ``bundle`` (model folders a user can hand
on: weights, ``config.json``, runtime files and a model card; ``load_pretrained``), ``programs`` (a model
as a deployment runtime runs it: exported programs, ONNX, ExecuTorch, OpenVINO; optional runtimes named by their extra), ``quantize``
(INT8 programs: ExecuTorch PT2E/XNNPACK, ONNX Runtime QDQ, OpenVINO NNCF; the INT8 accuracy check) and
``memory`` (measured memory of a module).

May import: ``attentivenas.space``, ``attentivenas.costs``, ``attentivenas.errors``, ``attentivenas.io``.
"""

from .bn import CalibrationDataError, cache_calibration_batches, calibrate_bn, to_model_resolution
from .bundle import load_pretrained, write_bundle
from .bundle_format import CardInfo
from .checkpoint import (
    FORMAT,
    SUBNET_KIND,
    VERSION,
    SubnetHost,
    authors_state_dict,
    is_authors,
    is_ours,
    is_subnet_checkpoint,
    load_checkpoint_model,
    load_subnet_checkpoint,
    load_supernet,
    payload_checksum,
    read_checkpoint,
    save_supernet,
    sealed,
    subnet_payload,
    supernet_payload,
    supernet_weights,
)
from .export import (
    FORMATS,
    SUFFIXES,
    ExportError,
    arch_json_path,
    executorch_relative_error,
    export_executorch,
    export_int8,
    export_onnx,
    export_openvino,
    export_safetensors,
    export_subnet,
    export_torch_export,
    export_torchscript,
    onnx_relative_error,
    relative_error,
    script_subnet,
    subnet_spec,
    torch_export_relative_error,
)
from .layers import resize_input
from .memory import measure_peak_activation_bytes, measure_weight_bytes
from .pareto_export import export_pareto_set, read_pareto_archs
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
from .static import StaticSubnet
from .subnet_files import load_safetensors_subnet
from .supernet import Supernet

__all__ = [
    "CardInfo", "load_pretrained", "write_bundle",
    "CalibrationDataError", "cache_calibration_batches", "calibrate_bn", "to_model_resolution",
    "FORMAT", "VERSION", "authors_state_dict", "is_authors", "is_ours", "load_supernet", "payload_checksum",
    "read_checkpoint", "save_supernet", "sealed", "supernet_payload", "SUBNET_KIND", "SubnetHost",
    "is_subnet_checkpoint", "load_checkpoint_model", "load_subnet_checkpoint", "subnet_payload", "supernet_weights",
    "FORMATS", "SUFFIXES", "ExportError", "arch_json_path", "onnx_relative_error", "subnet_spec", "export_onnx", "export_pareto_set", "export_safetensors",
    "export_subnet", "export_torchscript", "load_safetensors_subnet", "read_pareto_archs", "script_subnet",
    "executorch_relative_error", "export_executorch", "export_torch_export", "relative_error",
    "torch_export_relative_error", "OPTIONAL", "MissingRuntimeError", "executorch_bytes", "executorch_method",
    "exported_program", "is_available", "onnx_bytes", "onnx_session", "openvino_compiled", "program_bytes",
    "require", "set_executorch_threads",
    "export_int8", "export_openvino", "DEFAULT_CALIB_IMAGES", "INT8_FORMATS", "INT8_RUNTIMES", "PRECISIONS", "QuantizationError", "check_int8_accuracy",
    "int8_executorch_bytes", "int8_onnx_bytes", "int8_openvino_model", "int8_predict_fn",
    "resize_input", "measure_peak_activation_bytes", "measure_weight_bytes", "StaticSubnet", "Supernet",
]
