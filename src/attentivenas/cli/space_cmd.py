"""Commands that describe the search space: ``space`` and ``flops``.

Both stay light (no torch), so ``attentivenas space`` and ``flops`` start in a fraction of a second.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from ..costs import CostModel, count_flops, count_params
from ..errors import UserError
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


#: ``flops``'s class count when neither ``--checkpoint`` nor ``--num-classes`` gives one (ImageNet's)
DEFAULT_NUM_CLASSES = 1000


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
    ckpt_space, ckpt_classes = checkpoint_classes(checkpoint) if checkpoint is not None else (None, None)
    if num_classes is not None and ckpt_classes is not None and num_classes != ckpt_classes:
        raise UserError(f"--num-classes {num_classes} differs from the {ckpt_classes} classes of --checkpoint "
                        f"{checkpoint}; give one of them")
    sp = get_space(space) if space is not None else (ckpt_space or get_space("attentivenas"))
    if space is not None and ckpt_space is not None and not sp.same_as(ckpt_space):
        raise UserError(f"--space {space} is not the space of --checkpoint {checkpoint} ('{ckpt_space.name}'); "
                        "leave --space out to use the checkpoint's")
    classes = num_classes or ckpt_classes or DEFAULT_NUM_CLASSES
    source = ("--num-classes" if num_classes is not None else f"from {checkpoint}" if ckpt_classes is not None
              else "the default; pass --checkpoint or --num-classes")
    a = resolve_arch(arch, sp)
    mflops = count_flops(sp, a, classes)
    params_m = count_params(sp, a, classes) / 1e6
    if as_json:
        print_json({"mflops": round(mflops, 4), "params_m": round(params_m, 6), "num_classes": classes,
                    "space": sp.name})
    else:
        typer.echo(f"{mflops:.2f} MFLOPs, {params_m:.3f} M params at {classes} classes ({source})  ({a.to_json()})")


def checkpoint_classes(path: Path) -> tuple[SearchSpace, int | None]:
    """The space and classifier class count a checkpoint stores (a supernet, ours or the authors', or a
    fine-tuned subnet); reading it needs torch."""
    from ..nn import is_subnet_checkpoint, read_checkpoint, supernet_weights  # heavy (torch): only with --checkpoint

    obj = read_checkpoint(path)
    if is_subnet_checkpoint(obj):
        try:
            return SearchSpace.from_dict(obj["space"]), int(obj["num_classes"])
        except (KeyError, TypeError, ValueError) as exc:
            raise UserError(f"--checkpoint {path}: the subnet checkpoint has no valid entry {exc}") from None
    _, sp, meta = supernet_weights(path)
    n = meta.get("num_classes")
    return sp, int(n) if n is not None else None


def register(app: typer.Typer) -> None:
    """Add ``space`` and ``flops`` to ``app``."""
    app.command("space")(space_cmd)
    app.command("flops")(flops_cmd)
