"""``attentivenas latency measure|build-table``: latency on this device, thin over :mod:`attentivenas.latency`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer

from ..costs import peak_activation_bytes, weight_bytes
from ..space import get_space, resolve_arch
from .common import ARCH_HELP, SPACE_HELP, print_json

latency_app = typer.Typer(no_args_is_help=True, help="Measure latency on this device; build latency tables.")


def latency_measure_cmd(
    arch: str = typer.Option(..., "--arch", help=ARCH_HELP),
    space: str = typer.Option("attentivenas", "--space", help=SPACE_HELP),
    batch: int = typer.Option(1, "--batch", min=1, help="Batch size."),
    threads: int | None = typer.Option(None, "--threads", min=1, help="CPU threads (default: torch's)."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:N or auto."),
    warmup: int = typer.Option(10, "--warmup", min=0, help="Untimed runs first."),
    repeats: int = typer.Option(50, "--repeats", min=1, help="Timed runs (median reported)."),
    num_classes: int = typer.Option(1000, "--num-classes", min=1, help="Classifier outputs."),
    table: Path | None = typer.Option(None, "--table", help="Also predict with this latency table."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Latency of one subnet (random weights) on this device: median of repeats after warm-up."""
    import torch  # heavy (torch): loaded when the command runs

    from ..latency import LatencyTable, device_name, measure_arch, resolve_device

    sp = get_space(space)
    a = resolve_arch(arch, sp)
    tab = LatencyTable.load(table) if table is not None else None
    if tab is not None:
        tab.check_space(sp)
    dev = resolve_device(device)
    res = measure_arch(sp, a, dev, batch, threads, warmup, repeats, num_classes)
    out = res.to_dict() | {"median_ms": round(res.median_ms, 4), "p90_ms": round(res.p90_ms, 4)}
    out = {"latency_ms": out["median_ms"]} | out
    out["device_name"] = device_name(dev)
    out["torch"] = torch.__version__
    out["weight_mb"] = round(weight_bytes(sp, a, torch.float32, num_classes) / 1e6, 4)
    out["peak_activation_mb"] = round(peak_activation_bytes(sp, a, batch, torch.float32, num_classes) / 1e6, 4)
    if tab is not None:
        out["predicted_ms"] = round(tab.predict(sp, a), 4)
    if as_json:
        print_json(out)
        return
    typer.echo(f"{out['latency_ms']:.3f} ms median (p90 {out['p90_ms']:.3f} ms) on {out['device']} "
               f"({out['device_name']}), batch {batch}, {out['threads']} thread(s), {repeats} runs")
    typer.echo(f"memory: {out['weight_mb']:.2f} MB weights, {out['peak_activation_mb']:.2f} MB peak activations")
    if tab is not None:
        typer.echo(f"table prediction: {out['predicted_ms']:.3f} ms")

def latency_build_cmd(
    out: Path = typer.Option(..., "--out", help="Table JSON to write."),
    space: str = typer.Option("attentivenas", "--space", help=SPACE_HELP),
    archs: int | None = typer.Option(None, "--archs", min=1,
                                     help="Signatures of N random archs (+min, max); default: the whole space."),
    batch: int = typer.Option(1, "--batch", min=1, help="Batch size."),
    threads: int | None = typer.Option(1, "--threads", min=1, help="CPU threads."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:N or auto."),
    warmup: int = typer.Option(5, "--warmup", min=0, help="Untimed runs per op."),
    repeats: int = typer.Option(20, "--repeats", min=1, help="Timed runs per op."),
    passes: int = typer.Option(1, "--passes", min=1, help="Passes over all ops (lowest median kept)."),
    calibration_archs: int = typer.Option(4, "--calibration-archs", min=0,
                                          help="Whole subnets measured to fit the overhead."),
    clock: str = typer.Option("wall", "--clock", help="wall, or cpu (thread CPU time; threads 1)."),
    num_classes: int = typer.Option(1000, "--num-classes", min=1, help="Classifier outputs."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sampled archs."),
    holdout_archs: int = typer.Option(10, "--holdout-archs", min=0,
                                      help="Held-out subnets measured whole to report the table's MAPE."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Measure every op needed by a space (or sampled archs), write a latency table, and report its
    mean absolute percentage error on held-out subnets."""
    from ..latency import build_latency_table, measure_archs, table_error  # heavy (torch): loaded when the command runs

    sp = get_space(space)
    tab = build_latency_table(sp, device, batch, archs, num_classes, threads, warmup, repeats, passes,
                              calibration_archs, seed, progress=not as_json, clock=clock)
    mape = None
    if holdout_archs:
        rng = np.random.default_rng(seed + 7919)  # archs apart from the ones the overhead was fitted on
        drawn = (sp.sample(rng) for _ in range(200 * holdout_archs))
        held = [a for a in drawn if tab.covers(sp, a)][:holdout_archs]  # a table of --archs covers few
        if held:
            measured = measure_archs(sp, held, device, batch, threads, warmup, repeats, passes, num_classes,
                                     seed=seed, progress=not as_json, clock=clock)
            mape = table_error(tab, sp, held, measured)
            tab.meta["holdout_archs"] = len(held)
            tab.meta["holdout_mape_percent"] = mape
        holdout_archs = len(held)
    path = tab.save(out)
    info = {"path": str(path), "ops": len(tab.entries), "overhead_ms": round(tab.overhead_ms, 4),
            "per_block_ms": round(tab.per_block_ms, 4), "device": tab.device, "device_name": tab.device_name,
            "threads": tab.threads, "batch": tab.batch, "holdout_archs": holdout_archs,
            "holdout_mape_percent": None if mape is None else round(mape, 3)}
    if as_json:
        print_json(info)
    else:
        typer.echo(f"wrote {path}: {info['ops']} ops on {tab.device} ({tab.device_name}), batch {batch}, "
                   f"{tab.threads} thread(s); overhead {tab.overhead_ms:.3f} ms + {tab.per_block_ms:.4f} ms/block")
        if mape is not None:
            typer.echo(f"error on {holdout_archs} held-out subnets: {mape:.1f}% mean absolute percentage error")
        else:
            typer.echo("no held-out subnet is covered by this table (built for --archs): no error reported")


latency_app.command("measure")(latency_measure_cmd)
latency_app.command("build-table")(latency_build_cmd)


def register(app: typer.Typer) -> None:
    """Add the ``latency`` group to ``app``."""
    app.add_typer(latency_app, name="latency")
