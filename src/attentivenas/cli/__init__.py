"""The ``attentivenas`` command. Thin: parse, call the library, print.

Lives here: one module per topic, named ``<topic>_cmd`` (``space_cmd``: space, flops;
``export_cmd``; ``train_cmd``; ``finetune_cmd``; ``evaluate_cmd``; ``latency_cmd``: measure, build-table, refit;
``latency_kit_cmd``: latency kit, import; ``predictor_cmd``; ``search_cmd``;
``pipeline_cmd``: quickstart; ``init_cmd``: init), each adding its commands with ``register(app)``, and ``common``
(option texts, JSON output). User errors print one line on stderr and exit with 2.

May import: everything below it: ``attentivenas`` (its version), ``space``, ``costs``, ``nn``, ``runtimes``, ``latency``, ``export``,
``accuracy``, ``train``, ``search``, ``pipeline``, ``data``, ``config``, ``rng``, ``devices``, ``host_memory``,
``distributed``, ``io``, ``progress``, ``errors``; the torch-based layers are imported inside the commands
(heavy), so ``attentivenas --help``, ``space`` and ``flops`` start fast.
"""

from __future__ import annotations

import sys
import warnings

import typer

from .. import __version__
from ..errors import JobFailure, UserError
from ..io import USER_ERRNOS

try:  # a typer that carries its own copy of click
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - an older typer, on click
    from click import exceptions as click_errors  # type: ignore[no-redef]

from . import (
    evaluate_cmd,
    export_cmd,
    finetune_cmd,
    init_cmd,
    latency_cmd,
    pipeline_cmd,
    predictor_cmd,
    sampling_cmd,
    search_cmd,
    space_cmd,
    train_cmd,
)

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help, wrapped to the terminal (80 columns when piped), no boxes
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


# Each ``cli/<topic>_cmd.py`` adds its commands through ``register(app)``.
for _module in (space_cmd, export_cmd, train_cmd, finetune_cmd, evaluate_cmd, latency_cmd, predictor_cmd, search_cmd,
                pipeline_cmd, sampling_cmd, init_cmd):
    _module.register(app)


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors (and unknown flags, bad flag values) print one line on stderr and exit
    with code 2; warnings are one line each."""
    formatwarning = warnings.formatwarning
    warnings.formatwarning = _warning_line
    try:
        code = app(args=argv, prog_name="attentivenas", standalone_mode=False)
        if isinstance(code, int) and code:  # typer.Exit(code): returned, not raised, outside standalone mode
            sys.exit(code)
    except click_errors.NoArgsIsHelpError as exc:  # a group without its command: its help
        exc.show()
        sys.exit(exc.exit_code)
    except click_errors.UsageError as exc:  # unknown flag or command, bad flag value, missing argument
        where = exc.ctx.command_path if exc.ctx is not None else "attentivenas"
        print(f"error: {_one_line(exc.format_message()).rstrip('.')}; try '{where} --help'", file=sys.stderr)
        sys.exit(exc.exit_code)
    except click_errors.ClickException as exc:
        print(f"error: {_one_line(exc.format_message())}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except typer.Abort:
        print("aborted", file=sys.stderr)
        sys.exit(1)
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
    finally:
        warnings.formatwarning = formatwarning


def _warning_line(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  line: str | None = None) -> str:
    """A warning as ``warning: message``, one line (Python's default adds the file, line number,
    category and the source line that warned)."""
    return f"warning: {_one_line(str(message))}\n"


def _one_line(message: str) -> str:
    """The message itself: a user error raised in a data-loader worker comes back wrapped in the
    worker's traceback, whose last line is the original ``...UserError: message``."""
    lines = [ln for ln in message.splitlines() if ln.strip()]
    if len(lines) > 1 and lines[0].startswith("Caught "):
        return lines[-1].split("Error: ", 1)[-1]
    return " ".join(ln.strip() for ln in lines)

