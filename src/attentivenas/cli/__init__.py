"""The ``attentivenas`` command. Thin: parse, call the library, print.

Lives here: one module per topic (``foundation``: space, flops, export; ``train_cmd``;
``evaluate_cmd``; ``latency_cmd``; ``predictor_cmd``; ``search_cmd``; ``pipeline_cmd``: quickstart),
each adding its commands with ``register(app)``, and ``common`` (option texts, JSON output). User
errors print one line on stderr and exit with 2.

May import: everything below it; the torch-based layers are imported inside the commands (heavy),
so ``attentivenas --help``, ``space`` and ``flops`` start fast.
"""

from __future__ import annotations

import sys

import typer

from .. import __version__
from ..errors import JobFailure, UserError
from ..io import USER_ERRNOS
from . import evaluate_cmd, foundation, latency_cmd, pipeline_cmd, predictor_cmd, search_cmd, train_cmd

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Two-stage neural architecture search with attentive sampling (AttentiveNAS).",
)



def _version(value: bool) -> None:
    if value:
        typer.echo(f"attentivenas {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Two-stage neural architecture search with attentive sampling (AttentiveNAS)."""


# Each ``cli/<topic>.py`` adds its commands through ``register(app)``.
for _module in (foundation, train_cmd, evaluate_cmd, latency_cmd, predictor_cmd, search_cmd, pipeline_cmd):
    _module.register(app)


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors print one line on stderr and exit with code 2."""
    try:
        app(args=argv, prog_name="attentivenas")
    except UserError as exc:
        print(f"error: {_one_line(str(exc))}", file=sys.stderr)
        sys.exit(2)
    except JobFailure as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    except OSError as exc:
        if exc.errno not in USER_ERRNOS:
            raise
        where = f": {exc.filename}" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


def _one_line(message: str) -> str:
    """The message itself: a user error raised in a data-loader worker comes back wrapped in the
    worker's traceback, whose last line is the original ``...UserError: message``."""
    lines = [ln for ln in message.splitlines() if ln.strip()]
    if len(lines) > 1 and lines[0].startswith("Caught "):
        return lines[-1].split("Error: ", 1)[-1]
    return " ".join(ln.strip() for ln in lines)

