"""``attentivenas evaluate`` (BN-recalibrated accuracy of one subnet) and ``ranking``, thin over
:mod:`attentivenas.accuracy.commands`."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from ..config import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_CALIB_BATCH_SIZE,
    DEFAULT_CALIB_BATCHES,
    DEFAULT_PIPELINE,
    measure_from_flags,
)
from ..errors import UserError
from .common import (
    ARCH_HELP,
    CALIB_BATCH_SIZE_HELP,
    CALIB_BATCHES_HELP,
    DATA_HELP,
    INTERPOLATION_HELP,
    PIPELINE_HELP,
    SPACE_HELP,
    SPLIT_HELP,
    calib_seed_help,
    show,
    warn_line,
)


def _print_published(info: dict) -> None:
    """The published models' table of ``evaluate --published``."""
    from ..accuracy.commands import KIND_LABELS  # heavy (torch): loaded when the command runs

    rows, source = info["rows"], info["published_source"]
    table = Table(title=f"{KIND_LABELS[info['kind']]} checkpoint: published models on the {info['split']} "
                        f"split ({rows[0]['samples']} images)",
                  caption=f"{info['pipeline']} pipeline, {info['interpolation']}, BN recalibrated (seed "
                          f"{info['calib_seed']}); published: {source}'s top-1")
    for col in ("model", "res", "MFLOPs", "params (M)", "top-1", "top-5", f"{source} top-1", "diff"):
        table.add_column(col, justify="right")
    for r in rows:
        top1, diff = r["published_top1"], r["diff"]
        table.add_row(r["model"], str(r["resolution"]), f"{r['mflops']:.2f}", f"{r['params_m']:.2f}",
                      f"{r['top1']:.2f}", f"{r['top5']:.2f}", "-" if top1 is None else f"{top1:.2f}",
                      "-" if diff is None else f"{diff:+.2f}")
    Console(width=max(Console().width, 100)).print(table)  # the whole table, also when not a terminal


def evaluate_cmd(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="Our checkpoint or one released by the authors."),
    arch: str | None = typer.Option(None, "--arch", help=ARCH_HELP + " Optional for a fine-tuned subnet's "
                                    "checkpoint (`finetune`): its own arch."),
    published: bool = typer.Option(False, "--published", help="Evaluate A0-A6 and AlphaNet's A5 models and print "
                                   "them beside the top-1 published for the checkpoint (AlphaNet's for an AlphaNet "
                                   "checkpoint, else AttentiveNAS's) (instead of --arch)."),
    split: str | None = typer.Option(None, "--split", help=SPLIT_HELP, show_default=False),
    space: str | None = typer.Option(None, "--space", help=SPACE_HELP + " Default: from the checkpoint."),
    data: str | None = typer.Option(None, "--data", help=DATA_HELP),
    pipeline: str = typer.Option(DEFAULT_PIPELINE, "--pipeline", help=PIPELINE_HELP),
    interpolation: str | None = typer.Option(None, "--interpolation", help=INTERPOLATION_HELP, show_default=False),
    calib_batches: int = typer.Option(DEFAULT_CALIB_BATCHES, "--calib-batches", help=CALIB_BATCHES_HELP),
    calib_batch_size: int = typer.Option(DEFAULT_CALIB_BATCH_SIZE, "--calib-batch-size", help=CALIB_BATCH_SIZE_HELP),
    batch_size: int = typer.Option(DEFAULT_BATCH_SIZE, "--batch-size", min=1, help="Evaluation batch size."),
    max_images: int | None = typer.Option(None, "--max-images", min=1, help="Evaluate the first N images only."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    calib_seed: int | None = typer.Option(None, "--calib-seed", "--seed", show_default=False,
                                          help=calib_seed_help("0") + " --seed is another name for it."),
    threads: int | None = typer.Option(None, "--threads", min=1, help="CPU threads."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """BN-recalibrated top-1/top-5 of one subnet (or of the published models) with MFLOPs and params."""
    if arch is not None and published:
        raise UserError("give exactly one of --arch ARCH or --published")
    measure = measure_from_flags(split=split, pipeline=pipeline, interpolation=interpolation,
                                 calib_batches=calib_batches, calib_batch_size=calib_batch_size,
                                 batch_size=batch_size, max_images=max_images, calib_seed=calib_seed)
    from ..accuracy.commands import evaluate_checkpoint  # heavy (torch): loaded when the command runs

    info, lines = evaluate_checkpoint(checkpoint, arch, published, space, data, measure, device, threads, warn_line)
    if published and not as_json:
        _print_published(info)
    else:
        show(info, lines, as_json)


def ranking_cmd(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="Our checkpoint or one released by the authors."),
    probe: Path = typer.Option(..., "--probe", help="Probe set: JSON {\"split\": ..., \"subnets\": [{\"name\", "
                               "\"arch\", \"top1\"}]} or JSON lines, each subnet's top-1 trained alone; or "
                               "finetune's index.json, or a folder of finetune runs (index.json, */result.json)."),
    split: str | None = typer.Option(None, "--split", help=SPLIT_HELP + " Default: the probe file's split, else "
                                     "as for evaluate.", show_default=False),
    space: str | None = typer.Option(None, "--space", help=SPACE_HELP + " Default: from the checkpoint."),
    data: str | None = typer.Option(None, "--data", help=DATA_HELP),
    calib_batches: int = typer.Option(DEFAULT_CALIB_BATCHES, "--calib-batches", help=CALIB_BATCHES_HELP),
    calib_batch_size: int = typer.Option(DEFAULT_CALIB_BATCH_SIZE, "--calib-batch-size", help=CALIB_BATCH_SIZE_HELP),
    max_images: int | None = typer.Option(None, "--max-images", min=1, help="Evaluate the first N images only."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    threads: int | None = typer.Option(None, "--threads", min=1, help="CPU threads."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """How far the supernet ranks subnets as training them alone does: Kendall tau, Spearman rho and
    the gap in points between inherited (BN-recalibrated) and standalone top-1 of a probe set."""
    from ..accuracy.commands import rank_checkpoint  # heavy (torch): loaded when the command runs

    def said(i: int, n: int, p, value: float) -> None:
        if not as_json:
            typer.echo(f"[{i}/{n}] {p.name}: inherited {value:.2f} %, standalone {p.standalone_top1:.2f} %", err=True)

    flags = {"calib_batches": calib_batches, "calib_batch_size": calib_batch_size, "max_images": max_images}
    show(*rank_checkpoint(checkpoint, probe, split, space, data, flags, device, threads, warn_line, said), as_json)


def register(app: typer.Typer) -> None:
    """Add ``evaluate`` and ``ranking`` to ``app``."""
    app.command("evaluate")(evaluate_cmd)
    app.command("ranking")(ranking_cmd)
