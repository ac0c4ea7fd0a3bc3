"""What ``attentivenas search`` reads and prints: its config (a file, then ``key=value`` overrides,
then flags), and a :class:`~.results.SearchResult` as text (the front's table, the budget winners,
the noise notes, the files written), so the CLI only parses flags and prints."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import SearchConfig, apply_overrides, parse_model, read_yaml
from .results import SearchResult

#: rows of the front's table at most (evenly spaced; every arch is in pareto.csv)
MAX_ROWS = 30


def _flag_overrides(flags: dict[str, Any]) -> dict[str, Any]:
    """The config entries set by flags (``None`` = not given), as a nested dict."""
    out: dict[str, Any] = {}
    for key, value in flags.items():
        if value is None:
            continue
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = str(value) if isinstance(value, Path) else value
    return out


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in top.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def search_config(path: Path | None, overrides: list[str], flags: dict[str, Any]) -> SearchConfig:
    """The file, then the ``key=value`` overrides, then the flags (dotted key -> value, ``None`` = not
    given); validated once."""
    data = read_yaml(path) if path is not None else {}
    source = str(path) if path is not None else "search config"
    if overrides:
        data = apply_overrides(data, overrides)
    if overrides or any(v is not None for v in flags.values()):
        source += " (with overrides)"
    return parse_model(SearchConfig, _merge(data, _flag_overrides(flags)), source)


@dataclass(frozen=True)
class FrontText:
    """A search's result as text: the front's table (title, columns, rows), the lines under it, the
    noise notes (printed unwrapped) and the closing lines."""

    title: str
    columns: list[str]
    rows: list[list[str]]
    lines: list[str]
    noise: list[str]
    closing: list[str]


def with_interval(top1: float, ci: list[float] | None) -> str:
    """``98.50 [96.4, 99.4]`` (the interval when there is one)."""
    return f"{top1:.2f}" if not ci else f"{top1:.2f} [{ci[0]:.1f}, {ci[1]:.1f}]"


def _interval_note(noise: dict[str, Any], reported: bool) -> str:
    """The title's note on the intervals: which, and on how many images of which split."""
    if not noise.get("images"):
        return ""
    parts = [f"{noise['images']:,} {noise['split_label']} images"]
    if reported and noise.get("report_images"):
        parts.append(f"{noise['report_images']:,} {noise['report_label']} images")
    return f"\n(top-1 with {noise['interval']} intervals: binomial on {' and '.join(parts)})"


def _rows(pareto: list[dict[str, Any]], latency: bool, reported: bool, int8: bool) -> list[list[str]]:
    """The table's rows: at most :data:`MAX_ROWS` entries of the front, evenly spaced."""
    shown = pareto if len(pareto) <= MAX_ROWS else pareto[:: -(-len(pareto) // MAX_ROWS)]
    rows = []
    for e in shown:
        lat = ["-" if e.get("latency_ms") is None else f"{e['latency_ms']:.2f}"] if latency else []
        row = [f"{e['mflops']:.2f}", f"{e['params_m']:.2f}", *lat, with_interval(e["accuracy"], e.get("accuracy_ci95"))]
        if reported:
            row.append("-" if e.get("report_top1") is None else with_interval(e["report_top1"],
                                                                                e.get("report_top1_ci95")))
        rows.append([*row, e["accuracy_source"], *([f"{e['top1_fp32']:.2f}"] if int8 else [])])
    return rows


def _winner_line(w: dict[str, Any], label: str, report_label: str) -> str:
    if w.get("arch") is None:
        return f"{w['metric']} <= {w['budget']:g}: no arch found"
    fp32 = f" (fp32 {w['top1_fp32']:.2f}%)" if "top1_fp32" in w else ""
    rep = (f", {report_label} top-1 {with_interval(w['report_top1'], w.get('report_top1_ci95'))}%"
           if w.get("report_top1") is not None else "")
    return (f"{w['metric']} <= {w['budget']:g}: {label} top-1 {with_interval(w['accuracy'], w.get('accuracy_ci95'))}%"
            f"{' INT8' if fp32 else ''}{fp32}{rep} at {w['mflops']:.2f} MFLOPs")


def _closing(result: SearchResult, out: Path) -> list[str]:
    """What the search fitted and wrote."""
    ap = result.extra.get("auto_predictor") or {}
    lines = []
    if "file" in ap:
        lines.append(f"predictor fitted on {ap['num_archs']} measured subnets: {out}/{ap['file']}")
    elif ap.get("skipped"):
        lines.append(f"no predictor fitted ({ap['skipped']}): every subnet the search evaluated was measured")
    return [*lines, f"wrote {out}/pareto.json, pareto.csv, pareto.png, summary.json, config.yaml"]


def front_text(result: SearchResult, out: Path) -> FrontText:
    """The front of ``result`` (written into ``out``) as ``attentivenas search`` prints it."""
    pareto = result.pareto
    int8 = any("top1_int8" in e for e in pareto)
    noise = result.extra.get("noise") or {}
    label = noise.get("split_label", "hold-out")
    reported = any(e.get("report_top1") is not None for e in pareto)
    report_label = noise.get("report_label") or "report"
    latency = any(e.get("latency_ms") is not None for e in pareto)
    columns = ["MFLOPs", "params (M)", *(["latency (ms)"] if latency else []),
               f"{label} {'INT8 ' if int8 else ''}top-1 (%)", *([f"{report_label} top-1 (%)"] if reported else []),
               "source", *(["fp32 top-1 (%)"] if int8 else [])]
    rows = _rows(pareto, latency, reported, int8)
    lines = ([f"(showing {len(rows)} of {len(pareto)} archs, evenly spaced; all are in pareto.csv)"]
             if len(rows) < len(pareto) else [])
    lines += [_winner_line(w, label, report_label) for w in result.budget_winners]
    return FrontText(f"Pareto front: {len(pareto)} archs, hypervolume {result.hypervolume:.4f}"
                     + _interval_note(noise, reported), columns, rows, lines,
                     [f"noise: {line}" for line in noise.get("within_noise") or ()], _closing(result, out))
