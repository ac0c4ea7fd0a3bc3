"""``attentivenas latency measure|build-table``: latency on this device, thin over :mod:`attentivenas.latency`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer

from ..config import LatencyTableConfig, parse_model
from ..config.latency import MAX_BATCH, MAX_REPEATS, MAX_WARMUP, check_measure_counts
from ..costs import peak_activation_bytes, weight_bytes
from ..errors import ConfigError
from ..io import check_output
from ..space import get_space, resolve_arch
from .common import ARCH_HELP, SPACE_HELP, print_json

latency_app = typer.Typer(no_args_is_help=True, help="Measure latency on this device; build latency tables.")
RUNTIME_HELP = ("torch (eager), onnxruntime, executorch (XNNPACK; extra [executorch]) or openvino (extra "
                "[openvino]): the subnet is exported and timed in that runtime.")
PRECISION_HELP = ("fp32, or int8: the subnet post-training quantized (seeded random calibration inputs; latency "
                  "does not depend on them) for executorch, onnxruntime or openvino (NNCF).")
TABLE = LatencyTableConfig()  # the defaults of `build-table`'s flags


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
    import torch  # heavy (torch): loaded when the command runs

    from ..latency import LatencyTable, check_runtime, device_name, measure_arch, runtime_version
    from ..latency.measure import check_batch

    sp = get_space(space)
    a = resolve_arch(arch, sp)
    check_measure_counts(warmup, repeats, batch)  # bounded before any work: a run that finishes, in memory
    check_batch(sp, a, batch, num_classes)
    dev = check_runtime(runtime, device, precision)
    tab = LatencyTable.load(table) if table is not None else None
    if tab is not None:
        tab.check_space(sp)
        tab.check_setting(runtime=runtime, batch=batch, num_classes=num_classes, precision=precision)
    res = measure_arch(sp, a, dev, batch, threads, warmup, repeats, num_classes, clock=clock, runtime=runtime,
                       precision=precision)
    out = res.to_dict() | {"median_ms": round(res.median_ms, 4), "p90_ms": round(res.p90_ms, 4)}
    out = {"latency_ms": out["median_ms"]} | out
    out["device_name"] = device_name(dev)
    out["torch"] = torch.__version__
    out["runtime_version"] = runtime_version(runtime)
    out["weight_mb"] = round(weight_bytes(sp, a, torch.float32, num_classes) / 1e6, 4)
    out["peak_activation_mb"] = round(peak_activation_bytes(sp, a, batch, torch.float32, num_classes) / 1e6, 4)
    if tab is not None:
        out["predicted_ms"] = round(tab.predict(sp, a), 4)
    if as_json:
        print_json(out)
        return
    typer.echo(f"{out['latency_ms']:.3f} ms median (p90 {out['p90_ms']:.3f} ms) in {runtime}{_int8(precision)} "
               f"{out['runtime_version']} on {out['device']} ({out['device_name']}), batch {batch}, "
               f"{out['threads']} thread(s), {repeats} runs")
    typer.echo(f"memory: {out['weight_mb']:.2f} MB weights, {out['peak_activation_mb']:.2f} MB peak activations")
    if tab is not None:
        typer.echo(f"table prediction: {out['predicted_ms']:.3f} ms")

def latency_build_cmd(
    ctx: typer.Context,
    out: Path = typer.Option(..., "--out", help="Table JSON to write (an interrupted build resumes from "
                             "OUT.partial.json, kept beside it while it measures)."),
    checkpoint: Path | None = typer.Option(None, "--checkpoint", help="Supernet checkpoint (ours or the authors'): "
                                           "the space and class count are taken from it."),
    space: str = typer.Option("attentivenas", "--space", help=SPACE_HELP + " With --checkpoint: the checkpoint's unless given."),
    archs: int | None = typer.Option(TABLE.archs, "--archs", min=1,
                                     help="Only the ops of N random archs (+min, max): a quick check of a runtime, "
                                     "which cannot drive a search (it lacks ops). Default: the whole space, "
                                     "which can."),
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
    drift_correction: bool = typer.Option(
        TABLE.drift_correction, "--drift-correction/--no-drift-correction",
        help="Time the min subnet between measurements and rescale every time to the machine's typical "
        "speed (see docs/search.md)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Measure every op needed by a space (or sampled archs) in a runtime, write a latency table, and
    report its mean absolute percentage error on held-out subnets (for every fitted model) and the
    space's latency range (min, median, max: what `search --max-latency pNN` budgets are taken from).
    Only a whole-space table (no --archs) can drive a search."""
    from ..latency import build_table, check_runtime  # heavy (torch): loaded when the command runs
    from ..latency.partial import partial_path

    check_output(out)
    sp, num_classes = _space_and_classes(ctx, checkpoint, space, num_classes)
    check_runtime(runtime, device, precision)
    config = _table_config(dict(
        runtime=runtime, precision=precision, device=device, batch=batch, threads=threads, num_classes=num_classes, archs=archs,
        warmup=warmup, repeats=repeats, passes=passes, clock=clock, calibration_archs=calibration_archs, model=model,
        holdout_archs=holdout_archs, seed=seed, jobs=jobs, drift_correction=drift_correction))
    tab = build_table(sp, config, progress=True, partial=partial_path(out), log=_note)  # bars on stderr
    mapes = tab.meta.get("holdout_mape_by_model", {})
    path = tab.save(out)
    span = tab.meta.get("space_range")
    info = {"path": str(path), "ops": len(tab.entries), "runtime": tab.runtime, "runtime_version": tab.runtime_version,
            "precision": tab.precision,
            "model": tab.model, "overhead_ms": round(tab.overhead_ms, 4), "per_block_ms": round(tab.per_block_ms, 4),
            "group_scale": {k: round(v, 4) for k, v in tab.group_scale.items()}, "device": tab.device,
            "device_name": tab.device_name, "threads": tab.threads, "batch": tab.batch, "holdout_archs": holdout_archs,
            "holdout_mape_percent": None if not mapes else round(mapes[tab.model], 3),
            "holdout_mape_by_model": {k: round(v, 3) for k, v in mapes.items()},
            "drift_reference": tab.meta.get("drift_reference"), "space": sp.name, "num_classes": tab.num_classes,
            "drives_search": span is not None,
            "latency_range_ms": None if span is None else {k: round(v, 4) if isinstance(v, float) else v
                                                           for k, v in span.items()}}
    if as_json:
        print_json(info)
        return
    typer.echo(f"wrote {path}: {info['ops']} ops in {runtime} {tab.runtime_version}{_int8(tab.precision)} on {tab.device} "
               f"({tab.device_name}), batch {batch}, {tab.threads} thread(s); model {tab.model}: overhead "
               f"{tab.overhead_ms:.3f} ms + {tab.per_block_ms:.4f} ms/block")
    for name, mape in mapes.items():
        typer.echo(f"error on {holdout_archs} held-out subnets, {name} model: {mape:.1f}% mean absolute percentage error"
                   + (" (in use)" if name == tab.model else ""))
    if span is None:
        typer.echo(f"this table covers the ops of {archs} sampled archs only: it cannot drive a search (build it "
                   "without --archs for that)")
    else:
        typer.echo(f"latency of space '{sp.name}' (predicted, {span['samples']:,} random subnets + min and max): min "
                   f"{span['min_ms']:.3f} ms, median {span['p50_ms']:.3f} ms, max {span['max_ms']:.3f} ms; budgets "
                   "relative to it: search --max-latency p50 (a percentile)")


