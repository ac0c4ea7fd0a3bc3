"""Commands of stage 2 measurements: ``evaluate`` and ``latency measure|build-table``."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import UserError
from .common import print_json

SPACE_HELP = "Search space: a preset (attentivenas, alphanet, tiny) or a YAML file with a supernet_config block."
ARCH_HELP = "Model name (a0..a6, alphanet-a5, alphanet-a5-base, min, max), arch JSON file, or inline JSON."
DATA_HELP = ("digits, cifar10:PATH, cifar100:PATH or an ImageFolder root PATH (train/ and val/). "
             "Default: the data of the checkpoint's training config.")


def _evaluate(checkpoint: Path, arch: str, space: str | None, data: str | None, calib_batches: int,
              calib_batch_size: int, batch_size: int, device: str, seed: int, threads: int | None,
              as_json: bool) -> None:
    import torch

    from ..checkpoint import load_supernet
    from ..evaluate import cache_calibration_batches, evaluate_arch, resolve_data
    from ..latency import resolve_device
    from ..space import resolve_arch

    if threads is not None:
        torch.set_num_threads(threads)
    dev = resolve_device(device)
    net, meta = load_supernet(checkpoint, space, device=dev)
    a = resolve_arch(arch, net.space)
    bundle = resolve_data(data, net.space, meta, resolution=a.resolution, seed=seed)
    if bundle.num_classes != net.num_classes:
        raise UserError(f"--data has {bundle.num_classes} classes but the checkpoint's classifier has "
                        f"{net.num_classes}")
    batches = cache_calibration_batches(bundle.train, calib_batches, calib_batch_size, seed, dev)
    loader = torch.utils.data.DataLoader(bundle.val, batch_size=batch_size, shuffle=False)
    res = evaluate_arch(net, a, batches, loader, dev)
    out = {
        "top1": round(res["top1"], 4),
        "top5": round(res["top5"], 4),
        "mflops": round(res["mflops"], 4),
        "params_m": round(res["params_m"], 6),
        "loss": round(res["loss"], 6),
        "samples": res["samples"],
        "split": "val",
        "calib_batches": len(batches),
    }
    if as_json:
        print_json(out)
        return
    typer.echo(f"arch      {a.to_json()}")
    typer.echo(f"split     val ({out['samples']} images), BN recalibrated on {len(batches)} training batches")
    typer.echo(f"top-1     {out['top1']:.2f} %")
    typer.echo(f"top-5     {out['top5']:.2f} %")
    typer.echo(f"MFLOPs    {out['mflops']:.2f}")
    typer.echo(f"params    {out['params_m']:.3f} M")


def register(app: typer.Typer) -> None:
    """Add ``evaluate`` and the ``latency`` group to ``app`` (idempotent)."""
    names = {c.name for c in app.registered_commands} | {g.name for g in app.registered_groups}
    if "evaluate" in names:
        return

    @app.command("evaluate")
    def evaluate_cmd(
        checkpoint: Path = typer.Option(..., "--checkpoint", help="Our checkpoint or one released by the authors."),
        arch: str = typer.Option(..., "--arch", help=ARCH_HELP),
        space: str | None = typer.Option(None, "--space", help=SPACE_HELP + " Default: from the checkpoint."),
        data: str | None = typer.Option(None, "--data", help=DATA_HELP),
        calib_batches: int = typer.Option(64, "--calib-batches", help="Training batches for BN recalibration."),
        calib_batch_size: int = typer.Option(64, "--calib-batch-size", help="Images per calibration batch."),
        batch_size: int = typer.Option(256, "--batch-size", min=1, help="Validation batch size."),
        device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
        seed: int = typer.Option(0, "--seed", help="Seed of the calibration batches."),
        threads: int | None = typer.Option(None, "--threads", min=1, help="CPU threads."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    ) -> None:
        """BN-recalibrated top-1/top-5 of one subnet on the validation split, with MFLOPs and params."""
        if calib_batches < 1:
            raise UserError(f"--calib-batches must be >= 1, got {calib_batches}")
        if calib_batch_size < 1:
            raise UserError(f"--calib-batch-size must be >= 1, got {calib_batch_size}")
        _evaluate(checkpoint, arch, space, data, calib_batches, calib_batch_size, batch_size, device, seed, threads,
                  as_json)

    latency_app = typer.Typer(no_args_is_help=True, help="Measure latency on this device; build latency tables.")

    @latency_app.command("measure")
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
        import torch

        from ..latency import LatencyTable, device_name, measure_arch, resolve_device
        from ..memory import peak_activation_bytes, weight_bytes
        from ..space import get_space, resolve_arch

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

    @latency_app.command("build-table")
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
        import numpy as np

        from ..latency import build_latency_table, measure_archs, table_error
        from ..space import get_space

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

    app.add_typer(latency_app, name="latency")
