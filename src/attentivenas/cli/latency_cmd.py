"""``attentivenas latency measure|build-table|refit`` (``kit`` and ``import``: :mod:`.latency_kit_cmd`), thin over
:mod:`attentivenas.latency.commands`."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from ..config.latency import MAX_BATCH, MAX_REPEATS, MAX_WARMUP
from ..errors import UserError
from ..io import check_output
from .common import ARCH_HELP, SPACE_HELP, show
from .latency_kit_cmd import TABLE, latency_import_cmd, latency_kit_cmd
from .latency_model_cmd import latency_fit_model_cmd

if TYPE_CHECKING:
    from ..space import SearchSpace

latency_app = typer.Typer(no_args_is_help=True, help="Measure latency on this device; build latency tables.")
RUNTIME_HELP = ("torch (eager), onnxruntime, executorch (XNNPACK; extra [executorch]) or openvino (extra "
                "[openvino]): the subnet is exported and timed in that runtime.")
PRECISION_HELP = ("fp32, or int8: the subnet post-training quantized (seeded random calibration inputs; latency "
                  "does not depend on them) for executorch, onnxruntime or openvino (NNCF).")
ARCHS_HELP = ("Only the ops of N random archs (+min, max): a quick check of a runtime, which cannot drive a search (it "
              "lacks ops). Default: the whole space, which can.")
RUNNER_HELP = ("Time the table on a reachable device: write the kit, run this shell command with {kit} (the kit "
               "folder) and {timings} (the timings file to leave) filled in, shell-quoted, e.g. 'rsync -a --delete {kit}/ "
               "board:kit/ && ssh board python3 kit/runner.py --out t.json && scp board:t.json {timings}', "
               "and import the timings (needs a kit runtime: --runtime onnxruntime or executorch; see docs/search.md).")
DRIFT_HELP = ("Time the min subnet between measurements and rescale every time to the machine's typical speed (see "
              "docs/search.md).")


def latency_measure_cmd(
    arch: str = typer.Option(..., "--arch", help=ARCH_HELP),
    space: str = typer.Option("attentivenas", "--space", help=SPACE_HELP),
    batch: int = typer.Option(1, "--batch", help=f"Batch size (1..{MAX_BATCH}, less where the subnet's activations "
                              "would not fit)."),
    threads: int | None = typer.Option(None, "--threads", min=1, help="CPU threads (default: torch's)."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:N or auto."),
    warmup: int = typer.Option(10, "--warmup", help=f"Untimed runs first (0..{MAX_WARMUP})."),
    repeats: int = typer.Option(50, "--repeats", help=f"Timed runs, median reported (1..{MAX_REPEATS})."),
    num_classes: int = typer.Option(1000, "--num-classes", min=1, help="Classifier outputs."),
    table: Path | None = typer.Option(None, "--table", help="Also predict with this latency table."),
    runtime: str = typer.Option("torch", "--runtime", help=RUNTIME_HELP),
    clock: str = typer.Option("wall", "--clock", help="wall, or cpu (thread CPU time; threads 1)."),
    precision: str = typer.Option("fp32", "--precision", help=PRECISION_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Latency of one subnet (random weights) in a runtime on this device: median of repeats after warm-up."""
    from ..latency.commands import measure_lines, measure_one  # heavy (torch): loaded when the command runs

    out = measure_one(space, arch, batch=batch, threads=threads, device=device, warmup=warmup, repeats=repeats,
                      num_classes=num_classes, table=table, runtime=runtime, clock=clock, precision=precision)
    show(out, measure_lines(out, runtime, precision, batch, repeats), as_json)


