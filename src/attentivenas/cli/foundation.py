"""Commands of the foundation: ``space``, ``flops`` and ``export``.

Command modules import the torch-based layers inside the commands that need them, so that
``attentivenas --help``, ``space`` and ``flops`` start in a fraction of a second.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from ..costs import CostModel, count_flops, count_params
from ..errors import UserError
from ..space import SearchSpace, get_space, resolve_arch
from .common import ARCH_HELP, DATA_CHOICES, INTERPOLATION_HELP, SPACE_HELP, calib_seed_help, print_json


def _describe(space: SearchSpace) -> dict:
    return {
        "name": space.name,
        "num_architectures": space.size(),
        "log10_size": round(space.log10_size(), 3),
        "num_blocks": space.num_blocks,
        "supernet_config": space.to_supernet_config(),
    }


def space_cmd(
    space: str = typer.Option("attentivenas", "--space", help=SPACE_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Describe a search space: its choices, size, and FLOPs range."""
    sp = get_space(space)
    cm = CostModel(sp)
    lo, hi = cm.arch_flops(sp.min_arch()), cm.arch_flops(sp.max_arch())
    info = _describe(sp) | {"min_mflops": round(lo, 2), "max_mflops": round(hi, 2)}
    if as_json:
        print_json(info)
        return
    table = Table(title=f"space '{sp.name}': {info['num_architectures']:.3e} architectures, "
                        f"{lo:.2f}-{hi:.2f} MFLOPs (1000 classes)")
    for col in ("stage", "width", "depth", "kernel", "expand", "stride", "SE"):
        table.add_column(col)
    table.add_row("resolution", ", ".join(map(str, sp.resolutions)), "", "", "", "", "")
    table.add_row("first_conv", ", ".join(map(str, sp.first_conv)), "", "3", "", str(sp.first_stride), "")
    for st in sp.stages:
        table.add_row(st.name, ", ".join(map(str, st.widths)), ", ".join(map(str, st.depths)),
                      ", ".join(map(str, st.kernels)), ", ".join(map(str, st.expands)), str(st.stride),
                      "yes" if st.se else "no")
    table.add_row("last_conv", ", ".join(map(str, sp.last_conv)), "", "1", "", "", "")
    Console().print(table)


def flops_cmd(
    arch: str = typer.Option(..., "--arch", help=ARCH_HELP),
    space: str = typer.Option("attentivenas", "--space", help=SPACE_HELP),
    num_classes: int = typer.Option(1000, "--num-classes", min=1, help="Classifier outputs."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """MFLOPs (authors' convention) and parameters of one architecture."""
    sp = get_space(space)
    a = resolve_arch(arch, sp)
    mflops = count_flops(sp, a, num_classes)
    params_m = count_params(sp, a, num_classes) / 1e6
    if as_json:
        print_json({"mflops": round(mflops, 4), "params_m": round(params_m, 6)})
    else:
        typer.echo(f"{mflops:.2f} MFLOPs, {params_m:.3f} M params  ({a.to_json()})")


def export_cmd(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="Our checkpoint or one released by the authors."),
    out: Path = typer.Option(..., "--out", help="Output file (with --arch) or folder (with --pareto)."),
    arch: str | None = typer.Option(None, "--arch", help=ARCH_HELP),
    pareto: Path | None = typer.Option(None, "--pareto", help="Export every arch of a pareto.json instead."),
    fmt: str = typer.Option("torchscript", "--format", help="torchscript, onnx, safetensors, torch-export (.pt2) "
                           "or executorch (.pte, XNNPACK; extra \\[executorch])."),
    space: str | None = typer.Option(None, "--space", help=SPACE_HELP + " Default: from the checkpoint."),
    calibrate_bn: bool = typer.Option(False, "--calibrate-bn", help="Recalibrate BN statistics on data first."),
    data: str | None = typer.Option(
        None, "--data", help=f"Data for --calibrate-bn: {DATA_CHOICES} "
        "(default: the checkpoint's training data)."),
    calib_batches: int = typer.Option(64, "--calib-batches", min=1, help="Training batches for --calibrate-bn."),
    calib_batch_size: int = typer.Option(256, "--calib-batch-size", min=1, help="Batch size for --calibrate-bn."),
    interpolation: str | None = typer.Option(None, "--interpolation", show_default=False,
                                             help="For --calibrate-bn: " + INTERPOLATION_HELP),
    calib_seed: int | None = typer.Option(None, "--calib-seed", show_default=False,
                                          help="For --calibrate-bn: " + calib_seed_help("0")),
) -> None:
    """Export one subnet (or a whole Pareto set) as standalone models."""
    from ..accuracy import Protocol, resolve_data  # heavy (torch): loaded when the command runs
    from ..nn import FORMATS, cache_calibration_batches, export_pareto_set, export_subnet, load_supernet

    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r} is not supported; allowed: {list(FORMATS)}")
    if (arch is None) == (pareto is None):
        raise UserError("give exactly one of --arch ARCH or --pareto PARETO.json")
    protocol = Protocol(interpolation=interpolation, calib_seed=calib_seed)  # checks the flags before loading
    net, meta = load_supernet(checkpoint, space)
    batches = None
    if calibrate_bn:
        p = protocol.resolved(meta)  # the checkpoint's evaluation: 224 crops, its interpolation and seed
        seed = int(p.calib_seed or 0)
        bundle = resolve_data(data, net.space, meta, seed=seed, interpolation=p.interpolation)
        batches = cache_calibration_batches(bundle.train, calib_batches, calib_batch_size, seed)
    if pareto is not None:
        records = export_pareto_set(net, pareto, out, fmt, calib_batches=batches)
        for r in records:
            typer.echo(f"wrote {out / r['file']} ({r['mflops']:.2f} MFLOPs)")
        typer.echo(f"index: {out / 'index.json'}")
        return
    a = resolve_arch(arch, net.space)
    info = export_subnet(net.extract(a).eval(), out, fmt, calib_batches=batches)
    typer.echo(f"wrote {info['path']} ({fmt}, {count_flops(net.space, a, net.num_classes):.2f} MFLOPs)")


def register(app: typer.Typer) -> None:
    """Add ``space``, ``flops`` and ``export`` to ``app``."""
    app.command("space")(space_cmd)
    app.command("flops")(flops_cmd)
    app.command("export")(export_cmd)
