"""Preset spaces (``attentivenas`` = ``alphanet``, ``tiny``), the published models A0-A6 and AlphaNet's,
and :func:`resolve_arch`, which turns a command line's ARCH argument into a validated arch."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..errors import ArchError, SpaceError
from ..io import read_json_file
from .arch import Arch
from .pareto_file import read_pareto_file
from .spec import SearchSpace, StageSpace


def _stage(name, c, d, k, t, s, se) -> StageSpace:
    return StageSpace(name, tuple(c), tuple(d), tuple(k), tuple(t), s, se)


ATTENTIVENAS_SPACE = SearchSpace(
    name="attentivenas",
    resolutions=(192, 224, 256, 288),
    first_conv=(16, 24),
    stages=(
        _stage("mb1", (16, 24), (1, 2), (3, 5), (1,), 1, False),
        _stage("mb2", (24, 32), (3, 4, 5), (3, 5), (4, 5, 6), 2, False),
        _stage("mb3", (32, 40), (3, 4, 5, 6), (3, 5), (4, 5, 6), 2, True),
        _stage("mb4", (64, 72), (3, 4, 5, 6), (3, 5), (4, 5, 6), 2, False),
        _stage("mb5", (112, 120, 128), (3, 4, 5, 6, 7, 8), (3, 5), (4, 5, 6), 1, True),
        _stage("mb6", (192, 200, 208, 216), (3, 4, 5, 6, 7, 8), (3, 5), (6,), 2, True),
        _stage("mb7", (216, 224), (1, 2), (3, 5), (6,), 1, True),
    ),
    last_conv=(1792, 1984),
)

TINY_SPACE = SearchSpace(
    name="tiny",
    resolutions=(24, 28, 32),
    first_conv=(8, 16),
    stages=(
        _stage("mb1", (8, 16), (1, 2), (3, 5), (1,), 1, False),
        _stage("mb2", (16, 24), (1, 2), (3, 5), (3, 4, 6), 2, False),
        _stage("mb3", (24, 32), (1, 2), (3, 5), (3, 4, 6), 2, True),
        _stage("mb4", (32, 40), (1, 2, 3), (3, 5), (3, 4, 6), 2, False),
        _stage("mb5", (40, 48), (1, 2, 3), (3, 5), (3, 4, 6), 1, True),
        _stage("mb6", (64, 72), (1, 2, 3), (3, 5), (6,), 2, True),
        _stage("mb7", (72, 80), (1, 2), (3, 5), (6,), 1, True),
    ),
    last_conv=(256, 320),
)

SPACES: dict[str, SearchSpace] = {
    "attentivenas": ATTENTIVENAS_SPACE,
    "alphanet": ATTENTIVENAS_SPACE,
    "tiny": TINY_SPACE,
}


def get_space(name_or_path: str | SearchSpace | None) -> SearchSpace:
    """A preset by name (``attentivenas``, ``alphanet``, ``tiny``) or a YAML file path."""
    if name_or_path is None:
        return ATTENTIVENAS_SPACE
    if isinstance(name_or_path, SearchSpace):
        return name_or_path
    key = str(name_or_path)
    if key.lower() in SPACES:
        return SPACES[key.lower()]
    if key.endswith((".yaml", ".yml")) or Path(key).is_file():
        return SearchSpace.from_yaml(key)
    raise SpaceError(f"unknown space {key!r}; use one of {sorted(SPACES)} or a YAML file path")


# --------------------------------------------------------------------------- named models
def _a(res, width, depth, ks, er) -> dict[str, Any]:
    return {"resolution": res, "width": width, "depth": depth, "kernel_size": ks, "expand_ratio": er}


NAMED_ARCHS: dict[str, dict[str, Any]] = {
    "a0": _a(192, [16, 16, 24, 32, 64, 112, 192, 216, 1792], [1, 3, 3, 3, 3, 3, 1], [3, 3, 3, 3, 3, 3, 3], [1, 4, 4, 4, 4, 6, 6]),
    "a1": _a(224, [16, 16, 24, 32, 64, 112, 192, 216, 1984], [1, 3, 3, 3, 3, 3, 1], [3, 3, 3, 5, 3, 5, 3], [1, 4, 4, 4, 4, 6, 6]),
    "a2": _a(224, [16, 16, 24, 32, 64, 112, 200, 224, 1984], [1, 3, 3, 3, 3, 4, 1], [3, 3, 3, 3, 3, 5, 3], [1, 4, 5, 4, 4, 6, 6]),
    "a3": _a(224, [16, 16, 24, 32, 64, 112, 208, 224, 1984], [2, 3, 3, 4, 3, 5, 1], [3, 3, 3, 5, 3, 3, 3], [1, 4, 4, 4, 4, 6, 6]),
    "a4": _a(256, [16, 16, 24, 32, 64, 112, 192, 216, 1984], [1, 3, 3, 4, 3, 5, 1], [3, 3, 3, 5, 3, 5, 3], [1, 4, 4, 5, 4, 6, 6]),
    "a5": _a(256, [16, 16, 24, 32, 72, 112, 192, 216, 1792], [1, 3, 3, 3, 4, 6, 1], [3, 3, 3, 5, 3, 3, 3], [1, 4, 5, 4, 4, 6, 6]),
    "a6": _a(288, [16, 16, 24, 32, 64, 112, 216, 224, 1984], [1, 3, 3, 4, 4, 6, 1], [3, 3, 3, 3, 3, 5, 3], [1, 4, 6, 5, 4, 6, 6]),
    "alphanet-a5": _a(256, [16, 16, 24, 32, 64, 112, 208, 216, 1984], [1, 3, 3, 4, 4, 5, 1], [3, 3, 3, 3, 3, 5, 3], [1, 4, 4, 5, 4, 6, 6]),
    "alphanet-a5-base": _a(288, [16, 16, 24, 32, 64, 112, 200, 216, 1984], [2, 3, 4, 3, 3, 5, 1], [3, 3, 5, 5, 3, 3, 3], [1, 4, 4, 4, 5, 6, 6]),
}

#: Published MFLOPs of the named models (official counter), checked by the tests.
PUBLISHED_MFLOPS: dict[str, float] = {
    "a0": 203.39, "a1": 279.24, "a2": 316.73, "a3": 356.52, "a4": 443.53, "a5": 490.52,
    "a6": 709.01, "alphanet-a5": 491.48, "alphanet-a5-base": 594.79,
}

#: Published ImageNet top-1 of the named models (AttentiveNAS paper / AlphaNet README).
PUBLISHED_TOP1: dict[str, float] = {
    "a0": 77.3, "a1": 78.4, "a2": 78.8, "a3": 79.1, "a4": 79.8, "a5": 80.1, "a6": 80.7,
    "alphanet-a5": 80.29, "alphanet-a5-base": 80.62,
}

#: AlphaNet's published top-1 (its README): the same A0-A4 and A6 archs trained with alpha-divergence,
#: its own A5 (small) and A5-1 (base); AttentiveNAS's A5 arch has no AlphaNet number.
ALPHANET_TOP1: dict[str, float] = {
    "a0": 77.87, "a1": 78.94, "a2": 79.20, "a3": 79.41, "a4": 80.01, "a6": 80.78,
    "alphanet-a5": 80.29, "alphanet-a5-base": 80.62,
}

MODEL_NAMES: tuple[str, ...] = tuple(NAMED_ARCHS) + ("min", "max")


def named_arch(name: str, space: SearchSpace | None = None) -> Arch:
    """A published model (``a0``..``a6``, ``alphanet-a5``, ``alphanet-a5-base``) or ``min``/``max``
    of ``space``."""
    space = space or ATTENTIVENAS_SPACE
    key = name.lower()
    if key == "min":
        return space.min_arch()
    if key == "max":
        return space.max_arch()
    if key not in NAMED_ARCHS:
        raise ArchError(f"unknown model name {name!r}; known: {list(MODEL_NAMES)}")
    return space.arch_from_dict(NAMED_ARCHS[key])


def resolve_arch(spec: str | Mapping[str, Any] | Arch, space: SearchSpace) -> Arch:
    """Turn an ARCH argument into a validated arch: a model name, a JSON file path, an inline
    JSON object, a dict or an :class:`Arch`."""
    if isinstance(spec, Arch):
        return space.validate(spec)
    if isinstance(spec, Mapping):
        return space.arch_from_dict(spec)
    text = str(spec).strip()
    if text.startswith("{"):
        return space.validate(Arch.from_json(text))
    if text.lower() in MODEL_NAMES:
        return named_arch(text, space)
    file, sep, pick = text.rpartition(":")
    if sep and file.lower().endswith(".json") and (pick == "best" or pick.isdigit()):
        return space.arch_from_dict(pareto_entry(Path(file), pick))
    p = Path(text)
    if p.suffix.lower() == ".json" or p.exists():
        data = read_json_file(p, "arch file", ArchError)
        if isinstance(data, Mapping) and "arch" in data and isinstance(data["arch"], Mapping):
            data = data["arch"]
        return space.arch_from_dict(data)
    raise ArchError(
        f"unknown arch {text!r}: give a model name {list(MODEL_NAMES)}, a path to an arch JSON file, "
        "a subnet of a search's Pareto file (PARETO.json:best or PARETO.json:N), or an inline JSON object"
    )


def pareto_entry(path: Path, pick: str) -> Mapping[str, Any]:
    """The arch of one entry of a ``pareto.json`` that ``search`` wrote: ``best`` (the highest
    ``accuracy``) or a 0-based index in the file's order (the order ``search`` prints)."""
    entries = read_pareto_file(path, ArchError, "Pareto file")
    if not entries or not all(isinstance(e, Mapping) and isinstance(e.get("arch"), Mapping) for e in entries):
        raise ArchError(f"{path}: not a Pareto file of `attentivenas search` (a non-empty list of entries with an 'arch')")
    if pick == "best":
        scores = [e.get("accuracy") for e in entries]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in scores):
            raise ArchError(f"{path}: every entry needs a finite 'accuracy' for {path}:best; pick one by index instead")
        return entries[max(range(len(entries)), key=lambda i: scores[i])]["arch"]
    index = int(pick)
    if index >= len(entries):
        raise ArchError(f"{path}:{pick}: the file has {len(entries)} subnets (indices 0 to {len(entries) - 1})")
    return entries[index]["arch"]


def iter_named(space: SearchSpace | None = None) -> Iterable[tuple[str, Arch]]:
    for name in NAMED_ARCHS:
        yield name, named_arch(name, space)
