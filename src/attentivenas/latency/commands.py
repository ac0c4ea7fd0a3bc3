"""What the ``attentivenas latency`` commands do and report, as small functions the CLI calls.

Each command's work (one subnet measured, a build's section and space, a table's summary) and the
JSON object and lines it prints live here, so ``cli/latency_cmd.py`` only parses flags and prints.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from ..config import LatencyTableConfig, parse_model
from ..config.latency import check_measure_counts
from ..costs import peak_activation_bytes, weight_bytes
from ..devices import device_name
from ..errors import ConfigError
from ..nn import supernet_weights
from ..runtimes.runners import check_runtime, runtime_version
from ..space import SearchSpace, get_space, resolve_arch
from .measure import check_batch, measure_arch
from .table import LatencyTable
from .whole import load_latency_predictor


def int8_note(precision: str) -> str:
    """`` (INT8)`` after a runtime's name for an INT8 setting, else nothing."""
    return " (INT8)" if precision == "int8" else ""


def measure_one(space: str, arch: str, *, batch: int, threads: int | None, device: str, warmup: int, repeats: int,
                num_classes: int, table: Path | None, runtime: str, clock: str, precision: str) -> dict[str, Any]:
    """``latency measure``'s JSON object: one subnet (random weights) timed, its memory, and the
    prediction of ``table`` when given. Every count and the table's setting are checked before any work."""
    sp = get_space(space)
    a = resolve_arch(arch, sp)
    check_measure_counts(warmup, repeats, batch)  # bounded before any work: a run that finishes, in memory
    check_batch(sp, a, batch, num_classes)
    dev = check_runtime(runtime, device, precision)
    tab = load_latency_predictor(table) if table is not None else None  # a per-op table or a whole model
    if tab is not None:
        tab.check_space(sp)
        tab.check_setting(runtime=runtime, batch=batch, num_classes=num_classes, precision=precision)
    res = measure_arch(sp, a, dev, batch, threads, warmup, repeats, num_classes, clock=clock, runtime=runtime,
                       precision=precision)
    out = res.to_dict() | {"median_ms": round(res.median_ms, 4), "p90_ms": round(res.p90_ms, 4)}
    out = {"latency_ms": out["median_ms"]} | out
    out["device_name"] = device_name(dev)
    out["torch"] = torch.__version__
    out["runtime_version"] = runtime_version(runtime)
    out["weight_mb"] = round(weight_bytes(sp, a, torch.float32, num_classes) / 1e6, 4)
    out["peak_activation_mb"] = round(peak_activation_bytes(sp, a, batch, torch.float32, num_classes) / 1e6, 4)
    if tab is not None:
        out["predicted_ms"] = round(tab.predict(sp, a), 4)
    return out


def measure_lines(out: dict[str, Any], runtime: str, precision: str, batch: int, repeats: int) -> list[str]:
    """What ``latency measure`` prints of its object ``out``."""
    lines = [f"{out['latency_ms']:.3f} ms median (p90 {out['p90_ms']:.3f} ms) in {runtime}{int8_note(precision)} "
             f"{out['runtime_version']} on {out['device']} ({out['device_name']}), batch {batch}, "
             f"{out['threads']} thread(s), {repeats} runs",
             f"memory: {out['weight_mb']:.2f} MB weights, {out['peak_activation_mb']:.2f} MB peak activations"]
    if "predicted_ms" in out:
        lines.append(f"table prediction: {out['predicted_ms']:.3f} ms")
    return lines


def table_config(flags: dict[str, Any]) -> LatencyTableConfig:
    """The section of ``build-table``'s (or ``kit``'s) flags, those named as its fields (the others,
    such as ``--out``, are not the table's); a value out of bounds is one line naming its flag."""
    try:
        return parse_model(LatencyTableConfig, {k: v for k, v in flags.items() if k in LatencyTableConfig.model_fields},
                           "latency build-table")
    except ConfigError as exc:
        raise ConfigError(re.sub(r"config key '(\w+)'", lambda m: "--" + m.group(1).replace("_", "-"), str(exc))) from None


def space_and_classes(checkpoint: Path | None, space: str, num_classes: int, *, space_given: bool,
                      classes_given: bool) -> tuple[SearchSpace, int]:
    """The space and class count of a table: the checkpoint's (``--space`` overrides its space, as for
    the authors' checkpoints; a ``--num-classes`` other than its head's is refused), else the flags'."""
    if checkpoint is None:
        return get_space(space), num_classes
    _, ck_space, meta = supernet_weights(checkpoint)
    ck_classes = meta.get("num_classes")
    if classes_given and ck_classes is not None and num_classes != ck_classes:
        raise ConfigError(f"--num-classes {num_classes} differs from checkpoint {checkpoint}'s {ck_classes} classes; "
                          "leave it out to use the checkpoint's")
    sp = get_space(space) if space_given else ck_space
    return sp, int(ck_classes if ck_classes is not None else num_classes)


