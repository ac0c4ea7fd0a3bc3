"""Reading a bundle's ``config.json`` as hostile input: every descriptive field validated
(:func:`read_bundle_config`), files checked against their recorded sha256 (:func:`verify_bundle_files`),
the config compared with what the weights file records and with the weights themselves."""


from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from ..config.bundle import WEIGHTS_NAME, FileEntry, parse_bundle_config
from ..costs import count_flops, count_params
from ..errors import UserError
from ..io import read_json_file
from ..runtimes.quantize import PRECISIONS
from ..space import Arch, SearchSpace
from .bundle_format import (
    BUNDLE_FORMATS,
    MAX_CONFIG_BYTES,
    bundle_runtime,
    runtime_file_name,
)
from .folders import file_sha256
from .formats import MAX_BATCH, SUBNET_FORMAT, ExportError
from .weights import CONFIG_NAME


# --------------------------------------------------------------------------- loading
def _config_error(path: Path, what: str) -> ExportError:
    return ExportError(f"{path}: {what}")


def integer_in(v: Any, lo: int, hi: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def read_bundle_config(folder: str | Path) -> dict[str, Any]:
    """The validated ``config.json`` of a bundle folder: every field it describes the model with is
    checked for its type and range (the typed :class:`~attentivenas.config.bundle.BundleConfig`; its
    runtime files by :func:`_check_file_entry`), one :class:`ExportError` line naming the file and the field."""
    root = Path(folder)
    if not root.is_dir():
        raise ExportError(f"bundle folder not found: {root}" if not root.exists()
                          else f"{root} is not a bundle folder (a folder with {CONFIG_NAME} and {WEIGHTS_NAME})")
    path = root / CONFIG_NAME
    cfg = read_json_file(path, "bundle config", ExportError, max_bytes=MAX_CONFIG_BYTES)
    if not isinstance(cfg, Mapping):
        raise _config_error(path, "is not a JSON object")
    typed = parse_bundle_config(cfg, str(path), ExportError)
    for name, f in typed.files.items():
        _check_file_entry(name, f, path)
    return dict(cfg)


def _check_file_entry(name: str, f: FileEntry, path: Path) -> None:
    """What a runtime file's entry says that the runtimes decide: its format, INT8, name and batch."""
    where = f"files[{name!r}]"
    rt = bundle_runtime(f.format)
    if rt is None:
        raise _config_error(path, f"{where} must name a format of {list(BUNDLE_FORMATS)} and a precision of "
                                  f"{list(PRECISIONS)}")
    if f.precision == "int8" and rt.int8 is None:
        raise _config_error(path, f"{where}: {f.format} files are fp32 only")
    if name != runtime_file_name(f.format, f.precision):
        raise _config_error(path, f"{where}: a {f.format} {f.precision} file is named "
                                  f"{runtime_file_name(f.format, f.precision)!r}")
    dynamic = rt.batch == "dynamic"
    if not (f.batch == "dynamic" and dynamic) and not integer_in(f.batch, 1, MAX_BATCH):
        raise _config_error(path, f"{where}.batch must be an integer from 1 to {MAX_BATCH}"
                                  f"{' or dynamic' if dynamic else ''}, got {f.batch!r}")


def bundle_space_arch(cfg: Mapping[str, Any], path: Path) -> tuple[SearchSpace, Arch]:
    """The space stored in a bundle's config and its arch, validated against it; the config's resolution
    must be the arch's."""
    try:
        space = SearchSpace.from_dict(cfg["space"])
    except (UserError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise _config_error(path, f"invalid space: {error_line(exc)}") from None
    try:
        arch = space.arch_from_dict(cfg["arch"])
    except (UserError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise _config_error(path, f"invalid arch: {error_line(exc)}") from None
    res = cfg.get("resolution", arch.resolution)
    if res != arch.resolution:
        raise _config_error(path, f"resolution {res!r} differs from the arch's {arch.resolution}")
    return space, arch


def check_costs(cfg: Mapping[str, Any], space: SearchSpace, arch: Arch, path: Path) -> None:
    """The config's MFLOPs and params are those of its arch."""
    n = int(cfg["num_classes"])
    for key, value in (("mflops", count_flops(space, arch, n)), ("params_m", count_params(space, arch, n) / 1e6)):
        if key in cfg and not math.isclose(float(cfg[key]), value, rel_tol=1e-6, abs_tol=1e-9):
            raise _config_error(path, f"{key} {cfg[key]!r} is not the arch's ({value:.6g})")


def error_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return re.sub(r"\s+", " ", text[0]) if text else type(exc).__name__


def verify_bundle_files(root: Path, cfg: Mapping[str, Any]) -> None:
    """Every file ``config.json`` lists exists and has the sha256 it records (one line naming the file)."""
    expected = [(WEIGHTS_NAME, cfg.get("weights_sha256"))]
    expected += [(name, f.get("sha256")) for name, f in cfg.get("files", {}).items()]
    for name, digest in expected:
        p = root / name
        if not p.is_file():
            raise ExportError(f"{p} not found: {CONFIG_NAME} lists it" if name != WEIGHTS_NAME
                              else f"{p} not found: the bundle has no weights")
        if digest is not None and file_sha256(p) != digest:
            field_name = "weights_sha256" if name == WEIGHTS_NAME else f"files[{name!r}].sha256"
            raise ExportError(f"{p}: its sha256 is not the one {CONFIG_NAME} records ({field_name}): the file "
                              "was changed or replaced after export")


def _weights_spec(weights: Path) -> dict[str, Any] | None:
    """The subnet description ``model.safetensors`` records in its metadata (None when it has none)."""
    try:
        with safe_open(str(weights), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ExportError(f"{weights} is not a valid safetensors file ({error_line(exc)})") from None
    if "attentivenas" not in meta:
        return None
    try:
        spec = json.loads(meta["attentivenas"])
    except ValueError:
        raise ExportError(f"{weights}: its attentivenas metadata is not valid JSON") from None
    if not isinstance(spec, dict) or spec.get("format") != SUBNET_FORMAT:
        raise ExportError(f"{weights}: its attentivenas metadata is not a subnet description")
    return spec


def compare_with_weights(cfg: Mapping[str, Any], space: SearchSpace, arch: Arch, weights: Path) -> None:
    """``config.json`` against what ``model.safetensors`` records: space, arch, resolution, classes."""
    spec = _weights_spec(weights)
    if spec is None:
        if cfg["format_version"] >= 2:
            raise ExportError(f"{weights}: records no subnet (attentivenas metadata); it is not this bundle's")
        return
    try:
        same_space = SearchSpace.from_dict(spec["space"]).same_as(space)
    except (UserError, ValueError, KeyError, TypeError, AttributeError):
        same_space = False
    checks = (("space", same_space), ("arch", spec.get("arch") == arch.to_dict()),
              ("resolution", spec.get("resolution") == arch.resolution),
              ("num_classes", spec.get("num_classes") == cfg["num_classes"]))
    for field_name, same in checks:
        if not same:
            raise ExportError(f"{weights.parent / CONFIG_NAME}: {field_name} differs from the one "
                              f"{WEIGHTS_NAME} records: config and weights do not match (not the same model)")


def check_state(state: Mapping[str, torch.Tensor], weights: Path) -> None:
    """Weights as written: float tensors (BN's step counters integer), finite, BN variances >= 0."""
    for k, v in state.items():
        if k.endswith("num_batches_tracked"):
            if v.is_floating_point() or v.dtype == torch.bool:
                raise ExportError(f"{weights}: tensor {k} must be an integer counter, got {v.dtype}")
            continue
        if v.dtype != torch.float32:
            raise ExportError(f"{weights}: tensor {k} is {str(v.dtype).replace('torch.', '')}, not float32")
        if not bool(torch.isfinite(v).all()):
            raise ExportError(f"{weights}: tensor {k} holds non-finite values")
        if k.endswith("running_var") and bool((v < 0).any()):
            raise ExportError(f"{weights}: tensor {k} (a BN variance) holds negative values")

