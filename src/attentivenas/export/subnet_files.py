"""Subnet files of the old format, read back (:func:`read_old_subnet_file`): ``X.safetensors`` beside
``X.arch.json`` (the subnet's description, whose ``format`` says ``attentivenas-subnet``; also in the
weights' metadata), which ``export --format safetensors`` wrote before it wrote a bundle's weights
(``model.safetensors`` + ``config.json``, :mod:`attentivenas.export.weights`). They still load, through
:func:`~attentivenas.export.pretrained.load_pretrained`, with a warning naming the new format."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

from ..config.bundle import WEIGHTS_NAME
from ..io import loads_json, read_json_file
from ..nn.static import StaticSubnet
from ..space import SearchSpace, get_space
from .formats import SUBNET_FORMAT, ExportError, arch_json_path
from .weights import CONFIG_NAME

#: how the old format is named in messages (its description's ``format`` is :data:`OLD_FORMAT_ID`)
OLD_FORMAT = "an old-format subnet file (X.safetensors + X.arch.json)"
#: the ``format`` of an old subnet file's description (a bundle's ``config.json`` says ``model_type``)
OLD_FORMAT_ID = SUBNET_FORMAT


def old_format_warning(path: Path) -> str:
    """The warning an old subnet file loads with: what it is and what replaces it."""
    return (f"{path} is {OLD_FORMAT}; it loads, but export the subnet again with --format safetensors: the "
            f"new format is a folder with {WEIGHTS_NAME} and {CONFIG_NAME} (a bundle's weights), which "
            "attentivenas.load_pretrained checks (sizes, sha256, the weights against the config)")


def _read_spec(path: Path) -> dict[str, Any]:
    js = arch_json_path(path)
    if js.is_file():
        spec = read_json_file(js, "subnet description", ExportError)
    else:
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
        except (SafetensorError, OSError) as exc:
            raise ExportError(f"{path} is not a valid safetensors file ({exc})") from None
        if "attentivenas" not in meta:
            raise ExportError(f"{js} not found and {path} has no attentivenas metadata; cannot rebuild the subnet")
        try:
            spec = loads_json(meta["attentivenas"])
        except ValueError as exc:
            raise ExportError(f"the attentivenas metadata of {path} is not valid JSON: {exc}") from None
    if not isinstance(spec, Mapping) or spec.get("format") != OLD_FORMAT_ID:
        raise ExportError(f"{js} is not an attentivenas subnet description")
    return dict(spec)


def read_old_subnet_file(path: str | Path) -> StaticSubnet:
    """Rebuild the :class:`~attentivenas.nn.StaticSubnet` of an old subnet file (on the CPU, eval mode),
    warning (:class:`FutureWarning`) that the format is replaced; one :class:`ExportError` line for a
    missing, malformed or mismatched file."""
    p = Path(path)
    if not p.is_file():
        raise ExportError(f"safetensors file not found: {p}")
    spec = _read_spec(p)
    warnings.warn(old_format_warning(p), FutureWarning, stacklevel=3)
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
    return model.eval()


def get_space_of(spec: Mapping[str, Any]) -> SearchSpace:
    """The space of a subnet description (preset name or full ``supernet_config``)."""
    space = spec.get("space", {})
    if isinstance(space, str):
        return get_space(space)
    return SearchSpace.from_dict(space)


__all__ = ["OLD_FORMAT", "OLD_FORMAT_ID", "get_space_of", "old_format_warning", "read_old_subnet_file"]
