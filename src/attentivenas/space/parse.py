"""Parsing the authors' ``supernet_config`` block (and YAML files holding one) into plain values.

Every problem raises :class:`~attentivenas.errors.SpaceError` naming the dotted key and what is
allowed. The result is the keyword arguments of :class:`~attentivenas.space.SearchSpace` (stages as
dicts of :class:`~attentivenas.space.StageSpace` arguments), so this module imports nothing of the
space itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import SpaceError
from ..io import read_yaml_file
from .arch import as_number, is_integral

ACTIVATIONS = ("swish", "relu", "relu6", "h_swish")
#: Bounds of a space's values: far beyond any real network, so that describing or costing a space a
#: user hands us cannot overflow or run for minutes.
LIMITS = {"c": 8192, "d": 32, "k": 15, "resolutions": 2048, "s": 2, "choices": 32, "stages": 16, "t": 16}


def _need(d: Any, key: str, where: str) -> Any:
    if not isinstance(d, Mapping):
        raise SpaceError(f"supernet_config.{where or key} must be a mapping, got {type(d).__name__}")
    if key not in d:
        raise SpaceError(f"supernet_config.{where} is missing '{key}'")
    return d[key]


def _choices(v: Any, where: str) -> list[Any]:
    vals = list(v) if isinstance(v, (list, tuple)) else [v]
    if len(vals) > LIMITS["choices"]:
        raise SpaceError(f"supernet_config.{where} has {len(vals)} values; at most {LIMITS['choices']} are allowed")
    return vals


def _int_list(v: Any, where: str) -> tuple[int, ...]:
    """Sorted distinct positive integers of a value or list, each within :data:`LIMITS`."""
    limit = LIMITS[where.rsplit(".", 1)[-1]]
    out = []
    for x in _choices(v, where):
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not is_integral(x):
            raise SpaceError(f"supernet_config.{where} must hold integers, got {x!r}")
        if x <= 0:
            raise SpaceError(f"supernet_config.{where} must hold positive integers, got {x!r}")
        if x > limit:
            raise SpaceError(f"supernet_config.{where} = {x} is above the limit of {limit}")
        out.append(int(x))
    if not out:
        raise SpaceError(f"supernet_config.{where} must not be empty")
    if len(set(out)) != len(out):
        raise SpaceError(f"supernet_config.{where} has repeated values {out}")
    return tuple(sorted(out))


def _stride(value: Any, where: str) -> int:
    if isinstance(value, bool) or value not in (1, 2):
        raise SpaceError(f"supernet_config.{where} = {value!r}; allowed: [1, 2]")
    return int(value)


def _flag(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise SpaceError(f"supernet_config.{where} must be true or false, got {value!r}")
    return value


def _activation(value: Any, where: str) -> str:
    act = str(value)
    if act not in ACTIVATIONS:
        raise SpaceError(f"supernet_config.{where} = {act!r}; allowed: {list(ACTIVATIONS)}")
    return act


def _expands(value: Any, where: str) -> tuple[int | float, ...]:
    out = []
    for t in _choices(value, where):
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 < t <= LIMITS["t"]:
            raise SpaceError(f"supernet_config.{where} must hold numbers in (0, {LIMITS['t']}], got {t!r}")
        out.append(as_number(t))
    return tuple(sorted(out))


def _stage(name: str, sc: Any, default_act: str) -> dict[str, Any]:
    if not isinstance(sc, Mapping):
        raise SpaceError(f"supernet_config.{name} must be a mapping")
    expands = _expands(_need(sc, "t", name), f"{name}.t")
    kernels = _int_list(_need(sc, "k", name), f"{name}.k")
    for k in kernels:
        if k % 2 == 0:
            raise SpaceError(f"supernet_config.{name}.k must hold odd kernel sizes, got {k}")
    act = _activation(sc.get("act_func", default_act), f"{name}.act_func")
    stride = _stride(sc.get("s", 1), f"{name}.s")
    return {
        "name": name,
        "widths": _int_list(_need(sc, "c", name), f"{name}.c"),
        "depths": _int_list(_need(sc, "d", name), f"{name}.d"),
        "kernels": kernels,
        "expands": expands,
        "stride": stride,
        "se": _flag(sc.get("se", False), f"{name}.se"),
        "act": act,
    }


def parse_supernet_config(cfg: Any) -> dict[str, Any]:
    """Keyword arguments of a ``SearchSpace`` (without ``name``) from a ``supernet_config`` block."""
    if not isinstance(cfg, Mapping):
        raise SpaceError("supernet_config must be a mapping")
    if not cfg.get("use_v3_head", True):
        raise SpaceError("supernet_config.use_v3_head: only the v3 head (true) is supported")
    resolutions = _int_list(_need(cfg, "resolutions", ""), "resolutions")
    fc = _need(cfg, "first_conv", "")
    first = _int_list(_need(fc, "c", "first_conv"), "first_conv.c")
    act = _activation(fc.get("act_func", "swish"), "first_conv.act_func")
    stage_names = sorted(
        (k for k in cfg if isinstance(k, str) and k.startswith("mb") and k[2:].isdigit()),
        key=lambda k: int(k[2:]),
    )
    if not stage_names:
        raise SpaceError("supernet_config has no MBConv stages (mb1, mb2, ...)")
    if len(stage_names) > LIMITS["stages"]:
        raise SpaceError(f"supernet_config has {len(stage_names)} stages; at most {LIMITS['stages']} are allowed")
    stages = [_stage(sn, cfg[sn], act) for sn in stage_names]
    lc = _need(cfg, "last_conv", "")
    last = _int_list(_need(lc, "c", "last_conv"), "last_conv.c")
    return {
        "resolutions": resolutions,
        "first_conv": first,
        "stages": stages,
        "last_conv": last,
        "first_stride": _stride(fc.get("s", 2), "first_conv.s"),
        "act": act,
    }


def read_space_yaml(path: str | Path) -> tuple[Any, str]:
    """The ``supernet_config`` block of a YAML file (or its top level) and the space's name."""
    p = Path(path)
    data = read_yaml_file(p, "space file", SpaceError)
    if not isinstance(data, Mapping):
        raise SpaceError(f"space file {p} must hold a mapping with a 'supernet_config' block")
    return data.get("supernet_config", data), str(data.get("name", p.stem))
