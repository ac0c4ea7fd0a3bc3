"""``attentivenas evaluate``: BN-recalibrated accuracy of one subnet, thin over :mod:`attentivenas.accuracy`."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from ..errors import UserError
from ..space import resolve_arch
from .common import ARCH_HELP, DATA_HELP, SPACE_HELP, print_json


def _evaluate(checkpoint: Path, arch: str | None, published: bool, split: str, space: str | None, data: str | None,
              calib_batches: int, calib_batch_size: int, batch_size: int, device: str, seed: int,
              threads: int | None, max_images: int | None, as_json: bool) -> None:
    import torch  # heavy (torch): loaded when the command runs

    from ..accuracy import capped, evaluate_arch, published_table, resolve_data, split_of
    from ..devices import resolve_device
    from ..nn import cache_calibration_batches, load_supernet

    if threads is not None:
        torch.set_num_threads(threads)
    dev = resolve_device(device)
    net, meta = load_supernet(checkpoint, space, device=dev)

    def data_at(resolution: int):
        return resolve_data(data, net.space, meta, resolution=resolution, seed=seed)

    if published:
        rows = published_table(net, data_at, split, calib_batches, calib_batch_size, batch_size, dev, seed,
                               max_images)
        _print_published(rows, split, as_json)
        return
    a = resolve_arch(str(arch), net.space)
    bundle = data_at(a.resolution)
    if bundle.num_classes != net.num_classes:
        raise UserError(f"--data has {bundle.num_classes} classes but the checkpoint's classifier has "
                        f"{net.num_classes}")
    batches = cache_calibration_batches(bundle.train, calib_batches, calib_batch_size, seed, dev)
    loader = torch.utils.data.DataLoader(capped(split_of(bundle, split), max_images), batch_size=batch_size,
                                         shuffle=False)
    res = evaluate_arch(net, a, batches, loader, dev)
    out = {
        "top1": round(res["top1"], 4),
        "top5": round(res["top5"], 4),
        "mflops": round(res["mflops"], 4),
        "params_m": round(res["params_m"], 6),
        "loss": round(res["loss"], 6),
        "samples": res["samples"],
        "split": split,
        "calib_batches": len(batches),
    }
    if as_json:
        print_json(out)
        return
    typer.echo(f"arch      {a.to_json()}")
    typer.echo(f"split     {split} ({out['samples']} images), BN recalibrated on {len(batches)} training batches")
    typer.echo(f"top-1     {out['top1']:.2f} %")
    typer.echo(f"top-5     {out['top5']:.2f} %")
    typer.echo(f"MFLOPs    {out['mflops']:.2f}")
    typer.echo(f"params    {out['params_m']:.3f} M")


def _print_published(rows: list[dict], split: str, as_json: bool) -> None:
    if as_json:
        print_json({"split": split, "rows": rows})
        return
    table = Table(title=f"published models on the {split} split ({rows[0]['samples']} images), BN recalibrated")
    for col in ("model", "res", "MFLOPs", "params (M)", "top-1", "top-5", "published", "diff"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(r["model"], str(r["resolution"]), f"{r['mflops']:.2f}", f"{r['params_m']:.2f}",
                      f"{r['top1']:.2f}", f"{r['top5']:.2f}", f"{r['published_top1']:.2f}", f"{r['diff']:+.2f}")
    Console(width=max(Console().width, 100)).print(table)  # the whole table, also when not a terminal


def evaluate_cmd(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="Our checkpoint or one released by the authors."),
    arch: str | None = typer.Option(None, "--arch", help=ARCH_HELP),
    published: bool = typer.Option(False, "--published", help="Evaluate A0-A6 and AlphaNet's A5 models and print "
                                   "them beside the papers' top-1 (instead of --arch)."),
    split: str = typer.Option("holdout", "--split", help="holdout (the part of the training data held out for "
                              "search), or test (the data set's test split; val = test: an ImageFolder's val/)."),
    space: str | None = typer.Option(None, "--space", help=SPACE_HELP + " Default: from the checkpoint."),
    data: str | None = typer.Option(None, "--data", help=DATA_HELP),
    calib_batches: int = typer.Option(64, "--calib-batches", help="Training batches for BN recalibration."),
    calib_batch_size: int = typer.Option(64, "--calib-batch-size", help="Images per calibration batch."),
    batch_size: int = typer.Option(256, "--batch-size", min=1, help="Evaluation batch size."),
    max_images: int | None = typer.Option(None, "--max-images", min=1, help="Evaluate the first N images only."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    seed: int = typer.Option(0, "--seed", help="Seed of the calibration batches."),
    threads: int | None = typer.Option(None, "--threads", min=1, help="CPU threads."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """BN-recalibrated top-1/top-5 of one subnet (or of the published models) with MFLOPs and params."""
    if calib_batches < 1:
        raise UserError(f"--calib-batches must be >= 1, got {calib_batches}")
    if calib_batch_size < 1:
        raise UserError(f"--calib-batch-size must be >= 1, got {calib_batch_size}")
    if (arch is None) == (not published):
        raise UserError("give exactly one of --arch ARCH or --published")
    _evaluate(checkpoint, arch, published, split, space, data, calib_batches, calib_batch_size, batch_size, device,
              seed, threads, max_images, as_json)


def register(app: typer.Typer) -> None:
    """Add ``evaluate`` to ``app``."""
    app.command("evaluate")(evaluate_cmd)
