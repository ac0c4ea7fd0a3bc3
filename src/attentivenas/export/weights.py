"""A subnet's weights as users take them away: a folder holding ``model.safetensors`` (the state dict, the
subnet's description in its metadata; no pickle) and ``config.json`` (model type, format version, space,
arch, classes, resolution, costs, the weights' sha256), in the Hugging Face Hub's layout. ``export --format
safetensors`` writes exactly this; a bundle adds runtime files and a model card;
:func:`~attentivenas.export.bundle.load_pretrained` reads both."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save

from ..config.bundle import FORMAT_VERSION, MODEL_TYPE, WEIGHTS_NAME
from ..errors import UserError
from ..io import atomic_write_bytes, atomic_write_json
from .folders import file_sha256

CONFIG_NAME = "config.json"
MFLOPS_UNIT = "million multiply-accumulates (MACs), the authors' FLOPs convention"


def weights_config(spec: Mapping[str, Any], mflops: float, params_m: float) -> dict[str, Any]:
    """The ``config.json`` of a subnet's weights (``spec``: its description, ``subnet_spec``), without
    ``weights_sha256``; a bundle adds its runtime files and card facts."""
    return {
        "model_type": MODEL_TYPE,
        "format_version": FORMAT_VERSION,
        "library_name": "attentivenas",
        "space": spec["space"],
        "arch": spec["arch"],
        "num_classes": int(spec["num_classes"]),
        "resolution": int(spec["resolution"]),
        "mflops": mflops,
        "mflops_unit": MFLOPS_UNIT,
        "params_m": params_m,
        "weights": WEIGHTS_NAME,
        "files": {},
    }


def cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A copy of ``model``'s state dict on the CPU, contiguous (the caller's module is left as it is)."""
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}


def write_weights(folder: Path, state: Mapping[str, torch.Tensor], spec: Mapping[str, Any]) -> Path:
    """``folder/model.safetensors`` (atomic), its metadata ``{"format": "pt", "attentivenas": spec}``."""
    return atomic_write_bytes(folder / WEIGHTS_NAME,
                              save(dict(state), metadata={"format": "pt", "attentivenas": json.dumps(spec)}))


def weights_folder(path: str | Path) -> Path:
    """The folder a subnet's weights are written in, created (one line when ``path`` is a file)."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a folder: --format safetensors writes a folder "
                        f"({WEIGHTS_NAME} and {CONFIG_NAME})")
    out.mkdir(parents=True, exist_ok=True)
    return out


def write_weights_folder(path: str | Path, state: Mapping[str, torch.Tensor], spec: Mapping[str, Any],
                         mflops: float, params_m: float) -> dict[str, Any]:
    """``path/model.safetensors`` then ``path/config.json`` (each atomic; an earlier ``config.json`` is
    removed first, so a folder with one describes its weights). Returns the export's info: ``path``
    (the weights file), ``config`` and ``tensors``."""
    out = weights_folder(path)
    (out / CONFIG_NAME).unlink(missing_ok=True)
    weights = write_weights(out, state, spec)
    cfg = weights_config(spec, mflops, params_m)
    cfg["weights_sha256"] = file_sha256(weights)
    config = atomic_write_json(out / CONFIG_NAME, cfg)
    return {"path": str(weights), "config": str(config), "tensors": len(state)}


__all__ = ["CONFIG_NAME", "MFLOPS_UNIT", "cpu_state", "weights_config", "weights_folder", "write_weights",
           "write_weights_folder"]
