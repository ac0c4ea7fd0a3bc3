"""The :class:`Arch` value: one architecture of a space, in the authors' encoding.

``resolution``, ``width`` [9], ``depth`` [7], ``kernel_size`` [7], ``expand_ratio`` [7] (for the
seven-stage spaces), so the authors' configs paste in unchanged. An ``Arch`` checks keys and types
only; whether its values belong to a space is :meth:`attentivenas.space.SearchSpace.validate`'s job.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ArchError
from ..io import loads_json

ARCH_KEYS = ("resolution", "width", "depth", "kernel_size", "expand_ratio")
#: Keys an arch dict may carry besides :data:`ARCH_KEYS` (e.g. a Pareto entry's costs), ignored.
IGNORED_KEYS = ("flops", "mflops", "params", "accuracy")


def as_number(v: float) -> int | float:
    """``v`` as an int when it is integral (so JSON writes ``4``, not ``4.0``)."""
    return int(v) if is_integral(v) else float(v)


def is_integral(v: Any) -> bool:
    """Whether a number is a whole number (an int of any size, or an integral finite float)."""
    if isinstance(v, int):
        return True
    return isinstance(v, float) and v.is_integer()


@dataclass(frozen=True)
class Arch:
    """One architecture of a space, in the authors' encoding."""

    resolution: int
    width: tuple[int, ...]
    depth: tuple[int, ...]
    kernel_size: tuple[int, ...]
    expand_ratio: tuple[int | float, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "resolution": int(self.resolution),
            "width": [int(v) for v in self.width],
            "depth": [int(v) for v in self.depth],
            "kernel_size": [int(v) for v in self.kernel_size],
            "expand_ratio": [as_number(v) for v in self.expand_ratio],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    def key(self) -> str:
        """A short stable string, usable as a cache key."""
        d = self.to_dict()
        return "r{}_w{}_d{}_k{}_e{}".format(
            d["resolution"],
            "-".join(map(str, d["width"])),
            "".join(map(str, d["depth"])),
            "".join(map(str, d["kernel_size"])),
            "-".join(map(str, d["expand_ratio"])),
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Arch:
        """Build an arch from the authors' dict encoding; checks keys and types, not the space."""
        if not isinstance(data, Mapping):
            raise ArchError(f"arch must be a JSON object with keys {list(ARCH_KEYS)}, got {type(data).__name__}")
        missing = [k for k in ARCH_KEYS if k not in data]
        if missing:
            raise ArchError(f"arch is missing key(s) {missing}; an arch needs {list(ARCH_KEYS)}")
        unknown = sorted(set(data) - set(ARCH_KEYS) - set(IGNORED_KEYS))
        if unknown:
            raise ArchError(f"arch has unknown key(s) {unknown}; allowed: {list(ARCH_KEYS)}")
        res = data["resolution"]
        if isinstance(res, bool) or not isinstance(res, (int, float)) or not is_integral(res):
            raise ArchError(f"arch field 'resolution' must be an integer, got {res!r}")
        lists: dict[str, tuple] = {}
        for k in ARCH_KEYS[1:]:
            v = data[k]
            if not isinstance(v, (list, tuple)):
                raise ArchError(f"arch field '{k}' must be a list, got {v!r}")
            for item in v:
                if isinstance(item, bool) or not isinstance(item, (int, float)):
                    raise ArchError(f"arch field '{k}' must hold numbers, got {item!r}")
            if k == "expand_ratio":
                lists[k] = tuple(as_number(x) for x in v)
            else:
                lists[k] = tuple(int(x) if is_integral(x) else x for x in v)
        return cls(int(res), lists["width"], lists["depth"], lists["kernel_size"], lists["expand_ratio"])

    @classmethod
    def from_json(cls, text: str) -> Arch:
        try:
            data = loads_json(text)
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            raise ArchError(f"arch is not valid JSON: {exc}") from None
        return cls.from_dict(data)
