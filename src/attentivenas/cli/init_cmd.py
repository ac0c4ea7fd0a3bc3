"""The ``init`` command: inspect an ImageFolder and write a training config made for it, thin over
:mod:`attentivenas.data.inspect`."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import UserError
from ..io import atomic_write_text, check_output
from .common import print_json


def init_command(
    data: Path = typer.Option(..., "--data", help="ImageFolder root: DIR/train/<class>/* and DIR/val/<class>/* "
                                                  "(val/ is the test split)."),
    out: Path = typer.Option(..., "--out", "-o", help="The config file to write (YAML)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing --out."),
    json_out: bool = typer.Option(False, "--json", help="Print what was found as JSON."),
) -> None:
    """Inspect an ImageFolder (image sizes, channels, classes, balance, counts) and write a commented
    training config with safe defaults for it: attentivenas train --config OUT."""
    from ..data.inspect import config_for_folder, inspect_folder  # heavy (torchvision): loaded when it runs

    check_output(out, "file")
    if out.exists() and not force:
        raise UserError(f"--out {out} exists; pass --force to replace it")
    report = inspect_folder(data)
    atomic_write_text(out, config_for_folder(report, str(data.expanduser().resolve())))
    if json_out:
        print_json({**report.to_dict(), "config": str(out)})
        return
    for line in report.summary():
        typer.echo(line, err=True)
    typer.echo(f"config: {out} (train with: attentivenas train --config {out} --out runs/mine)")


def register(app: typer.Typer) -> None:
    """Add ``init`` to ``app``."""
    app.command("init")(init_command)