def _note(message: str) -> None:
    typer.echo(message, err=True)


def _space_and_classes(ctx: typer.Context, checkpoint: Path | None, space: str, num_classes: int) -> tuple[Any, int]:
    """The space and class count of a table: the checkpoint's (``--space`` overrides its space, as for
    the authors' checkpoints; a ``--num-classes`` other than its head's is refused), else the flags'."""
    if checkpoint is None:
        return get_space(space), num_classes
    from ..nn import supernet_weights  # heavy (torch): loaded when the command runs

    _, ck_space, meta = supernet_weights(checkpoint)
    given = _given(ctx, "num_classes")
    ck_classes = meta.get("num_classes")
    if given and ck_classes is not None and num_classes != ck_classes:
        raise ConfigError(f"--num-classes {num_classes} differs from checkpoint {checkpoint}'s {ck_classes} classes; "
                          "leave it out to use the checkpoint's")
    sp = get_space(space) if _given(ctx, "space") else ck_space
    return sp, int(ck_classes if ck_classes is not None else num_classes)


def _given(ctx: typer.Context, name: str) -> bool:
    """Whether the flag of parameter ``name`` was on the command line (not its default)."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"


def _int8(precision: str) -> str:
    return " (INT8)" if precision == "int8" else ""


def _table_config(flags: dict[str, Any]) -> LatencyTableConfig:
    """The section of ``build-table``'s flags; a value out of bounds is one line naming its flag."""
    try:
        return parse_model(LatencyTableConfig, flags, "latency build-table")
    except ConfigError as exc:
        raise ConfigError(re.sub(r"config key '(\w+)'", lambda m: "--" + m.group(1).replace("_", "-"), str(exc))) from None


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
    from ..space import SearchSpace

    tab = LatencyTable.load(table)
    sp = SearchSpace.from_dict(tab.space)
    mapes = refit_table(tab, sp, model, source=f"latency table {table}")
    path = tab.save(out or table)
    info = {"path": str(path), "precision": tab.precision, "model": tab.model, "overhead_ms": round(tab.overhead_ms, 4),
            "per_block_ms": round(tab.per_block_ms, 4), "group_scale": {k: round(v, 4) for k, v in tab.group_scale.items()},
            "calibration_loo_mape": {k: round(v, 3) for k, v in tab.meta.get("calibration_loo_mape", {}).items()},
            "holdout_mape_by_model": {k: round(v, 3) for k, v in mapes.items()},
            "drift_reference": tab.meta.get("drift_reference")}
    if as_json:
        print_json(info)
        return
    typer.echo(f"wrote {path}: model {tab.model}, overhead {tab.overhead_ms:.3f} ms + {tab.per_block_ms:.4f} ms/block"
               + (f", group factors {info['group_scale']}" if tab.group_scale else ""))
    for name, mape in mapes.items():
        typer.echo(f"error on {tab.meta.get('holdout_archs', 0)} held-out subnets, {name} model: {mape:.1f}% "
                   "mean absolute percentage error" + (" (in use)" if name == tab.model else ""))


