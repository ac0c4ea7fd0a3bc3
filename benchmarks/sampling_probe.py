"""The ranking probe of ``benchmarks/reproduce_sampling.py``: how far each run's supernet ranks
subnets as they rank when trained alone.

Every run measures the :data:`~sampling_runs.PROBE_N` subnets of ``OUT/probe_archs.json`` on the test
split (BN recalibrated: their *inherited* top-1, ``result.json``'s ``probe``). The same subnets trained
alone from scratch at the run's budget give the *standalone* top-1, read from ``OUT/probe/``: the
``index.json`` of ``attentivenas finetune --pareto OUT/probe_archs.json --init scratch --distill none``
or, one folder per subnet, the ``result.json`` of ``attentivenas finetune --arch ... --out
OUT/probe/<name>`` (the way to spread the training over several sessions: each folder is kept).
Per run, :func:`attentivenas.accuracy.ranking.ranking_report`: Kendall tau, Spearman rho and the
gap inherited - standalone in points. Reads results only: nothing here trains or measures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from attentivenas.accuracy.ranking import MIN_PROBES, arch_key, finetuned_top1, ranking_report

PROBE_DIR = "probe"
#: the per-run numbers the report aggregates over seeds and pairs with uniform's
RANK_METRICS = {"rank_tau": "kendall_tau", "rank_rho": "spearman_rho", "rank_gap": "mean_gap",
                "rank_abs_gap": "mean_abs_gap"}


def standalone_top1(out: Path) -> dict[str, float]:
    """The probe subnets trained alone so far: arch key -> test top-1 (%), from the finetune runs in
    ``OUT/probe/`` (:func:`attentivenas.accuracy.ranking.finetuned_top1`: one-line user errors for a
    damaged file, two records of one subnet that disagree, or a run without a test top-1)."""
    folder = out / PROBE_DIR
    return finetuned_top1(folder) if folder.is_dir() else {}


def run_ranking(result: dict[str, Any], standalone: dict[str, float]) -> dict[str, Any] | None:
    """:func:`ranking_report` of one run's probe subnets that have a standalone top-1 (None: fewer
    than :data:`MIN_PROBES`)."""
    rows = [p for p in result.get("probe") or () if p.get("test_top1") is not None and arch_key(p["arch"]) in standalone]
    if len(rows) < MIN_PROBES:
        return None
    return ranking_report([p["name"] for p in rows], [p["mflops"] for p in rows], [p["test_top1"] for p in rows],
                          [standalone[arch_key(p["arch"])] for p in rows])


def rank_metrics(report: dict[str, Any] | None) -> dict[str, float | None]:
    """The numbers of a run's ranking the report aggregates (all None without a ranking)."""
    return {k: None if report is None else report[v] for k, v in RANK_METRICS.items()}


def probe_table(summary: dict[str, Any], labels: dict[str, str]) -> str:
    """Markdown: per probe subnet its standalone top-1 and each method's inherited top-1 (mean over
    seeds) with the gap; then per method Kendall tau, Spearman rho and the mean gap (mean ± std over
    seeds). "" when no run has a ranking yet."""
    runs = summary.get("ranking", {}).get("runs", [])
    if not runs:
        return ""
    by_method: dict[str, list[dict[str, Any]]] = {}
    for rep in runs:
        by_method.setdefault(rep["method"], []).append(rep)
    methods = [m for m in labels if m in by_method]
    subnets = {row["name"]: row for rep in runs for row in rep["subnets"]}
    head = ["probe subnet", "MFLOPs", "trained alone", *[f"{labels[m]}: inherited (gap)" for m in methods]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, row in sorted(subnets.items(), key=lambda kv: kv[1]["mflops"]):
        cells = [name, f"{row['mflops']:.2f}", f"{row['standalone_top1']:.2f}"]
        for m in methods:
            vals = [r["inherited_top1"] for rep in by_method[m] for r in rep["subnets"] if r["name"] == name]
            cells.append(f"{np.mean(vals):.2f} ({np.mean(vals) - row['standalone_top1']:+.2f})" if vals else "-")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "| method | runs | subnets | Kendall tau | Spearman rho | mean gap (points) | mean abs gap |",
              "|---|---|---|---|---|---|---|"]
    for m in methods:
        reps = by_method[m]

        def stat(key: str, sign: str = "+", reps: list[dict[str, Any]] = reps) -> str:
            v = [r[key] for r in reps if r[key] is not None]
            if not v:
                return "-"
            return f"{np.mean(v):{sign}.2f}" + (f" ± {np.std(v, ddof=1):.2f}" if len(v) > 1 else "")

        lines.append(f"| {labels[m]} | {len(reps)} | {','.join(str(r['n']) for r in reps)} | {stat('kendall_tau')} | "
                     f"{stat('spearman_rho')} | {stat('mean_gap')} | {stat('mean_abs_gap', '')} |")
    return "\n".join(lines) + "\n"
