"""Networks: the dynamic ops and their static twins, the supernet, BN calibration, checkpoints, export.

Lives here: ``layers`` (activations, resize, pooling, drop-connect, weight slicing), ``static``
(plain ``torch.nn`` modules and :class:`StaticSubnet`), ``dynamic`` (the weight-sharing ops, each
with ``to_static``), ``supernet`` (:class:`Supernet`), ``bn`` (BN recalibration on cached batches),
``checkpoint`` (our layout and the authors'), ``export`` (TorchScript, ONNX, safetensors) and
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
    export_onnx,
    export_pareto_set,
    export_safetensors,
    export_subnet,
    export_torchscript,
    load_safetensors_subnet,
    onnx_relative_error,
    read_pareto_archs,
    script_subnet,
    subnet_spec,
)
from .layers import resize_input
from .memory import measure_peak_activation_bytes, measure_weight_bytes
from .static import StaticSubnet
from .supernet import Supernet

__all__ = [
    "CalibrationDataError", "cache_calibration_batches", "calibrate_bn", "to_model_resolution",
    "FORMAT", "VERSION", "authors_state_dict", "is_authors", "is_ours", "load_supernet", "payload_checksum",
    "read_checkpoint", "save_supernet", "sealed", "supernet_payload",
    "FORMATS", "SUFFIXES", "ExportError", "arch_json_path", "onnx_relative_error", "subnet_spec", "export_onnx", "export_pareto_set", "export_safetensors",
    "export_subnet", "export_torchscript", "load_safetensors_subnet", "read_pareto_archs", "script_subnet",
    "resize_input", "measure_peak_activation_bytes", "measure_weight_bytes", "StaticSubnet", "Supernet",
]
