"""Commands that describe the search space: ``space`` and ``flops``.

Both stay light (no torch), so ``attentivenas space`` and ``flops`` start in a fraction of a second.
"""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from ..costs import CostModel, count_flops, count_params
from ..space import SearchSpace, get_space, resolve_arch
from .common import ARCH_HELP, SPACE_HELP, print_json


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


def register(app: typer.Typer) -> None:
    """Add ``space`` and ``flops`` to ``app``."""
    app.command("space")(space_cmd)
    app.command("flops")(flops_cmd)
