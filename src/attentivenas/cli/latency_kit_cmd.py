"""``attentivenas latency kit|import``: a measurement kit timed on another device, thin over
:mod:`attentivenas.latency.kit` and :mod:`attentivenas.latency.device_import`."""

from __future__ import annotations

from pathlib import Path

import typer

from ..config import LatencyTableConfig
from ..io import check_output
from .common import SPACE_HELP, show

TABLE = LatencyTableConfig()  # the defaults of `build-table`'s flags, which the kit shares


def latency_kit_cmd(
    ctx: typer.Context,
    out: Path = typer.Option(..., "--out", help="Kit folder to write (new or empty)."),
    space: str = typer.Option("attentivenas", "--space", help=SPACE_HELP),
    runtime: str = typer.Option("onnxruntime", "--runtime", help="onnxruntime or executorch (the runtimes a kit's runner loads)."),
    precision: str = typer.Option("fp32", "--precision", help="fp32, or int8 (quantized on seeded random inputs, "
                                   "as build-table --precision int8)."),
    batch: int = typer.Option(TABLE.batch, "--batch", min=1, help="Batch size."),
    threads: int = typer.Option(1, "--threads", min=1, help="Runtime threads the runner uses by default."),
    archs: int | None = typer.Option(TABLE.archs, "--archs", min=1, help="Only the ops of N random archs (+min, "
                                     "max). Default: the whole space (a table that can drive a search)."),
    calibration_archs: int = typer.Option(TABLE.calibration_archs, "--calibration-archs", min=0,
                                          help="Whole subnets timed to fit the overhead (and the scaled model)."),
    holdout_archs: int = typer.Option(TABLE.holdout_archs, "--holdout-archs", min=0,
                                      help="Held-out subnets timed whole to report the table's MAPE."),
    warmup: int = typer.Option(TABLE.warmup, "--warmup", min=0, help="Untimed runs per item."),
    repeats: int = typer.Option(TABLE.repeats, "--repeats", min=1, help="Timed runs per item."),
    passes: int = typer.Option(3, "--passes", min=1, help="Passes over all items (seeded random order)."),
    model: str = typer.Option(TABLE.model, "--model", help="sum, scaled or auto: the model import fits."),
    num_classes: int = typer.Option(TABLE.num_classes, "--num-classes", min=1, help="Classifier outputs."),
    seed: int = typer.Option(TABLE.seed, "--seed", help="Seed of the sampled archs."),
    jobs: int = typer.Option(TABLE.jobs, "--jobs", min=1, help="Processes that export the programs."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Write a measurement kit: every op and whole subnet of a latency table as programs of a runtime,
    a manifest, a runner that needs only the runtime's Python package, and a README. Time it on the
    device, then `attentivenas latency import`."""
    from ..latency.commands import table_config  # heavy (torch): loaded when the command runs
    from ..latency.kit import kit_bytes, write_kit
    from ..space import get_space

    check_output(out, kind="dir")
    config = table_config(ctx.params | {"device": "cpu"})
    man = write_kit(get_space(space), config, out, progress=True)
    size = kit_bytes(out)
    info = {"path": str(out), "kit_id": man["kit_id"], "items": len(man["items"]), "bytes": size,
            "runtime": runtime, "precision": precision, "batch": batch, "threads": threads}
    show(info, [f"wrote kit {out} ({man['kit_id']}): {info['items']} programs, {size / 1e6:.1f} MB; on the device: "
                 f"python3 runner.py --out timings.json (see {out / 'README.md'})"], as_json)


def latency_import_cmd(
    kit: Path = typer.Argument(..., help="The kit folder (written by `latency kit`)."),
    timings: Path = typer.Argument(..., help="The timings file its runner (or a native tool) wrote."),
    out: Path = typer.Option(..., "--out", help="Table JSON to write (only once complete)."),
    device_name: str | None = typer.Option(None, "--device-name", help="Name of the device (default: its CPU)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Check a kit's timings against its manifest and fit the latency table `build-table` would."""
    from ..latency.commands import imported  # heavy (torch): loaded when the command runs
    from ..latency.device_import import import_timings

    check_output(out)
    tab = import_timings(kit, timings, device_name)
    show(*imported(tab, tab.save(out)), as_json)
