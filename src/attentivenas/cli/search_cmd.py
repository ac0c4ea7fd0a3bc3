"""``attentivenas search``: stage 2, thin over :func:`attentivenas.search.search_from_config`.

The search reads a :class:`~attentivenas.config.SearchConfig`: ``--config FILE`` (default: the
schema's defaults), then ``key=value`` overrides, then the flags given on the command line.
``DIR/config.yaml`` records the resolved config; ``search --config DIR/config.yaml`` runs it again.
The config and the printed front come from :mod:`attentivenas.search.command`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table
from tqdm.auto import tqdm

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

if TYPE_CHECKING:
    from ..search.command import FrontText

#: the config key each flag sets (its parameter's name -> dotted key)
FLAG_KEYS = {
    "predictor": "predictor", "checkpoint": "checkpoint", "space": "space", "latency_table": "latency_table",
    "objectives": "objectives", "seed": "seed", "published": "published", "precision": "precision",
    "int8_runtime": "int8.runtime", "int8_calib_images": "int8.calib_images", "accuracy": "accuracy.source",
    "remeasure_top": "accuracy.remeasure_top", "data": "accuracy.data", "calib_batches": "accuracy.calib_batches",
    "calib_batch_size": "accuracy.calib_batch_size", "device": "accuracy.device", "split": "accuracy.split",
    "report_split": "accuracy.report_split", "pipeline": "accuracy.pipeline", "interpolation": "accuracy.interpolation",
    "calib_seed": "accuracy.calib_seed", "max_mflops": "budgets.max_mflops", "max_params_m": "budgets.max_params_m",
    "max_latency_ms": "budgets.max_latency_ms", "max_latency": "budgets.max_latency",
    "max_memory_mb": "budgets.max_memory_mb", "budgets": "budgets.points", "budget_metric": "budgets.metric",
    "pop_size": "evolution.pop_size", "generations": "evolution.generations", "num_archs": "auto_predictor.num_archs",
    "time_budget": "auto_predictor.time_budget_s", "ranks": "runtime.ranks", "threads": "runtime.threads",
}
#: the longer option texts
HELP = {
    "space": "Space name or YAML (default: the checkpoint's or the predictor's).",
    "data": f"Data for measured accuracy: {DATA_CHOICES} (default: the checkpoint's training data).",
    "report_split": "Also measure the Pareto archs and budget winners on this split, disjoint from --split (e.g. "
    "val-report or test); printed beside the searched split's top-1, each with a Wilson 95% interval.",
    "objectives": "Comma list of mflops, params, latency, memory (mflops).",
    "accuracy": "predicted, measured or predicted+remeasure (default: from --predictor / --checkpoint).",
    "max_latency": "Latency budget relative to the space: pNN, a percentile of its latency as --latency-table predicts "
    "it (e.g. p50).",
    "precision": "fp32 or int8: INT8 latency (an INT8 table) and the best candidates and budget winners measured again "
    "quantized (fp32).",
    "int8_runtime": "Runtime the quantized subnets run in for their INT8 top-1: onnxruntime, executorch or openvino "
    "(onnxruntime).",
    "int8_calib_images": "Seeded training images that calibrate the quantization (256).",
    "generations": "NSGA-II generations (30; population x generations at most 2,000,000).",
    "num_archs": "Evaluation budget of the predictor the search fits when given a checkpoint alone: subnets measured "
    "(60).",
    "time_budget": "Time budget instead, in seconds of measuring: as many subnets as fit (re-measurement included).",
    "ranks": "Processes measuring subnets (default: as launched by torchrun, else 1; N starts N local processes).",
}


def info_line(message: str) -> None:
    """What the search measures and how long it should take, one line on stderr (beside the bars)."""
    tqdm.write(message, file=sys.stderr)  # above a running progress bar, not through it


def search_command(
    ctx: typer.Context,
    overrides: list[str] | None = typer.Argument(None, help="Config overrides, e.g. evolution.pop_size=80.",
                                                 show_default=False),
    config: Path | None = typer.Option(None, "--config", "-c", help="Search config YAML (e.g. a run's config.yaml)."),
    out: Path = typer.Option(Path("runs/search"), "--out", help="Output folder."),
    predictor: Path | None = typer.Option(None, "--predictor", help="Accuracy predictor JSON."),
    checkpoint: Path | None = typer.Option(None, "--checkpoint", help="Supernet checkpoint (measured accuracy)."),
    space: str | None = typer.Option(None, "--space", help=HELP["space"]),
    data: str | None = typer.Option(None, "--data", help=HELP["data"]),
    calib_batches: int | None = typer.Option(None, "--calib-batches", min=1, help=CALIB_BATCHES_HELP),
    calib_batch_size: int | None = typer.Option(None, "--calib-batch-size", min=1, help=CALIB_BATCH_SIZE_HELP),
    calib_seed: int | None = typer.Option(None, "--calib-seed", help=calib_seed_help("--seed"), show_default=False),
    split: str | None = typer.Option(None, "--split", help="Measured on: " + SPLIT_HELP),
    report_split: str | None = typer.Option(None, "--report-split", help=HELP["report_split"]),
    pipeline: str | None = typer.Option(None, "--pipeline", help=PIPELINE_HELP),
    interpolation: str | None = typer.Option(None, "--interpolation", help=INTERPOLATION_HELP),
    device: str | None = typer.Option(None, "--device", help="cpu, cuda or cuda:N (default: cuda if present)."),
    objectives: str | None = typer.Option(None, "--objectives", help=HELP["objectives"]),
    accuracy: str | None = typer.Option(None, "--accuracy", help=HELP["accuracy"]),
    remeasure_top: int | None = typer.Option(None, "--remeasure-top", help="Candidates re-measured (10)."),
    max_mflops: float | None = typer.Option(None, "--max-mflops"),
    max_params_m: float | None = typer.Option(None, "--max-params-m"),
    max_latency_ms: float | None = typer.Option(None, "--max-latency-ms"),
    max_latency: str | None = typer.Option(None, "--max-latency", help=HELP["max_latency"]),
    max_memory_mb: float | None = typer.Option(None, "--max-memory-mb"),
    budgets: str | None = typer.Option(None, "--budgets", help="Comma list of budgets: best arch under each."),
    budget_metric: str | None = typer.Option(None, "--budget-metric", help="Metric of --budgets (mflops)."),
    latency_table: Path | None = typer.Option(None, "--latency-table", help="Latency table (latency objective)."),
    precision: str | None = typer.Option(None, "--precision", help=HELP["precision"]),
    int8_runtime: str | None = typer.Option(None, "--int8-runtime", help=HELP["int8_runtime"]),
    int8_calib_images: int | None = typer.Option(None, "--int8-calib-images", min=1, help=HELP["int8_calib_images"]),
    pop_size: int | None = typer.Option(None, "--pop-size", help="NSGA-II population (50; at most 5,000)."),
    generations: int | None = typer.Option(None, "--generations", help=HELP["generations"]),
    num_archs: int | None = typer.Option(None, "--num-archs", min=4, help=HELP["num_archs"]),
    time_budget: float | None = typer.Option(None, "--time-budget", min=1, help=HELP["time_budget"]),
    ranks: int | None = typer.Option(None, "--ranks", min=1, help=HELP["ranks"]),
    threads: int | None = typer.Option(None, "--threads", min=1, help="Torch threads per process."),
    seed: int | None = typer.Option(None, "--seed", help="Seed of every random choice (0)."),
    published: bool | None = typer.Option(None, "--published/--no-published", help="Plot the authors' A0-A6."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (the summary)."),
) -> None:
    """Stage 2: NSGA-II search for the accuracy / cost Pareto front under budgets."""
    from ..search.command import front_text, search_config  # heavy (torch): loaded when the command runs

    cfg = search_config(config, overrides or [], {key: ctx.params[name] for name, key in FLAG_KEYS.items()})
    check_output(out, "dir")
    from ..distributed import is_main  # heavy (torch): loaded when the command runs
    from ..search import search_from_config  # heavy (torch): loaded when the command runs

    result = search_from_config(cfg, out, progress=not as_json, warn=warn_line, log=None if as_json else info_line)
    if not is_main():  # under torchrun the other ranks stay silent
        return
    if as_json:
        print_json({**result.summary(), "out": str(out)})
        return
    _print_front(front_text(result, out))


def _print_front(text: FrontText) -> None:
    """The front's table and the lines under it."""
    table = Table(title=text.title)
    for col in text.columns:
        table.add_column(col, justify="right", no_wrap="top-1" in col)
    for row in text.rows:
        table.add_row(*row)
    console = Console()
    console.print(table)
    for line in text.lines:
        console.print(line)
    for line in text.noise:
        console.print(line, soft_wrap=True)
    for line in text.closing:
        console.print(line)


def register(app: typer.Typer) -> None:
    """Add ``search`` to ``app``."""
    app.command("search")(search_command)