def _rounded(d: dict[str, float], digits: int) -> dict[str, float]:
    return {k: round(v, digits) for k, v in d.items()}


def _mape_lines(mapes: dict[str, float], holdout_archs: int, model: str) -> list[str]:
    return [f"error on {holdout_archs} held-out subnets, {name} model: {mape:.1f}% mean absolute percentage error"
            + (" (in use)" if name == model else "") for name, mape in mapes.items()]


def built_info(tab: LatencyTable, path: Path, sp: SearchSpace, holdout_archs: int) -> dict[str, Any]:
    """``latency build-table``'s JSON object of the table ``tab`` written to ``path``."""
    mapes = tab.meta.get("holdout_mape_by_model", {})
    span = tab.meta.get("space_range")
    return {"path": str(path), "ops": len(tab.entries), "runtime": tab.runtime, "runtime_version": tab.runtime_version,
            "precision": tab.precision,
            "model": tab.model, "overhead_ms": round(tab.overhead_ms, 4), "per_block_ms": round(tab.per_block_ms, 4),
            "group_scale": _rounded(tab.group_scale, 4), "device": tab.device,
            "device_name": tab.device_name, "threads": tab.threads, "batch": tab.batch, "holdout_archs": holdout_archs,
            "holdout_mape_percent": None if not mapes else round(mapes[tab.model], 3),
            "holdout_mape_by_model": _rounded(mapes, 3),
            "drift_reference": tab.meta.get("drift_reference"), "space": sp.name, "num_classes": tab.num_classes,
            "drives_search": span is not None,
            "latency_range_ms": None if span is None else {k: round(v, 4) if isinstance(v, float) else v
                                                           for k, v in span.items()}}


def built_lines(tab: LatencyTable, info: dict[str, Any], runtime: str, batch: int, archs: int | None) -> list[str]:
    """What ``latency build-table`` prints of the table ``tab`` and its object ``info``."""
    span = tab.meta.get("space_range")
    lines = [f"wrote {info['path']}: {info['ops']} ops in {runtime} {tab.runtime_version}{int8_note(tab.precision)} "
             f"on {tab.device} ({tab.device_name}), batch {batch}, {tab.threads} thread(s); model {tab.model}: "
             f"overhead {tab.overhead_ms:.3f} ms + {tab.per_block_ms:.4f} ms/block"]
    lines += _mape_lines(tab.meta.get("holdout_mape_by_model", {}), info["holdout_archs"], tab.model)
    if span is None:
        lines.append(f"this table covers the ops of {archs} sampled archs only: it cannot drive a search (build it "
                     "without --archs for that)")
    else:
        lines.append(f"latency of space '{info['space']}' (predicted, {span['samples']:,} random subnets + min and "
                     f"max): min {span['min_ms']:.3f} ms, median {span['p50_ms']:.3f} ms, max {span['max_ms']:.3f} "
                     "ms; budgets relative to it: search --max-latency p50 (a percentile)")
    return lines


def refitted(tab: LatencyTable, path: Path, mapes: dict[str, float]) -> tuple[dict[str, Any], list[str]]:
    """``latency refit``'s JSON object and lines of the table ``tab`` refitted and written to ``path``."""
    info = {"path": str(path), "precision": tab.precision, "model": tab.model, "overhead_ms": round(tab.overhead_ms, 4),
            "per_block_ms": round(tab.per_block_ms, 4), "group_scale": _rounded(tab.group_scale, 4),
            "calibration_loo_mape": _rounded(tab.meta.get("calibration_loo_mape", {}), 3),
            "holdout_mape_by_model": _rounded(mapes, 3),
            "drift_reference": tab.meta.get("drift_reference")}
    lines = [f"wrote {path}: model {tab.model}, overhead {tab.overhead_ms:.3f} ms + {tab.per_block_ms:.4f} ms/block"
             + (f", group factors {info['group_scale']}" if tab.group_scale else "")]
    return info, lines + _mape_lines(mapes, tab.meta.get("holdout_archs", 0), tab.model)


def imported(tab: LatencyTable, path: Path) -> tuple[dict[str, Any], list[str]]:
    """``latency import``'s JSON object and lines of the table ``tab`` fitted and written to ``path``."""
    mapes = tab.meta.get("holdout_mape_by_model", {})
    info = {"path": str(path), "ops": len(tab.entries), **tab.setting(),
            "holdout_mape_by_model": _rounded(mapes, 3),
            "drives_search": tab.meta.get("space_range") is not None}
    lines = [f"wrote {path}: {info['ops']} ops in {tab.runtime} {tab.runtime_version}{int8_note(tab.precision)} on "
             f"{tab.device_name}, batch {tab.batch}, {tab.threads} thread(s); model {tab.model}"]
    return info, lines + _mape_lines(mapes, tab.meta.get("holdout_archs", 0), tab.model)
