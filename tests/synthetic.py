"""Synthetic test data shared by several test modules."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from attentivenas.latency import LatencyTable, space_signatures
from attentivenas.space import TINY_SPACE, SearchSpace


def synthetic_latency_table(space: SearchSpace = TINY_SPACE, num_classes: int = 10, **kw: Any) -> LatencyTable:
    """A deterministic 'latency' of 1 ms per MMAC plus 0.01 ms per op, for every op of the space."""
    entries = {}
    for sig in space_signatures(space, num_classes):
        size_out = -(-sig.size_in // sig.stride)
        entries[sig.key()] = 0.01 + sig.c_in * sig.c_out * sig.kernel**2 * size_out**2 / 1e6
    cfg = json.loads(json.dumps(space.to_supernet_config()))
    return LatencyTable(space={"name": space.name, "supernet_config": cfg}, entries=entries, num_classes=num_classes,
                        **kw)


def config_with(data: dict[str, Any], **over: Any) -> Any:
    """A TrainConfig from ``data`` with ``section__key=value`` overrides (test shorthand)."""
    from attentivenas.config import parse_config

    for key, value in over.items():
        section, name = key.split("__")
        data.setdefault(section, {})[name] = value
    return parse_config(data)


def tamper_predictor(path: Path, tmp_path: Path, change: Callable[[dict], Any]) -> Path:
    """A copy of the predictor JSON at ``path`` (in ``tmp_path``) whose ``model`` went through ``change``."""
    data = json.loads(path.read_text())
    change(data["model"])
    out = tmp_path / f"bad_{path.name}"
    out.write_text(json.dumps(data))
    return out
