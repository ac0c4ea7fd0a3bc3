"""Reading a subnet written as safetensors + ``<stem>.arch.json`` (:func:`load_safetensors_subnet`)
and the space a subnet description names."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from torch import nn

from ..io import loads_json, read_json_file
from ..nn.static import StaticSubnet
from ..space import SearchSpace, get_space
from .formats import SUBNET_FORMAT, ExportError, arch_json_path


def _read_spec(path: Path) -> dict[str, Any]:
    js = arch_json_path(path)
    if js.is_file():
        spec = read_json_file(js, "subnet description", ExportError)
    else:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        if "attentivenas" not in meta:
            raise ExportError(f"{js} not found and {path} has no attentivenas metadata; cannot rebuild the subnet")
        try:
            spec = loads_json(meta["attentivenas"])
        except ValueError as exc:
            raise ExportError(f"the attentivenas metadata of {path} is not valid JSON: {exc}") from None
    if not isinstance(spec, Mapping) or spec.get("format") != SUBNET_FORMAT:
        raise ExportError(f"{js} is not an attentivenas subnet description")
    return dict(spec)


def load_safetensors_subnet(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a :class:`~attentivenas.nn.StaticSubnet` written by :func:`export_safetensors`."""
    p = Path(path)
    if not p.is_file():
        raise ExportError(f"safetensors file not found: {p}")
    spec = _read_spec(p)
    try:
        space = get_space_of(spec)
        arch = space.arch_from_dict(spec["arch"])
        num_classes = int(spec["num_classes"])
    except (KeyError, TypeError) as exc:
        raise ExportError(f"subnet description of {p} is incomplete ({exc})") from None
    model = StaticSubnet(space, arch, num_classes)
    try:
        state = load_file(str(p), device="cpu")
    except (SafetensorError, OSError) as exc:
        raise ExportError(f"{p} is not a valid safetensors file ({exc})") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ExportError(f"weights in {p} do not match its arch: {first}") from None
    return model.to(device).eval()


# --------------------------------------------------------------------------- dispatch and Pareto sets
def get_space_of(spec: Mapping[str, Any]) -> SearchSpace:
    """The space of a subnet description (preset name or full ``supernet_config``)."""
    space = spec.get("space", {})
    if isinstance(space, str):
        return get_space(space)
    return SearchSpace.from_dict(space)
