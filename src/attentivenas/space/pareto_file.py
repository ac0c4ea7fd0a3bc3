"""The one reader of Pareto files (``pareto.json``, as ``search`` writes them): :func:`read_pareto_file`
returns their entries, bounded; :func:`drop_repeated` keeps one entry per subnet. ``resolve_arch``'s
``PARETO.json:N``, ``export --pareto``, ``finetune --pareto`` and the search's own readers go through it."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from ..errors import UserError
from ..io import read_json_file

#: the most entries a Pareto file may hold (each is measured, exported or fine-tuned; a front is a few dozen)
MAX_PARETO_ENTRIES = 1_000

T = TypeVar("T")


def read_pareto_file(path: str | Path, error: type[Exception] = UserError, what: str = "Pareto set") -> list[Any]:
    """The entries of a Pareto file, as written: a JSON list (an object's ``pareto`` or ``archs`` list is
    read too), at most :data:`MAX_PARETO_ENTRIES`. A missing, malformed or oversized file is one ``error``
    line naming ``what`` and the path."""
    data = read_json_file(path, what, error)
    if isinstance(data, Mapping) and ("pareto" in data or "archs" in data):
        data = data.get("pareto", data.get("archs"))
    if not isinstance(data, list):
        raise error(f"{what} {path}: not a Pareto file of `attentivenas search` (it must hold a JSON list of "
                    "entries with an 'arch')")
    check_pareto_size(len(data), error, f"{what} {path}")
    return data


def check_pareto_size(n: int, error: type[Exception] = UserError, what: str = "Pareto set") -> None:
    """A Pareto set of ``n`` entries past :data:`MAX_PARETO_ENTRIES` is one ``error`` line."""
    if n > MAX_PARETO_ENTRIES:
        raise error(f"{what} has {n:,} entries; at most {MAX_PARETO_ENTRIES:,} (a front is a few dozen)")


def drop_repeated(items: Sequence[T], key: Callable[[T], Hashable | None], what: str = "Pareto set") -> list[T]:
    """``items`` without the repeats of a subnet (``key``: one value per subnet, or None for an item
    never dropped), in their order; one warning says how many were dropped."""
    out: list[T] = []
    seen: set[Hashable] = set()
    for item in items:
        k = key(item)
        if k is None or k not in seen:
            out.append(item)
            if k is not None:
                seen.add(k)
    if len(out) < len(items):
        warnings.warn(f"{what}: {len(items) - len(out)} repeated subnet(s) dropped; {len(out)} distinct",
                      UserWarning, stacklevel=3)
    return out


__all__ = ["MAX_PARETO_ENTRIES", "check_pareto_size", "drop_repeated", "read_pareto_file"]
