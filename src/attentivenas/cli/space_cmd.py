"""Commands that describe the search space: ``space`` and ``flops``, thin over :mod:`attentivenas.costs.commands`.

Both stay light (no torch), so ``attentivenas space`` and ``flops`` start in a fraction of a second.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from ..costs import count_flops, count_params
from ..costs.commands import DEFAULT_NUM_CLASSES, flops_setting, space_rows, space_summary
from ..space import get_space, resolve_arch
from .common import ARCH_HELP, SPACE_HELP, print_json


def space_cmd(
    space: str = typer.Option("attentivenas", "--space", help=SPACE_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Describe a search space: its choices, size, and FLOPs range."""
    sp = get_space(space)
    info = space_summary(sp)
    if as_json:
        print_json(info)
        return
    table = Table(title=f"space '{sp.name}': {info['num_architectures']:.3e} architectures, "
                        f"{info['min_mflops']:.2f}-{info['max_mflops']:.2f} MFLOPs (1000 classes)")
    for col in ("stage", "width", "depth", "kernel", "expand", "stride", "SE"):
        table.add_column(col)
    for row in space_rows(sp):
        table.add_row(*row)
    Console().print(table)


def flops_cmd(
    arch: str = typer.Option(..., "--arch", help=ARCH_HELP),
    space: str | None = typer.Option(None, "--space", show_default=False,
                                     help=SPACE_HELP + " Default: the checkpoint's, else attentivenas."),
    checkpoint: Path | None = typer.Option(None, "--checkpoint", show_default=False,
                                           help="Take the class count (and the space) from this checkpoint: a "
                                           "supernet (ours or the authors') or a fine-tuned subnet."),
    num_classes: int | None = typer.Option(None, "--num-classes", min=1, show_default=False,
                                           help="Classifier outputs. Default: the checkpoint's, else "
                                           f"{DEFAULT_NUM_CLASSES} (ImageNet)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """MFLOPs (authors' convention) and parameters of one architecture; the classifier's class count
    counts, so it comes from --checkpoint or --num-classes (1000 otherwise) and is printed."""
    ckpt_space, ckpt_classes = None, None
    if checkpoint is not None:
        from ..nn.checkpoint import checkpoint_classes  # heavy (torch): only with --checkpoint

        ckpt_space, ckpt_classes = checkpoint_classes(checkpoint)
    sp, classes, source = flops_setting(space, num_classes, checkpoint, ckpt_space, ckpt_classes)
    a = resolve_arch(arch, sp)
    mflops = count_flops(sp, a, classes)
    params_m = count_params(sp, a, classes) / 1e6
    if as_json:
        print_json({"mflops": round(mflops, 4), "params_m": round(params_m, 6), "num_classes": classes,
                    "space": sp.name})
    else:
        typer.echo(f"{mflops:.2f} MFLOPs, {params_m:.3f} M params at {classes} classes ({source})  ({a.to_json()})")


def register(app: typer.Typer) -> None:
    """Add ``space`` and ``flops`` to ``app``."""
    app.command("space")(space_cmd)
    app.command("flops")(flops_cmd)
