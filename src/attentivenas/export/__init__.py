"""What users take away: subnet files in every format, INT8 files, model folders (bundles) and their cards.

Lives here: ``formats`` (``torch.export`` — the default —, ONNX, safetensors, ExecuTorch, OpenVINO and
deprecated TorchScript files; INT8 files), ``folders`` (sha256, the export lock, cleaning after killed
exports), ``pareto`` (a Pareto set as one folder), ``weights`` (a subnet's weights: ``model.safetensors`` +
``config.json``), ``pretrained`` (``load_pretrained``: the one loader), ``subnet_files`` (old-format
subnet files, read with a warning),
``bundle`` (model folders: weights, ``config.json``, runtime files, a model card),
``bundle_format`` (a bundle's file names, bounds and ``CardInfo``), ``card`` (the model card, escaped),
``card_measure`` (what the card measures: top-1, each runtime file timed), ``inputs`` (the images an export
is made with), ``bundle_set`` (a checkpoint's subnets as bundles), ``commands`` (what ``export`` does and
prints) and ``bundle_check`` (``config.json`` read as hostile input).

May import: ``attentivenas.space``, ``costs``, ``nn``, ``runtimes``, ``latency``, ``accuracy``, ``config``, ``data``, ``devices``, ``errors``, ``io``, ``progress``.
"""

from .bundle import (
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
    export_executorch,
    export_file,
    export_int8,
    export_onnx,
    export_openvino,
    export_safetensors,
    export_subnet,
    export_torch_export,
    export_torchscript,
    file_relative_error,
    relative_error,
    script_subnet,
    subnet_spec,
)
from .pareto import (
    export_pareto_set,
    read_pareto_archs,
)
from .pretrained import (
    load_pretrained,
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
    "export_executorch",
    "export_file",
    "export_int8",
    "export_onnx",
    "export_openvino",
    "export_safetensors",
    "export_subnet",
    "export_torch_export",
    "export_torchscript",
    "file_relative_error",
    "relative_error",
    "script_subnet",
    "subnet_spec",
    "export_pareto_set",
    "read_pareto_archs",
    "load_safetensors_subnet",
]
