"""A latency table's measurements kept as they are made, so that an interrupted build resumes.

``build-table --out T.json`` keeps ``T.json.partial.json`` beside it while it times: every op and
whole subnet timed in a pass (its raw median and, with drift correction, the reference's time
around it) and every reference point, written atomically at most every :data:`SAVE_EVERY_S` seconds
and at the end of each pass. A build started again with the same settings (:func:`settings_key`:
every setting that changes a time, the space, the runtime's and torch's versions and the machine)
reuses them: what was timed in every pass is not even exported again. A partial file of other
settings is not used (it is replaced). The file is removed once the table is written.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path
from typing import Any

from ..io import atomic_write_json, read_json_file

PARTIAL_FORMAT = "attentivenas-latency-partial"
PARTIAL_SUFFIX = ".partial.json"
#: the partial file is written at most this often (and at the end of each pass)
SAVE_EVERY_S = 1.0


def partial_path(out: str | Path) -> Path:
    """The partial file of a table written to ``out``."""
    out = Path(out)
    return out.with_name(out.name + PARTIAL_SUFFIX)


def settings_key(settings: dict[str, Any]) -> str:
    """A digest of the settings a build's times depend on."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode("utf-8")).hexdigest()[:20]


class PassStore:
    """The measurements of a build by pass: ``(raw_ms, local_reference_ms)`` per item key, and the
    reference points (ms). ``path`` None: kept in memory only."""

    def __init__(self, path: Path | None, key: str, passes: int) -> None:
        self.path, self.key, self.passes = path, key, passes
        self.done: list[dict[str, tuple[float, float]]] = [{} for _ in range(passes)]
        self.points: list[float] = []
        self.reused = 0
        self._saved = time.monotonic()

    @classmethod
    def open(cls, path: Path | None, settings: dict[str, Any], passes: int) -> PassStore:
        """The store of ``settings``: what ``path`` holds when it was written with the same settings,
        else empty (a file of other settings, or an unreadable one, is ignored and later replaced)."""
        store = cls(path, settings_key(settings), passes)
        if path is None or not path.is_file():
            return store
        try:
            data = read_json_file(path, "partial latency table")
            if data.get("format") != PARTIAL_FORMAT or data.get("key") != store.key:
                return store
            done = [{str(k): (float(v[0]), float(v[1])) for k, v in dict(p).items()} for p in data["passes"]]
            points = [float(v) for v in data["points"]]
        except (ValueError, KeyError, TypeError, IndexError, AttributeError):
            return store
        if len(done) != passes or not all(math.isfinite(x) and x > 0 for p in done for v in p.values() for x in v):
            return store
        store.done, store.points = done, [v for v in points if math.isfinite(v) and v > 0]
        store.reused = sum(len(p) for p in done)
        return store

    def has(self, p: int, key: str) -> bool:
        return key in self.done[p]

    def complete(self, key: str) -> bool:
        """Whether ``key`` was timed in every pass (it need not be loaded again)."""
        return all(key in p for p in self.done)

    def record(self, p: int, key: str, raw_ms: float, local_ms: float = 1.0) -> None:
        self.done[p][key] = (float(raw_ms), float(local_ms))
        self.save()

    def point(self, ms: float) -> None:
        self.points.append(float(ms))

    def save(self, force: bool = False) -> None:
        """Write the file (atomically) when :data:`SAVE_EVERY_S` has passed since the last write, or ``force``."""
        if self.path is None or (not force and time.monotonic() - self._saved < SAVE_EVERY_S):
            return
        atomic_write_json(self.path, {"format": PARTIAL_FORMAT, "key": self.key,
                                      "passes": [dict(sorted(p.items())) for p in self.done],
                                      "points": self.points}, indent=None)
        self._saved = time.monotonic()

    def remove(self) -> None:
        """Delete the file (the table it was for is written)."""
        if self.path is not None:
            self.path.unlink(missing_ok=True)


def item_keys(op_keys: list[str], subnet_archs: list[dict[str, Any]], null: bool) -> list[str]:
    """The keys of a build's timed items in timing order: ops, the null op, whole subnets (by position
    and arch: the calibration and held-out lists may repeat an arch)."""
    subnets = [f"subnet:{i}:{json.dumps(a, sort_keys=True)}" for i, a in enumerate(subnet_archs)]
    return [f"op:{k}" for k in op_keys] + (["null"] if null else []) + subnets
