"""Pareto sets: non-dominance, hypervolume, and the JSON / CSV / PNG files of a search.

Objectives are minimised throughout (accuracy enters as ``-accuracy`` or as an error).
A Pareto entry follows the file contract of DESIGN.md::

    {"arch": {...}, "mflops": ..., "params_m": ..., "latency_ms": ... | null,
     "accuracy": ..., "accuracy_source": "measured" | "predicted"}

plus ``memory_mb`` when memory was computed and ``predicted_accuracy`` after re-measuring.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .io import atomic_write_bytes, atomic_write_json, atomic_write_text

ENTRY_KEYS = ("arch", "mflops", "params_m", "latency_ms", "accuracy", "accuracy_source")
ARCH_COLUMNS = ("resolution", "width", "depth", "kernel_size", "expand_ratio")
PUBLISHED_MODELS = ("a0", "a1", "a2", "a3", "a4", "a5", "a6")


# =========================================================================== math
def pareto_mask(F: np.ndarray) -> np.ndarray:
    """Boolean mask of the non-dominated rows of ``F`` (n, m), all objectives minimised.

    A row is dominated when another is no worse in every objective and better in one; equal rows
    do not dominate each other, so duplicates are all kept."""
    F = np.asarray(F, dtype=np.float64)
    if F.ndim != 2:
        raise ValueError("F must be a 2-D array (points x objectives)")
    n = len(F)
    keep = np.ones(n, dtype=bool)
    order = np.lexsort(F.T[::-1])  # candidates that dominate come first
    for i in order:
        if not keep[i]:
            continue
        dominated = np.all(F[i] <= F, axis=1) & np.any(F[i] < F, axis=1)
        keep &= ~dominated
    return keep


def pareto_ranks(F: np.ndarray) -> np.ndarray:
    """Non-domination rank of every row (0 = first front), by repeated peeling."""
    F = np.asarray(F, dtype=np.float64)
    ranks = np.full(len(F), -1, dtype=np.int64)
    left = np.arange(len(F))
    r = 0
    while left.size:
        mask = pareto_mask(F[left])
        ranks[left[mask]] = r
        left = left[~mask]
        r += 1
    return ranks


def normalise(F: np.ndarray, lo: Sequence[float], hi: Sequence[float]) -> np.ndarray:
    """Scale each column of ``F`` linearly so that ``lo`` maps to 0 and ``hi`` to 1."""
    lo_a, hi_a = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
    span = np.where(hi_a > lo_a, hi_a - lo_a, 1.0)
    return (np.asarray(F, dtype=np.float64) - lo_a) / span


def hypervolume(F: np.ndarray, ref: Sequence[float]) -> float:
    """Hypervolume dominated by the rows of ``F`` (minimised) up to the reference point ``ref``.

    Points not strictly better than ``ref`` in every objective contribute nothing."""
    from pymoo.indicators.hv import HV

    F = np.atleast_2d(np.asarray(F, dtype=np.float64))
    ref_a = np.asarray(ref, dtype=np.float64)
    if F.size == 0:
        return 0.0
    inside = F[np.all(F < ref_a, axis=1) & np.all(np.isfinite(F), axis=1)]
    if len(inside) == 0:
        return 0.0
    return float(HV(ref_point=ref_a)(inside))


# =========================================================================== files
def _finite(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def clean_entry(entry: dict[str, Any]) -> dict[str, Any]:
    """JSON-safe copy of an entry (numpy scalars to floats, NaN to null)."""
    out: dict[str, Any] = {}
    for k, v in entry.items():
        if isinstance(v, np.generic):
            v = v.item()
        out[k] = _finite(v)
    return out


def write_pareto_json(path: str | Path, entries: Sequence[dict[str, Any]]) -> Path:
    """Write the Pareto set as a JSON list, atomically."""
    return atomic_write_json(path, [clean_entry(e) for e in entries])


def csv_columns(entries: Sequence[dict[str, Any]]) -> list[str]:
    cols = ["mflops", "params_m", "latency_ms"]
    if any("memory_mb" in e for e in entries):
        cols.append("memory_mb")
    cols += ["accuracy", "accuracy_source"]
    if any("predicted_accuracy" in e for e in entries):
        cols.append("predicted_accuracy")
    return cols + list(ARCH_COLUMNS)


def _cell(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, (list, tuple)):
        return " ".join(str(x) for x in v)
    return v


def pareto_csv_text(entries: Sequence[dict[str, Any]]) -> str:
    """CSV of the Pareto set: one row per arch; list fields are space-separated numbers."""
    cols = csv_columns(entries)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(cols)
    for e in entries:
        e = clean_entry(e)
        row = [_cell(e["arch"][c]) if c in ARCH_COLUMNS else _cell(e.get(c)) for c in cols]
        writer.writerow(row)
    return buf.getvalue()


def write_pareto_csv(path: str | Path, entries: Sequence[dict[str, Any]]) -> Path:
    return atomic_write_text(path, pareto_csv_text(entries))


def read_pareto_json(path: str | Path) -> list[dict[str, Any]]:
    data = json.loads(Path(path).read_text())
    if not isinstance(data, list):
        raise ValueError(f"{path} must hold a JSON list of Pareto entries")
    return data


def published_points(names: Sequence[str] = PUBLISHED_MODELS) -> list[tuple[str, float, float]]:
    """(name, MFLOPs, ImageNet top-1) of the authors' published models."""
    from .space import PUBLISHED_MFLOPS, PUBLISHED_TOP1

    return [(n.upper(), PUBLISHED_MFLOPS[n], PUBLISHED_TOP1[n]) for n in names]


def plot_pareto(
    path: str | Path,
    entries: Sequence[dict[str, Any]],
    evaluated: np.ndarray | None = None,
    winners: Sequence[dict[str, Any]] = (),
    published: Sequence[tuple[str, float, float]] = (),
    max_mflops: float | None = None,
    title: str = "Pareto front",
    evaluated_label: str = "evaluated",
) -> Path:
    """Accuracy vs MFLOPs: evaluated archs (grey), the front (line), budget winners (stars),
    optionally the authors' published models; written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    if evaluated is not None and len(evaluated):
        ax.scatter(evaluated[:, 0], evaluated[:, 1], s=6, c="0.75", label=evaluated_label, zorder=1)
    pts = sorted((e["mflops"], e["accuracy"]) for e in entries)
    if pts:
        xs, ys = zip(*pts, strict=True)
        ax.plot(xs, ys, "-o", ms=4, color="tab:blue", label="Pareto front", zorder=3)
    won = [w for w in winners if w.get("arch") is not None]
    if won:
        ax.scatter([w["mflops"] for w in won], [w["accuracy"] for w in won], marker="*", s=120,
                   color="tab:red", label="best under budget", zorder=4)
    if published:
        ax.scatter([p[1] for p in published], [p[2] for p in published], marker="^", color="k",
                   label="published (ImageNet)", zorder=4)
        for name, x, y in published:
            ax.annotate(name, (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7)
    if max_mflops is not None:
        ax.axvline(max_mflops, ls="--", color="0.4", lw=1, label="MFLOPs budget")
    ax.set_xlabel("MFLOPs")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())
