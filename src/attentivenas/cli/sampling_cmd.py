"""``attentivenas sampling-report RUN/``: how often attentive sampling's picks agree with the trained
supernet's own ranking of the candidates, thin over :mod:`attentivenas.train.choices`."""

from __future__ import annotations

from pathlib import Path

import typer

from ..config import DEFAULT_CALIB_BATCH_SIZE, measure_from_flags
from ..io import atomic_write_json
from .common import CALIB_BATCH_SIZE_HELP, print_json, warn_line

#: BN-calibration batches per candidate (of DEFAULT_CALIB_BATCH_SIZE crops): many candidates are measured
CALIB_BATCHES = 8


def sampling_report_cmd(
    run: Path = typer.Argument(..., help="A training run's folder (its metrics.jsonl and checkpoints/last.pt)."),
    checkpoint: Path | None = typer.Option(None, "--checkpoint", help="The supernet to rank the candidates with. "
                                           "Default: RUN/checkpoints/last.pt."),
    split: str = typer.Option("holdout", "--split", help="holdout (the training images the run held out), or "
                              "val-search / val-report / test (see `evaluate --split`)."),
    max_images: int | None = typer.Option(None, "--max-images", min=1, help="Measure on the first N images only "
                                          "(default: all of the split)."),
    max_groups: int | None = typer.Option(None, "--max-groups", min=1, help="Measure at most N recorded choices, "
                                          "evenly spaced over the run (default: all)."),
    calib_batches: int = typer.Option(CALIB_BATCHES, "--calib-batches", help="Training batches for BN "
                                      "recalibration of each candidate."),
    calib_batch_size: int = typer.Option(DEFAULT_CALIB_BATCH_SIZE, "--calib-batch-size", help=CALIB_BATCH_SIZE_HELP),
    out: Path | None = typer.Option(None, "--out", help="Write the report as JSON here (default: "
                                    "RUN/sampling_report.json)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    threads: int | None = typer.Option(None, "--threads", min=1, help="CPU threads."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """After training: measure the candidates the sampler chose between (sampler records in
    metrics.jsonl) with the trained supernet, BN recalibrated, on held-out images; print how often the
    pick agreed with that ranking (95% Wilson interval) beside the candidates' accuracy spread at equal
    FLOPs, and whether attentive sampling had anything to choose between."""
    import torch  # heavy (torch): loaded when the command runs

    from ..devices import resolve_device
    from ..train.choices import choice_report, report_lines

    measure = measure_from_flags(split=split, calib_batches=calib_batches, calib_batch_size=calib_batch_size,
                                 max_images=max_images)
    if threads is not None:
        torch.set_num_threads(threads)
    say = (lambda m: None) if as_json else (lambda m: typer.echo(m, err=True))
    rep = choice_report(run, checkpoint, measure, max_groups, resolve_device(device), log=say, warn=warn_line)
    path = atomic_write_json(out if out is not None else Path(run) / "sampling_report.json", rep)
    if as_json:
        print_json(rep)
        return
    for line in report_lines(rep):
        typer.echo(line)
    typer.echo(f"report     {path}")


def register(app: typer.Typer) -> None:
    """Add ``sampling-report`` to ``app``."""
    app.command("sampling-report")(sampling_report_cmd)