def latency_build_cmd(
    ctx: typer.Context,
    out: Path = typer.Option(..., "--out", help="Table JSON to write (an interrupted build resumes from "
                             "OUT.partial.json, kept beside it while it measures)."),
    checkpoint: Path | None = typer.Option(None, "--checkpoint", help="Supernet checkpoint (ours or the authors'): "
                                           "the space and class count are taken from it."),
    space: str = typer.Option("attentivenas", "--space", help=SPACE_HELP + " With --checkpoint: the checkpoint's unless given."),
    archs: int | None = typer.Option(TABLE.archs, "--archs", min=1, help=ARCHS_HELP),
    batch: int = typer.Option(TABLE.batch, "--batch", min=1, help="Batch size."),
    threads: int | None = typer.Option(TABLE.threads, "--threads", min=1, help="CPU threads."),
    device: str = typer.Option(TABLE.device, "--device", help="cpu, cuda, cuda:N or auto."),
    runtime: str = typer.Option(TABLE.runtime, "--runtime", help=RUNTIME_HELP),
    precision: str = typer.Option(TABLE.precision, "--precision", help=PRECISION_HELP),
    model: str = typer.Option(TABLE.model, "--model", help="sum (ops + overhead), scaled (+ one factor per op group; "
                              "needs --calibration-archs >= 8) or auto (lower leave-one-out error)."),
    warmup: int = typer.Option(TABLE.warmup, "--warmup", min=0, help="Untimed runs per op."),
    repeats: int = typer.Option(TABLE.repeats, "--repeats", min=1, help="Timed runs per op."),
    passes: int = typer.Option(TABLE.passes, "--passes", min=1, help="Passes over all ops and subnets (the median over "
                               "passes with --drift-correction, else the lowest median)."),
    calibration_archs: int = typer.Option(TABLE.calibration_archs, "--calibration-archs", min=0,
                                          help="Whole subnets measured to fit the overhead (and the scaled model)."),
    clock: str = typer.Option(TABLE.clock, "--clock", help="wall, or cpu (thread CPU time; threads 1)."),
    num_classes: int = typer.Option(TABLE.num_classes, "--num-classes", min=1, help="Classifier outputs (with "
                                     "--checkpoint: its head's)."),
    seed: int = typer.Option(TABLE.seed, "--seed", help="Seed of the sampled archs."),
    holdout_archs: int = typer.Option(TABLE.holdout_archs, "--holdout-archs", min=0,
                                      help="Held-out subnets measured whole to report the table's MAPE."),
    jobs: int = typer.Option(TABLE.jobs, "--jobs", min=1, help="Processes that export the programs (onnxruntime, "
                             "executorch) before the timing, one core each."),
    drift_correction: bool = typer.Option(TABLE.drift_correction, "--drift-correction/--no-drift-correction",
                                          help=DRIFT_HELP),
    device_name: str | None = typer.Option(None, "--device-name", help="Name of the device in the table (default: "
                                           "its CPU or GPU)."),
    runner: str | None = typer.Option(None, "--runner", help=RUNNER_HELP),
    runner_timeout: float | None = typer.Option(None, "--runner-timeout", help="Seconds the --runner command may run "
                                                "before its process group is killed (default 3600)."),
    kit_dir: Path | None = typer.Option(None, "--kit-dir", help="With --runner: write the kit (and its timings.json) "
                                        "to this new folder and keep it (default: a temporary folder)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Measure every op needed by a space (or sampled archs) in a runtime, write a latency table, and
    report its mean absolute percentage error on held-out subnets (for every fitted model) and the
    space's latency range (min, median, max: what `search --max-latency pNN` budgets are taken from).
    Only a whole-space table (no --archs) can drive a search."""
    from ..latency import build_table, check_runtime  # heavy (torch): loaded when the command runs
    from ..latency.commands import built_info, built_lines, space_and_classes, table_config
    from ..latency.partial import partial_path

    check_output(out)
    sp, num_classes = space_and_classes(checkpoint, space, num_classes, space_given=_given(ctx, "space"),
                                        classes_given=_given(ctx, "num_classes"))
    if runner is not None or kit_dir is not None or runner_timeout is not None:
        return _build_on_device(ctx, sp, num_classes, out, as_json)
    check_runtime(runtime, device, precision)
    config = table_config(ctx.params | {"num_classes": num_classes})
    tab = build_table(sp, config, progress=True, partial=partial_path(out), log=partial(typer.echo, err=True))
    tab.device_name = device_name or tab.device_name
    info = built_info(tab, tab.save(out), sp, holdout_archs)
    show(info, built_lines(tab, info, runtime, batch, archs), as_json)


def _build_on_device(ctx: typer.Context, sp: SearchSpace, num_classes: int, out: Path, as_json: bool) -> None:
    """``build-table --runner``: the kit written, timed by the user's command and imported (as ``latency import``)."""
    from ..latency.commands import imported, table_config  # heavy (torch): loaded when the command runs
    from ..latency.device_run import table_on_device

    p = ctx.params
    if p["runner"] is None:
        raise UserError("--kit-dir and --runner-timeout apply only with --runner CMD")
    if p["kit_dir"] is not None:
        check_output(p["kit_dir"], kind="dir", flag="--kit-dir")
    config = table_config(p | {"num_classes": num_classes, "device": "cpu"})
    tab = table_on_device(sp, config, p["runner"], timeout=p["runner_timeout"], kit_dir=p["kit_dir"],
                          device_name=p["device_name"], log=partial(typer.echo, err=True))
    show(*imported(tab, tab.save(out)), as_json)


def _given(ctx: typer.Context, name: str) -> bool:
    """Whether the flag of parameter ``name`` was on the command line (not its default)."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"


def latency_refit_cmd(
    table: Path = typer.Option(..., "--table", help="Latency table JSON (built by build-table)."),
    out: Path | None = typer.Option(None, "--out", help="Write the refitted table here (default: --table)."),
    model: str = typer.Option("auto", "--model", help="sum, scaled or auto (lower leave-one-out error)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Fit a table's models again on the whole subnets it measured (no measuring), and report their
    error on its held-out subnets. A table of more than MAX_REFIT_SUBNETS (300) stored subnets is refused."""
    if out is not None:
        check_output(out)
    from ..latency import LatencyTable, refit_table  # heavy (torch): loaded when the command runs
    from ..latency.commands import refitted
    from ..space import SearchSpace

    tab = LatencyTable.load(table)
    mapes = refit_table(tab, SearchSpace.from_dict(tab.space), model, source=f"latency table {table}")
    show(*refitted(tab, tab.save(out or table), mapes), as_json)


for _name, _command in (("measure", latency_measure_cmd), ("build-table", latency_build_cmd),
                       ("refit", latency_refit_cmd), ("kit", latency_kit_cmd), ("import", latency_import_cmd)):
    latency_app.command(_name)(_command)
latency_app.command("fit-model")(latency_fit_model_cmd)


def register(app: typer.Typer) -> None:
    """Add the ``latency`` group to ``app``."""
    app.add_typer(latency_app, name="latency")
