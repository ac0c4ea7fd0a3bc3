"""A latency kit's timings (:mod:`.kit`) checked against its manifest and fitted into a
:class:`~.table.LatencyTable` (``attentivenas latency import``), as ``build-table`` fits it: the
drift correction (when the timings carry the reference's times), the call cost of the null op, the
overhead and scaled models on the calibration subnets and the MAPE on the held-out ones.

The timings file (format ``attentivenas-latency-timings``, version 1; written by the kit's
``runner.py`` or by hand from a runtime's native benchmark tool) holds ``kit_id``, ``runtime``,
``runtime_version``, ``precision``, ``batch``, ``threads``, ``device`` (``os``, ``cpu``, ...) and
``times``: for every item of the manifest but the reference, one ``{"ms": median, "reference_ms":
reference around it}`` per pass (``reference_ms`` in every entry or in none).
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from ..io import dumps_json, read_json_file
from ..space import Arch, SearchSpace
from .drift import drift_corrected
from .fit import fit_models, holdout_errors, subnet_records
from .kit import KIT_FORMAT, KIT_VERSION, MANIFEST, NULL
from .ops import OpSig
from .table import LatencyTable

TIMINGS_FORMAT = "attentivenas-latency-timings"
TIMINGS_VERSION = 1
#: a time (ms) above this for one forward of one item is refused as absurd (ten minutes)
ABSURD_MS = 600_000.0
_MANIFEST_KEYS = ("runtime", "precision", "batch", "threads", "num_classes", "warmup", "repeats", "passes", "seed",
                  "model", "space", "calibration_archs", "holdout_archs", "reference", "items", "kit_id")


class _Bad(UserError):
    """A kit or timings file that cannot be imported (one line)."""


def load_manifest(kit: str | Path) -> dict[str, Any]:
    """The kit's manifest, checked: its format, its own id, and every file against its sha256."""
    kit = Path(kit)
    if not kit.is_dir():
        raise _Bad(f"kit {kit} is not a folder (write one with `attentivenas latency kit`)")
    man = read_json_file(kit / MANIFEST, "kit manifest", _Bad)
    if not isinstance(man, dict) or man.get("format") != KIT_FORMAT:
        raise _Bad(f"{kit / MANIFEST} is not a latency kit manifest (format {KIT_FORMAT!r})")
    if man.get("version") != KIT_VERSION:
        raise _Bad(f"{kit / MANIFEST} is kit version {man.get('version')!r}; this attentivenas reads version {KIT_VERSION}")
    missing = [k for k in _MANIFEST_KEYS if k not in man]
    if missing:
        raise _Bad(f"{kit / MANIFEST} lacks {', '.join(missing)}")
    items = man["items"]
    if not isinstance(items, list) or not items or not all(isinstance(it, dict) and isinstance(it.get("name"), str)
                                                          for it in items):
        raise _Bad(f"{kit / MANIFEST}: items must be a list of objects with a name, a file and a sha256")
    body = {k: v for k, v in man.items() if k != "kit_id"}
    if hashlib.sha256(dumps_json(body).encode()).hexdigest()[:16] != man["kit_id"]:
        raise _Bad(f"{kit / MANIFEST} was edited after the kit was written (its kit_id no longer matches); "
                   "write the kit again")
    for item in man["items"]:
        path = kit / str(item.get("file", ""))
        if path.resolve().parent.parent != kit.resolve():
            raise _Bad(f"{kit / MANIFEST} names file {item.get('file')!r} outside the kit's items/ folder")
        if not path.is_file():
            raise _Bad(f"kit file {path} is missing; copy the kit again")
        if hashlib.sha256(path.read_bytes()).hexdigest() != item.get("sha256"):
            raise _Bad(f"kit file {path} does not match its sha256 in {MANIFEST}; copy the kit again")
    return man


def load_timings(path: str | Path, man: dict[str, Any]) -> tuple[dict[str, Any], dict[str, list[dict[str, float]]]]:
    """The timings file, checked against the manifest: its kit, settings, items and times."""
    t = read_json_file(path, "timings file", _Bad)
    if not isinstance(t, dict) or t.get("format") != TIMINGS_FORMAT:
        raise _Bad(f"timings file {path} is not a latency timings file (format {TIMINGS_FORMAT!r})")
    if t.get("kit_id") != man["kit_id"]:
        raise _Bad(f"timings file {path} is of kit {t.get('kit_id')!r}, not of this kit {man['kit_id']!r}")
    for key in ("runtime", "precision", "batch"):
        if t.get(key) != man[key]:
            raise _Bad(f"timings file {path} has {key} {t.get(key)!r}; the kit's is {man[key]!r}")
    threads = t.get("threads")
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise _Bad(f"timings file {path}: threads must be an integer >= 1, got {threads!r}")
    times = t.get("times")
    if not isinstance(times, dict):
        raise _Bad(f"timings file {path} has no 'times' object")
    want = {it["name"] for it in man["items"]} - {man["reference"]}
    lacking, extra = sorted(want - set(times)), sorted(set(times) - want)
    if lacking:
        raise _Bad(f"timings file {path} lacks {len(lacking)} item(s) of the kit, e.g. {lacking[0]!r}")
    if extra:
        raise _Bad(f"timings file {path} has {len(extra)} item(s) not in the kit, e.g. {extra[0]!r}")
    passes = {len(v) if isinstance(v, list) else -1 for v in times.values()}
    if len(passes) != 1 or min(passes) < 1:
        raise _Bad(f"timings file {path}: every item needs the same number (>= 1) of passes, a list of {{'ms': ...}}")
    refs = set()
    for name, runs in times.items():
        for run in runs:
            if not isinstance(run, dict):
                raise _Bad(f"timings file {path}: item {name!r} has a pass that is not an object {{'ms': ...}}")
            refs.add("reference_ms" in run)
            for key in ("ms", "reference_ms"):
                if key in run or key == "ms":
                    _check_ms(run.get(key), f"timings file {path}: item {name!r} {key}")
    if len(refs) != 1:
        raise _Bad(f"timings file {path}: 'reference_ms' must be in every pass of every item or in none")
    return t, times