def latency_kit_cmd(
    out: Path = typer.Option(..., "--out", help="Kit folder to write (new or empty)."),
    space: str = typer.Option("attentivenas", "--space", help=SPACE_HELP),
    runtime: str = typer.Option("onnxruntime", "--runtime", help="onnxruntime (the only kit runtime for now)."),
    precision: str = typer.Option("fp32", "--precision", help="fp32, or int8 (QDQ ONNX quantized on seeded random "
                                   "inputs, as build-table --precision int8)."),
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
    from ..latency.kit import kit_bytes, write_kit  # heavy (torch): loaded when the command runs

    check_output(out, kind="dir")
    config = _table_config(dict(
        runtime=runtime, precision=precision, device="cpu", batch=batch, threads=threads, num_classes=num_classes,
        archs=archs, warmup=warmup, repeats=repeats, passes=passes, calibration_archs=calibration_archs, model=model,
        holdout_archs=holdout_archs, seed=seed, jobs=jobs))
    man = write_kit(get_space(space), config, out, progress=True)
    size = kit_bytes(out)
    info = {"path": str(out), "kit_id": man["kit_id"], "items": len(man["items"]), "bytes": size,
            "runtime": runtime, "precision": precision, "batch": batch, "threads": threads}
    if as_json:
        print_json(info)
        return
    typer.echo(f"wrote kit {out} ({man['kit_id']}): {info['items']} programs, {size / 1e6:.1f} MB; on the device: "
               f"python3 runner.py --out timings.json (see {out / 'README.md'})")


def latency_import_cmd(
    kit: Path = typer.Argument(..., help="The kit folder (written by `latency kit`)."),
    timings: Path = typer.Argument(..., help="The timings file its runner (or a native tool) wrote."),
    out: Path = typer.Option(..., "--out", help="Table JSON to write (only once complete)."),
    device_name: str | None = typer.Option(None, "--device-name", help="Name of the device (default: its CPU)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Check a kit's timings against its manifest and fit the latency table `build-table` would."""
    from ..latency.device_import import import_timings  # heavy (torch): loaded when the command runs

    check_output(out)
    tab = import_timings(kit, timings, device_name)
    path = tab.save(out)
    mapes = tab.meta.get("holdout_mape_by_model", {})
    info = {"path": str(path), "ops": len(tab.entries), **tab.setting(),
            "holdout_mape_by_model": {k: round(v, 3) for k, v in mapes.items()},
            "drives_search": tab.meta.get("space_range") is not None}
    if as_json:
        print_json(info)
        return
    typer.echo(f"wrote {path}: {info['ops']} ops in {tab.runtime} {tab.runtime_version}{_int8(tab.precision)} on "
               f"{tab.device_name}, batch {tab.batch}, {tab.threads} thread(s); model {tab.model}")
    for name, mape in mapes.items():
        typer.echo(f"error on {tab.meta.get('holdout_archs', 0)} held-out subnets, {name} model: {mape:.1f}% mean "
                   "absolute percentage error" + (" (in use)" if name == tab.model else ""))


latency_app.command("measure")(latency_measure_cmd)
latency_app.command("build-table")(latency_build_cmd)
latency_app.command("refit")(latency_refit_cmd)
latency_app.command("kit")(latency_kit_cmd)
latency_app.command("import")(latency_import_cmd)


def register(app: typer.Typer) -> None:
    """Add the ``latency`` group to ``app``."""
    app.add_typer(latency_app, name="latency")
