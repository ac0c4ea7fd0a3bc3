"""``attentivenas search``: stage 2, thin over :func:`attentivenas.search.search_from_config`.

The search reads a :class:`~attentivenas.config.SearchConfig`: ``--config FILE`` (default: the
schema's defaults), then ``key=value`` overrides, then the flags given on the command line.
``DIR/config.yaml`` records the resolved config; ``search --config DIR/config.yaml`` runs it again.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from tqdm.auto import tqdm

from ..config import SearchConfig, apply_overrides, parse_model, read_yaml
from ..io import check_output
from .common import (
    CALIB_BATCH_SIZE_HELP,
    CALIB_BATCHES_HELP,
    DATA_CHOICES,
    INTERPOLATION_HELP,
    PIPELINE_HELP,
    SPLIT_HELP,
    calib_seed_help,
    print_json,
    warn_line,
)

MAX_ROWS = 30


def info_line(message: str) -> None:
    """What the search measures and how long it should take, one line on stderr (beside the bars)."""
    tqdm.write(message, file=sys.stderr)  # above a running progress bar, not through it


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
    """The file, then the ``key=value`` overrides, then the flags; validated once."""
    data = read_yaml(path) if path is not None else {}
    source = str(path) if path is not None else "search config"
    if overrides:
        data = apply_overrides(data, overrides)
    if overrides or any(v is not None for v in flags.values()):
        source += " (with overrides)"
    return parse_model(SearchConfig, _merge(data, _flag_overrides(flags)), source)


def search_command(
    overrides: list[str] | None = typer.Argument(None, help="Config overrides, e.g. evolution.pop_size=80.",
                                                 show_default=False),
    config: Path | None = typer.Option(None, "--config", "-c", help="Search config YAML (e.g. a run's config.yaml)."),
    out: Path = typer.Option(Path("runs/search"), "--out", help="Output folder."),
    predictor: Path | None = typer.Option(None, "--predictor", help="Accuracy predictor JSON."),
    checkpoint: Path | None = typer.Option(None, "--checkpoint", help="Supernet checkpoint (measured accuracy)."),
    space: str | None = typer.Option(None, "--space", help="Space name or YAML (default: the checkpoint's or the "
                                     "predictor's)."),
    data: str | None = typer.Option(None, "--data", help=f"Data for measured accuracy: {DATA_CHOICES} "
                                    "(default: the checkpoint's training data)."),
    calib_batches: int | None = typer.Option(None, "--calib-batches", min=1, help=CALIB_BATCHES_HELP),
    calib_batch_size: int | None = typer.Option(None, "--calib-batch-size", min=1, help=CALIB_BATCH_SIZE_HELP),
    calib_seed: int | None = typer.Option(None, "--calib-seed", help=calib_seed_help("--seed"), show_default=False),
    split: str | None = typer.Option(None, "--split", help="Measured on: " + SPLIT_HELP),
    report_split: str | None = typer.Option(None, "--report-split", help="Also measure the Pareto archs and budget "
                                            "winners on this split, disjoint from --split (e.g. val-report or "
                                            "test); printed beside the searched split's top-1, each with a "
                                            "Wilson 95% interval."),
    pipeline: str | None = typer.Option(None, "--pipeline", help=PIPELINE_HELP),
    interpolation: str | None = typer.Option(None, "--interpolation", help=INTERPOLATION_HELP),
    device: str | None = typer.Option(None, "--device", help="cpu, cuda or cuda:N (default: cuda if present)."),
    objectives: str | None = typer.Option(None, "--objectives", help="Comma list of mflops, params, latency, memory "
                                          "(mflops)."),
    accuracy: str | None = typer.Option(None, "--accuracy", help="predicted, measured or predicted+remeasure "
                                        "(default: from --predictor / --checkpoint)."),
    remeasure_top: int | None = typer.Option(None, "--remeasure-top", help="Candidates re-measured (10)."),
    max_mflops: float | None = typer.Option(None, "--max-mflops"),
    max_params_m: float | None = typer.Option(None, "--max-params-m"),
    max_latency_ms: float | None = typer.Option(None, "--max-latency-ms"),
    max_latency: str | None = typer.Option(None, "--max-latency", help="Latency budget relative to the space: pNN, "
                                           "a percentile of its latency as --latency-table predicts it (e.g. p50)."),
    max_memory_mb: float | None = typer.Option(None, "--max-memory-mb"),
    budgets: str | None = typer.Option(None, "--budgets", help="Comma list of budgets: best arch under each."),
    budget_metric: str | None = typer.Option(None, "--budget-metric", help="Metric of --budgets (mflops)."),
    latency_table: Path | None = typer.Option(None, "--latency-table", help="Latency table (latency objective)."),
    precision: str | None = typer.Option(None, "--precision", help="fp32 or int8: INT8 latency (an INT8 table) and "
                                         "the best candidates and budget winners measured again quantized (fp32)."),
    int8_runtime: str | None = typer.Option(None, "--int8-runtime", help="Runtime the quantized subnets run in for "
                                            "their INT8 top-1: onnxruntime, executorch or openvino (onnxruntime)."),
    int8_calib_images: int | None = typer.Option(None, "--int8-calib-images", min=1, help="Seeded training images "
                                                 "that calibrate the quantization (256)."),
    pop_size: int | None = typer.Option(None, "--pop-size", help="NSGA-II population (50; at most 5,000)."),
    generations: int | None = typer.Option(None, "--generations", help="NSGA-II generations (30; population x "
                                           "generations at most 2,000,000)."),
    num_archs: int | None = typer.Option(None, "--num-archs", min=4, help="Evaluation budget of the predictor the "
                                         "search fits when given a checkpoint alone: subnets measured (60)."),
    time_budget: float | None = typer.Option(None, "--time-budget", min=1, help="Time budget instead, in seconds "
                                             "of measuring: as many subnets as fit (re-measurement included)."),
    ranks: int | None = typer.Option(None, "--ranks", min=1, help="Processes measuring subnets (default: as "
                                     "launched by torchrun, else 1; N starts N local processes)."),
    threads: int | None = typer.Option(None, "--threads", min=1, help="Torch threads per process."),
    seed: int | None = typer.Option(None, "--seed", help="Seed of every random choice (0)."),
    published: bool | None = typer.Option(None, "--published/--no-published", help="Plot the authors' A0-A6."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (the summary)."),
) -> None:
    """Stage 2: NSGA-II search for the accuracy / cost Pareto front under budgets."""
    cfg = search_config(config, overrides or [], {
        "predictor": predictor, "checkpoint": checkpoint, "space": space, "latency_table": latency_table,
        "objectives": objectives, "seed": seed, "published": published, "precision": precision,
        "int8.runtime": int8_runtime, "int8.calib_images": int8_calib_images,
        "accuracy.source": accuracy, "accuracy.remeasure_top": remeasure_top, "accuracy.data": data,
        "accuracy.calib_batches": calib_batches, "accuracy.calib_batch_size": calib_batch_size,
        "accuracy.device": device, "accuracy.split": split, "accuracy.report_split": report_split, "accuracy.pipeline": pipeline,
        "accuracy.interpolation": interpolation, "accuracy.calib_seed": calib_seed,
        "budgets.max_mflops": max_mflops, "budgets.max_params_m": max_params_m,
        "budgets.max_latency_ms": max_latency_ms, "budgets.max_latency": max_latency,
        "budgets.max_memory_mb": max_memory_mb,
        "budgets.points": budgets, "budgets.metric": budget_metric,
        "evolution.pop_size": pop_size, "evolution.generations": generations,
        "auto_predictor.num_archs": num_archs, "auto_predictor.time_budget_s": time_budget,
        "runtime.ranks": ranks, "runtime.threads": threads,
    })
    check_output(out, "dir")
    from ..distributed import is_main  # heavy (torch): loaded when the command runs
    from ..search import search_from_config  # heavy (torch): loaded when the command runs

    result = search_from_config(cfg, out, progress=not as_json, warn=warn_line, log=None if as_json else info_line)
    if is_main():  # under torchrun the other ranks stay silent
        _report(result, out, as_json)


def _report(result: Any, out: Path, as_json: bool) -> None:
    """The front as a table (or the summary as JSON) of a :class:`~attentivenas.search.SearchResult`."""
    if as_json:
        print_json({**result.summary(), "out": str(out)})
        return
    int8 = any("top1_int8" in e for e in result.pareto)
    noise = result.extra.get("noise") or {}
    label = noise.get("split_label", "hold-out")
    reported = any(e.get("report_top1") is not None for e in result.pareto)
    report_label = noise.get("report_label") or "report"
    table = Table(title=f"Pareto front: {len(result.pareto)} archs, hypervolume {result.hypervolume:.4f}"
                  + _interval_note(noise, reported))
    top1 = f"{label} {'INT8 ' if int8 else ''}top-1 (%)"
    latency = any(e.get("latency_ms") is not None for e in result.pareto)
    cols = ("MFLOPs", "params (M)", *(("latency (ms)",) if latency else ()), top1,
            *((f"{report_label} top-1 (%)",) if reported else ()), "source")
    for col in cols + (("fp32 top-1 (%)",) if int8 else ()):
        table.add_column(col, justify="right", no_wrap="top-1" in col)
    shown = result.pareto if len(result.pareto) <= MAX_ROWS else result.pareto[:: -(-len(result.pareto) // MAX_ROWS)]
    for e in shown:
        lat = ["-" if e.get("latency_ms") is None else f"{e['latency_ms']:.2f}"] if latency else []
        row = [f"{e['mflops']:.2f}", f"{e['params_m']:.2f}", *lat, _with_interval(e["accuracy"], e.get("accuracy_ci95"))]
        if reported:
            row.append("-" if e.get("report_top1") is None else _with_interval(e["report_top1"],
                                                                                 e.get("report_top1_ci95")))
        table.add_row(*row, e["accuracy_source"], *([f"{e['top1_fp32']:.2f}"] if int8 else []))
    console = Console()
    console.print(table)
    if len(shown) < len(result.pareto):
        console.print(f"(showing {len(shown)} of {len(result.pareto)} archs, evenly spaced; all are in pareto.csv)")
    for w in result.budget_winners:
        if w.get("arch") is None:
            console.print(f"{w['metric']} <= {w['budget']:g}: no arch found")
        else:
            fp32 = f" (fp32 {w['top1_fp32']:.2f}%)" if "top1_fp32" in w else ""
            rep = (f", {report_label} top-1 {_with_interval(w['report_top1'], w.get('report_top1_ci95'))}%"
                   if w.get("report_top1") is not None else "")
            console.print(f"{w['metric']} <= {w['budget']:g}: {label} top-1 "
                          f"{_with_interval(w['accuracy'], w.get('accuracy_ci95'))}%{' INT8' if fp32 else ''}{fp32}"
                          f"{rep} at {w['mflops']:.2f} MFLOPs")
    for line in noise.get("within_noise") or ():
        console.print(f"noise: {line}", soft_wrap=True)
    ap = result.extra.get("auto_predictor") or {}
    if "file" in ap:
        console.print(f"predictor fitted on {ap['num_archs']} measured subnets: {out}/{ap['file']}")
    elif ap.get("skipped"):
        console.print(f"no predictor fitted ({ap['skipped']}): every subnet the search evaluated was measured")
    console.print(f"wrote {out}/pareto.json, pareto.csv, pareto.png, summary.json, config.yaml")


def _with_interval(top1: float, ci: list[float] | None) -> str:
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


def register(app: typer.Typer) -> None:
    """Add ``search`` to ``app``."""
    app.command("search")(search_command)
