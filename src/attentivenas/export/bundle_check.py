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

from ..costs import count_flops, count_params
from ..errors import UserError
from ..io import read_json_file
from ..runtimes.quantize import INT8_FORMATS, PRECISIONS
from ..space import Arch, SearchSpace
from .bundle_format import (
    BUNDLE_FORMATS,
    COLORS,
    CONFIG_NAME,
    FORMAT_VERSION,
    INTERPOLATIONS,
    MAX_CLASSES,
    MAX_CONFIG_BYTES,
    MAX_SIDE,
    MODEL_RESIZE,
    MODEL_TYPE,
    RESIZE_MODES,
    RUNTIME_FILES,
    WEIGHTS_NAME,
    runtime_file_name,
)
from .folders import file_sha256
from .formats import MAX_BATCH, SUBNET_FORMAT, ExportError


# --------------------------------------------------------------------------- loading
def _config_error(path: Path, what: str) -> ExportError:
    return ExportError(f"{path}: {what}")


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def integer_in(v: Any, lo: int, hi: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def _hex64(v: Any) -> bool:
    return isinstance(v, str) and re.fullmatch(r"[0-9a-f]{64}", v) is not None


def read_bundle_config(folder: str | Path) -> dict[str, Any]:
    """The validated ``config.json`` of a bundle folder: every field it describes the model with is
    checked for its type and range (one :class:`ExportError` line naming the file and the field)."""
    root = Path(folder)
    if not root.is_dir():
        raise ExportError(f"bundle folder not found: {root}" if not root.exists()
                          else f"{root} is not a bundle folder (a folder with {CONFIG_NAME} and {WEIGHTS_NAME})")
    path = root / CONFIG_NAME
    cfg = read_json_file(path, "bundle config", ExportError, max_bytes=MAX_CONFIG_BYTES)
    if not isinstance(cfg, Mapping):
        raise _config_error(path, "is not a JSON object")
    if cfg.get("model_type") != MODEL_TYPE:
        raise _config_error(path, f"model_type is {cfg.get('model_type')!r}, not {MODEL_TYPE!r}: not an "
                                  "attentivenas bundle")
    version = cfg.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= FORMAT_VERSION:
        raise _config_error(path, f"format_version {version!r} is not supported (this version reads "
                                  f"1 to {FORMAT_VERSION})")
    n = cfg.get("num_classes")
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_CLASSES:
        raise _config_error(path, f"num_classes must be an integer from 1 to {MAX_CLASSES}, got {n!r}")
    names = cfg.get("class_names")
    if names is not None and (not isinstance(names, list) or len(names) != n
                              or not all(isinstance(c, str) and len(c) <= 1000 for c in names)):
        raise _config_error(path, f"class_names must be a list of {n} strings")
    if not isinstance(cfg.get("space"), Mapping) or not isinstance(cfg.get("arch"), Mapping):
        raise _config_error(path, "needs 'space' and 'arch' objects")
    _check_descriptive(dict(cfg), path)
    return dict(cfg)


def _check_descriptive(cfg: dict[str, Any], path: Path) -> None:
    """The descriptive fields of a config: weights name, costs, normalisation, interpolation,
    preprocessing, files, accuracy and latency entries (types and ranges; :func:`verify_bundle` compares
    them with the model and the files)."""
    v2 = cfg["format_version"] >= 2
    if cfg.get("weights", WEIGHTS_NAME) != WEIGHTS_NAME:
        raise _config_error(path, f"weights must be {WEIGHTS_NAME!r}, got {cfg.get('weights')!r}")
    if v2 and not _hex64(cfg.get("weights_sha256")):
        raise _config_error(path, "weights_sha256 must be the sha256 (64 hex digits) of model.safetensors")
    for key in ("mflops", "params_m"):
        if not (_number(cfg.get(key)) and cfg[key] >= 0):
            raise _config_error(path, f"{key} must be a finite number >= 0, got {cfg.get(key)!r}")
    if "normalization" in cfg:
        _check_normalization(cfg["normalization"], path, "normalization")
    if "interpolation" in cfg and cfg["interpolation"] not in INTERPOLATIONS:
        raise _config_error(path, f"interpolation must be one of {list(INTERPOLATIONS)}, got {cfg['interpolation']!r}")
    if "preprocessing" in cfg:
        _check_preprocessing(cfg, path)
    files = cfg.get("files", {})
    if not isinstance(files, Mapping):
        raise _config_error(path, "files must be an object (file name -> its description)")
    for name, f in files.items():
        _check_file_entry(name, f, path, v2)
    for i, a in enumerate(cfg.get("accuracy", []) if isinstance(cfg.get("accuracy", []), list) else [None]):
        _check_accuracy_entry(a, i, files, path)
    lat = cfg.get("latency")
    if lat is not None:
        entries = lat.get("entries") if isinstance(lat, Mapping) else None
        if not isinstance(entries, list):
            raise _config_error(path, "latency must be an object with a list of entries")
        for i, e in enumerate(entries):
            ok = isinstance(e, Mapping) and e.get("file") in files and all(
                _number(e.get(k)) and e[k] >= 0 for k in ("median_ms", "p90_ms"))
            if not ok:
                raise _config_error(path, f"latency.entries[{i}] must name a listed file with finite median_ms and "
                                          "p90_ms >= 0")


def _check_normalization(norm: Any, path: Path, field_name: str) -> None:
    if not isinstance(norm, Mapping):
        raise _config_error(path, f"{field_name} must be an object with mean and std")
    for key in ("mean", "std"):
        values = norm.get(key)
        if not (isinstance(values, list) and len(values) == 3 and all(_number(v) for v in values)):
            raise _config_error(path, f"{field_name}.{key} must be 3 finite numbers, got {values!r}")
    if not all(v > 0 for v in norm["std"]):
        raise _config_error(path, f"{field_name}.std must be positive, got {norm['std']!r}")


def _check_preprocessing(cfg: Mapping[str, Any], path: Path) -> None:
    pre = cfg["preprocessing"]
    if not isinstance(pre, Mapping):
        raise _config_error(path, "preprocessing must be an object")
    _check_normalization(pre, path, "preprocessing")
    src, rs, mi = pre.get("source"), pre.get("resize"), pre.get("model_input")
    if not (isinstance(src, Mapping) and src.get("color") in COLORS and src.get("channels") == COLORS[src["color"]]):
        raise _config_error(path, f"preprocessing.source must name a color of {list(COLORS)} and its channels")
    size = src.get("size")
    if size is not None and not (isinstance(size, list) and len(size) == 2 and all(integer_in(v, 1, MAX_SIDE)
                                                                                     for v in size)):
        raise _config_error(path, f"preprocessing.source.size must be null or [height, width] from 1 to {MAX_SIDE}")
    if not (isinstance(rs, Mapping) and integer_in(rs.get("size"), 1, MAX_SIDE)):
        raise _config_error(path, f"preprocessing.resize.size must be an integer from 1 to {MAX_SIDE}")
    if rs.get("mode") not in RESIZE_MODES:
        raise _config_error(path, f"preprocessing.resize.mode must be one of {list(RESIZE_MODES)}, got "
                                  f"{rs.get('mode')!r}")
    if rs.get("interpolation") not in INTERPOLATIONS:
        raise _config_error(path, f"preprocessing.resize.interpolation must be one of {list(INTERPOLATIONS)}, got "
                                  f"{rs.get('interpolation')!r}")
    crop = pre.get("crop")
    if rs["mode"] == "shorter_side" and not integer_in(crop, 1, rs["size"]):
        raise _config_error(path, f"preprocessing.crop must be an integer from 1 to the resize ({rs['size']}), "
                                  f"got {crop!r}")
    if rs["mode"] == "whole_image" and crop is not None:
        raise _config_error(path, "preprocessing.crop must be null when the whole image is resized")
    if pre.get("value_range") != [0.0, 1.0]:
        raise _config_error(path, "preprocessing.value_range must be [0.0, 1.0]")
    if not (isinstance(mi, Mapping) and mi.get("channels") == 3 and mi.get("size") == cfg.get("resolution")
            and mi.get("resize") == MODEL_RESIZE and mi.get("layout") == "NCHW" and mi.get("dtype") == "float32"):
        raise _config_error(path, f"preprocessing.model_input must be 3 channels at the resolution "
                                  f"({cfg.get('resolution')!r}), resize {MODEL_RESIZE}, NCHW float32")
    if "normalization" in cfg and {k: cfg["normalization"][k] for k in ("mean", "std")} != {
            k: pre[k] for k in ("mean", "std")}:
        raise _config_error(path, "normalization differs from preprocessing.mean / preprocessing.std")
    if "interpolation" in cfg and cfg["interpolation"] != rs["interpolation"]:
        raise _config_error(path, "interpolation differs from preprocessing.resize.interpolation")


def _check_file_entry(name: Any, f: Any, path: Path, v2: bool) -> None:
    where = f"files[{name!r}]"
    if not isinstance(f, Mapping) or f.get("format") not in RUNTIME_FILES or f.get("precision") not in PRECISIONS:
        raise _config_error(path, f"{where} must name a format of {list(BUNDLE_FORMATS)} and a precision of "
                                  f"{list(PRECISIONS)}")
    if f["precision"] == "int8" and f["format"] not in INT8_FORMATS:
        raise _config_error(path, f"{where}: {f['format']} files are fp32 only")
    if name != runtime_file_name(f["format"], f["precision"]):
        raise _config_error(path, f"{where}: a {f['format']} {f['precision']} file is named "
                                  f"{runtime_file_name(f['format'], f['precision'])!r}")
    batch = f.get("batch")
    if not (batch == "dynamic" and f["format"] != "executorch") and not integer_in(batch, 1, MAX_BATCH):
        raise _config_error(path, f"{where}.batch must be an integer from 1 to {MAX_BATCH}"
                                  f"{'' if f['format'] == 'executorch' else ' or dynamic'}, got {batch!r}")
    if "rel_error" in f and not (_number(f["rel_error"]) and f["rel_error"] >= 0):
        raise _config_error(path, f"{where}.rel_error must be a finite number >= 0")
    if (v2 or "sha256" in f) and not _hex64(f.get("sha256")):
        raise _config_error(path, f"{where}.sha256 must be the file's sha256 (64 hex digits)")


def _check_accuracy_entry(a: Any, i: int, files: Mapping[str, Any], path: Path) -> None:
    where = f"accuracy[{i}]"
    if not isinstance(a, Mapping) or not isinstance(a.get("split"), str) or a.get("precision", "fp32") not in PRECISIONS:
        raise _config_error(path, f"{where} must be an object with a split and a precision of {list(PRECISIONS)}")
    top1 = a.get("top1")
    if not (_number(top1) and 0 <= top1 <= 100):
        raise _config_error(path, f"{where}.top1 must be a percentage from 0 to 100, got {top1!r}")
    top5 = a.get("top5")
    if top5 is not None and not (_number(top5) and top1 <= top5 <= 100):
        raise _config_error(path, f"{where}.top5 must be a percentage from top1 ({top1}) to 100, got {top5!r}")
    if not integer_in(a.get("samples"), 1, 10**9):
        raise _config_error(path, f"{where}.samples must be a positive integer, got {a.get('samples')!r}")
    if a.get("file") is not None and a["file"] not in files:
        raise _config_error(path, f"{where}.file {a['file']!r} is not one of the files listed")


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