def _check_ms(v: Any, what: str) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not 0 < v <= ABSURD_MS:
        raise _Bad(f"{what} is {v!r}; a time must be a number of ms in (0, {ABSURD_MS:.0f}]")


def import_timings(kit: str | Path, timings: str | Path, device_name: str | None = None) -> LatencyTable:
    """The latency table of a kit's timings (the same kind of table ``build-table`` writes)."""
    man = load_manifest(kit)
    t, times = load_timings(timings, man)
    try:
        space = SearchSpace.from_dict(man["space"])
        calib = [space.validate(Arch.from_dict(a)) for a in man["calibration_archs"]]
        holdout = [space.validate(Arch.from_dict(a)) for a in man["holdout_archs"]]
        names = [it["name"] for it in man["items"] if it["name"] != man["reference"]]
        sigs = {n: OpSig.from_key(n[3:]) for n in names if n.startswith("op:")}
    except (KeyError, TypeError, ValueError, UserError) as exc:
        raise _Bad(f"{Path(kit) / MANIFEST} is malformed: {str(exc).splitlines()[0]}") from None
    points = t.get("reference_points") or []
    if not isinstance(points, list):
        raise _Bad(f"timings file {timings}: reference_points must be a list of ms")
    for v in points:
        _check_ms(v, f"timings file {timings}: a reference point")
    ms, ref = _corrected(names, times, [float(v) for v in points])
    subs = [ms[n] for n in names if n.startswith("subnet:")]
    if len(subs) != len(calib) + len(holdout):
        raise _Bad(f"{Path(kit) / MANIFEST} is malformed: {len(subs)} subnet items for "
                   f"{len(calib) + len(holdout)} calibration and held-out archs")
    dev = t.get("device") if isinstance(t.get("device"), dict) else {}
    table = LatencyTable(
        space=man["space"], entries={sigs[n].key(): ms[n] for n in sigs}, num_classes=man["num_classes"],
        batch=man["batch"], threads=t["threads"], device="cpu",
        device_name=device_name or str(dev.get("cpu") or dev.get("os") or "unknown device"),
        runtime=man["runtime"], runtime_version=str(t.get("runtime_version", "")), call_ms=ms.get(NULL, 0.0),
        meta={"precision": man["precision"], "archs": man["archs"], "warmup": man["warmup"],
              "repeats": man["repeats"], "passes": len(next(iter(times.values()))), "seed": man["seed"],
              "num_ops": len(sigs), "clock": "wall", "op_output": "one element",
              "calibration_subnets": subnet_records(calib, subs[:len(calib)]), "drift_reference": ref,
              "kit_id": man["kit_id"], "device_info": dev, "timing_tool": str(t.get("tool", ""))})
    if calib:
        fit_models(table, space, calib, subs[:len(calib)], man["model"])
    if holdout:
        holdout_errors(table, space, holdout, subs[len(calib):])
    if not table.missing_ops(space):
        table.meta["space_range"] = table.space_range(space)
    table.check_times(f"the table of timings {timings}")
    return table


def _corrected(names: list[str], times: dict[str, list[dict[str, float]]],
               points: list[float]) -> tuple[dict[str, float], dict[str, Any] | None]:
    """Each item's time: drift-corrected to the reference's median (as ``build-table``) when the
    passes carry it, else the lowest over the passes; and the table's drift-reference record. The
    reference's typical time: the median of its ``points`` (those around each item without them)."""
    raw = np.array([[float(times[n][p]["ms"]) for n in names] for p in range(len(times[names[0]]))])
    if "reference_ms" not in times[names[0]][0]:
        return dict(zip(names, (float(v) for v in raw.min(axis=0)), strict=True)), None
    local = np.array([[float(times[n][p]["reference_ms"]) for n in names] for p in range(raw.shape[0])])
    pts = np.array(points) if points else local.ravel()
    typical = float(np.median(pts))
    ref = {"arch": "min", "typical_ms": typical, "points": int(pts.size), "runs_per_point": None,
           "min_ms": float(pts.min()), "max_ms": float(pts.max())}
    return dict(zip(names, drift_corrected(raw, local, typical), strict=True)), ref
