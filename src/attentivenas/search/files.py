"""The files of a search: ``pareto.json`` / ``pareto.csv`` / ``pareto.png``, ``summary.json``,
``metrics.jsonl`` (one line per generation) and ``config.yaml``.

A Pareto entry follows the file contract of DESIGN.md::

    {"arch": {...}, "mflops": ..., "params_m": ..., "latency_ms": ... | null,
     "accuracy": ..., "accuracy_source": "measured" | "predicted"}

plus ``memory_mb`` when memory was computed and ``predicted_accuracy`` after re-measuring. A
``precision: int8`` search adds ``top1_fp32`` and ``top1_int8`` to every entry (each measured) and its
``accuracy`` is ``top1_int8``; its plot shows the same subnets' float top-1 beside the INT8 front.
"""

from __future__ import annotations

import csv
import io
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..accuracy import arch_key
from ..errors import UserError
from ..io import atomic_write_bytes, atomic_write_json, atomic_write_text, dumps_json, json_safe
from ..space import PUBLISHED_MFLOPS, PUBLISHED_TOP1
from ..space.pareto_file import drop_repeated, read_pareto_file
from .results import SearchResult

ENTRY_KEYS = ("arch", "mflops", "params_m", "latency_ms", "accuracy", "accuracy_source")
ARCH_COLUMNS = ("resolution", "width", "depth", "kernel_size", "expand_ratio")
PUBLISHED_MODELS = ("a0", "a1", "a2", "a3", "a4", "a5", "a6")


def write_pareto_json(path: str | Path, entries: Sequence[dict[str, Any]]) -> Path:
    """Write the Pareto set as a JSON list, atomically."""
    return atomic_write_json(path, [json_safe(e) for e in entries])


def csv_columns(entries: Sequence[dict[str, Any]]) -> list[str]:
    cols = ["mflops", "params_m", "latency_ms"]
    if any("memory_mb" in e for e in entries):
        cols.append("memory_mb")
    cols += ["accuracy", "accuracy_source"]
    if any("predicted_accuracy" in e for e in entries):
        cols.append("predicted_accuracy")
    cols += [c for c in ("top1_fp32", "top1_int8") if any(c in e for e in entries)]
    if any("report_top1" in e for e in entries):
        cols += ["report_top1"] + (["report_top1_int8"] if any("report_top1_int8" in e for e in entries) else [])
        cols += ["report_split"]
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
        e = json_safe(e)
        row = [_cell(e["arch"][c]) if c in ARCH_COLUMNS else _cell(e.get(c)) for c in cols]
        writer.writerow(row)
    return buf.getvalue()


def write_pareto_csv(path: str | Path, entries: Sequence[dict[str, Any]]) -> Path:
    return atomic_write_text(path, pareto_csv_text(entries))


def read_pareto_json(path: str | Path) -> list[dict[str, Any]]:
    """The entries of a ``pareto.json`` (:func:`~attentivenas.space.read_pareto_file`; a missing or
    malformed file is one :class:`UserError` line), one per subnet."""
    data = read_pareto_file(path, UserError)
    return drop_repeated(data, lambda e: arch_key(e["arch"]) if isinstance(e, dict) and isinstance(
        e.get("arch"), dict) else None, f"Pareto set {path}")


#: spaces whose fronts the published models are plotted beside (``search --published``)
PUBLISHED_SPACES = ("attentivenas", "alphanet")


def published_points(names: Sequence[str] = PUBLISHED_MODELS) -> list[tuple[str, float, float]]:
    """(name, MFLOPs, ImageNet top-1) of the authors' published models."""
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
    import matplotlib  # heavy (about 0.5 s): only the plot needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    if evaluated is not None and len(evaluated):
        ax.scatter(evaluated[:, 0], evaluated[:, 1], s=6, c="0.75", label=evaluated_label, zorder=1)
    pts = sorted((e["mflops"], e["accuracy"]) for e in entries)
    int8 = [e for e in entries if e.get("top1_int8") is not None and e.get("top1_fp32") is not None]
    if pts:
        xs, ys = zip(*pts, strict=True)
        ax.plot(xs, ys, "-o", ms=4, color="tab:blue", label="Pareto front (INT8)" if int8 else "Pareto front",
                zorder=3)
    if int8:  # the same subnets in float: how much each lost to quantization
        ax.scatter([e["mflops"] for e in int8], [e["top1_fp32"] for e in int8], marker="o", s=28,
                   facecolors="none", edgecolors="tab:orange", label="same subnets, fp32", zorder=3)
        for e in int8:
            ax.plot([e["mflops"]] * 2, [e["top1_int8"], e["top1_fp32"]], color="tab:orange", lw=0.6, alpha=0.6,
                    zorder=2)
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


def write_search_outputs(out_dir: str | Path, result: SearchResult) -> dict[str, Path]:
    """Write ``pareto.json``, ``pareto.csv``, ``pareto.png``, ``summary.json``, ``metrics.jsonl``
    (one line per generation) and ``config.yaml`` (the resolved search config, which ``attentivenas
    search --config`` runs again) into ``out_dir``, each atomically."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = result.config
    source = cfg.accuracy.source or "predicted"
    measured = "measure" in source
    published = published_points() if cfg.published and result.space_name in PUBLISHED_SPACES else ()
    if cfg.published and not published:
        warnings.warn(f"--published: the authors' A0-A6 are ImageNet models of the attentivenas space; they are not "
                      f"plotted beside a front of space '{result.space_name}'", UserWarning, stacklevel=2)
    kind = ("measured INT8" if cfg.precision == "int8" else "measured") if measured else "predicted"
    title = f"{result.space_name} Pareto front ({kind} accuracy)"
    return {
        "pareto.json": write_pareto_json(out / "pareto.json", result.pareto),
        "pareto.csv": write_pareto_csv(out / "pareto.csv", result.pareto),
        "pareto.png": plot_pareto(out / "pareto.png", result.pareto, result.evaluated, result.budget_winners,
                                  published, cfg.budgets.max_mflops, title,
                                  "evaluated" if source == "measured" else "evaluated (predicted accuracy)"),
        "summary.json": atomic_write_json(out / "summary.json", result.summary()),
        "metrics.jsonl": atomic_write_text(out / "metrics.jsonl", "".join(dumps_json(h) + "\n" for h in result.history)),
        "config.yaml": atomic_write_text(out / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False)),
    }
