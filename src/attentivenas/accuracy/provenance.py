"""What measured a dataset file's accuracies (``measured_with`` in its header line), and whether a
file may be reused: the same supernet weights (:func:`weights_fingerprint`), the same data and split,
and the same measurement settings that change accuracy (the evaluation batch size does not).

:func:`checked_text` reads a dataset file for a measuring command and decides: reuse it, start it
over (a header-only file), move it aside and measure again (``stale="remeasure"``: the files a
command keeps in its own folder), or refuse (``stale="refuse"``: a file the user names). A file moved
aside is kept under a name of its provenance (``NAME.stale-<hash>``), and reused when the same
settings measure again: switching settings back and forth deletes no measurement.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..io import loads_json, read_text_file

#: the measurement settings recorded (those that change a subnet's measured top-1)
SETTING_KEYS = ("split", "pipeline", "interpolation", "calib_seed", "calib_batches", "calib_batch_size", "max_images")
STALE_POLICIES = ("remeasure", "refuse", "fresh")
STALE_SUFFIX = ".stale"


class StaleMeasurements(ConfigError):
    """A dataset file measured on another checkpoint, data or settings (``predictor build``)."""


def weights_fingerprint(module: nn.Module) -> str:
    """SHA-256 over ``module``'s state-dict tensors (name, dtype, shape and bytes) in sorted name order."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        t = t.detach().to("cpu").contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}\n".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def provenance_of(evaluate_fn: Any) -> dict[str, Any] | None:
    """``evaluate_fn.provenance()`` (a :class:`~attentivenas.accuracy.SubnetEvaluator`'s ``measured_with``),
    as it reads back from JSON; None for a plain function (nothing is checked then)."""
    fn = getattr(evaluate_fn, "provenance", None)
    if not callable(fn):
        return None
    value = fn()
    return json.loads(json.dumps(value)) if value is not None else None


def provenance_hash(measured_with: Any) -> str:
    """12 hex digits naming what measured a file (``unrecorded`` for a file that does not say)."""
    if not isinstance(measured_with, dict):
        return "unrecorded"
    return hashlib.sha256(json.dumps(measured_with, sort_keys=True).encode("utf-8")).hexdigest()[:12]


def kept_path(path: Path, measured_with: Any) -> Path:
    """Where the measurements of ``path`` made with ``measured_with`` are kept while other settings
    measure into it: ``NAME.stale-<provenance hash>`` beside it (:func:`provenance_hash`)."""
    return path.with_name(f"{path.name}{STALE_SUFFIX}-{provenance_hash(measured_with)}")


def move_aside(path: Path, measured_with: Any = None) -> Path:
    """Rename ``path`` to its :func:`kept_path` (atomically). A kept file is never replaced: a name
    taken already gets a counter (``.stale-<hash>-2``), so no measurement is ever deleted."""
    if measured_with is None:
        try:
            measured_with = (header_and_count(path.read_text(encoding="utf-8"))[0] or {}).get("measured_with")
        except (OSError, UnicodeDecodeError):
            measured_with = None
    aside = kept_path(path, measured_with)
    n = 1
    while aside.exists():
        n += 1
        aside = kept_path(path, measured_with).with_name(f"{kept_path(path, measured_with).name}-{n}")
    os.replace(path, aside)
    return aside


def _restore_kept(path: Path, current: dict[str, Any], warn: Callable[[str], None] | None) -> str:
    """The text of the measurements kept for ``current`` beside ``path`` (moved back to ``path``), or ''."""
    kept = kept_path(path, current)
    if not kept.is_file():
        return ""
    text = read_text_file(kept, "dataset file", ConfigError)
    header, records = header_and_count(text)
    if header is None or differences(header.get("measured_with"), current):
        return ""
    os.replace(kept, path)
    if warn is not None:
        warn(f"reusing {records} measurements made with these settings earlier (kept as {kept.name})")
    return text


def header_and_count(text: str) -> tuple[dict[str, Any] | None, int]:
    """The header (the first line, when it is one) and the number of other non-blank lines."""
    lines = [line for line in text.split("\n") if line.strip()]
    if not lines:
        return None, 0
    try:
        first = loads_json(lines[0])
    except ValueError:
        first = None
    header = first if isinstance(first, dict) and first.get("format") == "attentivenas-arch-dataset" else None
    return header, len(lines) - (header is not None)


def differences(recorded: Any, current: dict[str, Any]) -> list[str]:
    """The keys of ``current`` whose recorded value differs (all of them when nothing usable is recorded)."""
    if not isinstance(recorded, dict):
        return list(current)
    return [k for k in current if recorded.get(k) != current[k]]


def _show(value: Any) -> str:
    return "none" if value is None else str(value)


def describe(path: Path, recorded: Any, current: dict[str, Any], fields: list[str]) -> str:
    """``PATH was measured on another checkpoint (weights differ) and another split (holdout; now test)``."""
    if not isinstance(recorded, dict):
        return f"{path} does not record what measured it (an older file)"
    parts = []
    if "weights" in fields:
        parts.append("another checkpoint (weights differ)")
    if "data" in fields:
        parts.append("other data")
    parts += [f"another {k} ({_show(recorded.get(k))}; now {_show(current[k])})" for k in fields
              if k not in ("weights", "data")]
    said = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"{path} was measured on {said}"


def checked_text(path: Path, current: dict[str, Any] | None, stale: str = "remeasure",
                 warn: Callable[[str], None] | None = None, fresh_flag: str = "--fresh") -> str:
    """The text of the dataset file at ``path`` to resume from ('' when there is none to reuse).

    With ``stale="fresh"`` an existing file is moved aside (:func:`move_aside`). Else, when ``current``
    (what measures now) is given and the file's header records something else (or nothing): a file with
    no records is removed (it is started over), one with records is moved aside (under a name of its
    own provenance, :func:`kept_path`: never deleted) with one line to ``warn`` (``remeasure``) or
    refused (``refuse``: :class:`StaleMeasurements` naming ``fresh_flag``). Measurements kept earlier
    for ``current`` (settings switched back) are moved back and reused."""
    if stale not in STALE_POLICIES:
        raise ConfigError(f"unknown stale policy {stale!r}; allowed: {list(STALE_POLICIES)}")
    if path.exists() and not path.is_file():
        raise ConfigError(f"dataset file {path} exists and is not a file; choose another path")
    if not path.exists():
        return _restore_kept(path, current, warn) if current is not None and stale != "fresh" else ""
    if stale == "fresh":
        move_aside(path)
        return ""
    text = read_text_file(path, "dataset file", ConfigError)
    if current is None or not text.strip():
        return text
    header, records = header_and_count(text)
    recorded = header.get("measured_with") if header is not None else None
    fields = differences(recorded, current)
    if not fields:
        return text
    said = describe(path, recorded, current, fields)
    if stale == "refuse" and records:
        raise StaleMeasurements(f"{said}; measure it again with {fresh_flag} (the old file is kept as "
                                f"{kept_path(path, recorded).name}) or choose another file")
    if records == 0:
        path.unlink()
    else:
        aside = move_aside(path, recorded)
        if warn is not None:
            warn(f"{said}; measuring again (its measurements are kept as {aside.name})")
    return _restore_kept(path, current, warn)
