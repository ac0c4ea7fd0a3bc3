"""``attentivenas evaluate``: BN-recalibrated accuracy of one subnet, thin over :mod:`attentivenas.accuracy`."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import UserError
from ..space import resolve_arch
from .common import ARCH_HELP, DATA_HELP, SPACE_HELP, print_json


def _evaluate(checkpoint: Path, arch: str, space: str | None, data: str | None, calib_batches: int,
              calib_batch_size: int, batch_size: int, device: str, seed: int, threads: int | None,
              as_json: bool) -> None:
    import torch  # heavy (torch): loaded when the command runs

    from ..accuracy import evaluate_arch, resolve_data
    from ..devices import resolve_device
    from ..nn import cache_calibration_batches, load_supernet

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


def register(app: typer.Typer) -> None:
    """Add ``evaluate`` to ``app``."""
    app.command("evaluate")(evaluate_cmd)
