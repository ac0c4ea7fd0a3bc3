"""What users take away: subnet files in every format, INT8 files, model folders (bundles) and their cards.

Lives here: ``formats`` (``torch.export`` — the default —, ONNX, safetensors, ExecuTorch, OpenVINO and
deprecated TorchScript files; INT8 files), ``folders`` (sha256, the export lock, cleaning after killed
exports), ``pareto`` (a Pareto set as one folder), ``subnet_files`` (a subnet read back from safetensors),
``bundle`` (model folders: weights, ``config.json``, runtime files, a model card; ``load_pretrained``),
``bundle_format`` (a bundle's file names, bounds and ``CardInfo``), ``card`` (the model card, escaped) and
``bundle_check`` (``config.json`` read as hostile input).

May import: ``attentivenas.space``, ``costs``, ``nn``, ``runtimes``, ``latency``, ``accuracy``, ``config``, ``data``, ``devices``, ``errors``, ``io``, ``progress``.
"""

from .bundle import (
    load_pretrained,
    write_bundle,
)
from .bundle_format import (
    CardInfo,
)
from .formats import (
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
from .pareto import (
    export_pareto_set,
    read_pareto_archs,
)
from .subnet_files import (
    load_safetensors_subnet,
)

__all__ = [
    "load_pretrained",
    "write_bundle",
    "CardInfo",
    "FORMATS",
    "SUFFIXES",
    "ExportError",
    "arch_json_path",
    "executorch_relative_error",
    "export_executorch",
    "export_int8",
    "export_onnx",
    "export_openvino",
    "export_safetensors",
    "export_subnet",
    "export_torch_export",
    "export_torchscript",
    "onnx_relative_error",
    "relative_error",
    "script_subnet",
    "subnet_spec",
    "torch_export_relative_error",
    "export_pareto_set",
    "read_pareto_archs",
    "load_safetensors_subnet",
]
