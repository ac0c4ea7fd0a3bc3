"""A latency table measured on a reachable device in one command (``latency build-table --runner
CMD``): the kit (:mod:`.kit`) is written, the user's command (their ssh, adb or container wrapper)
runs with ``{kit}`` and ``{timings}`` filled in, and the timings it leaves are imported
(:mod:`.device_import`) as ``latency import`` does.

The command runs in a shell in its own process group, under a time limit; on timeout the whole
group is killed. A runner that fails, hangs or leaves no or bad timings is one :class:`UserError`
line that names the failure and the runner's last non-empty stderr line; no table is written then.
"""

from __future__ import annotations

import os
import shlex
import signal
import string
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from ..config import LatencyTableConfig
from ..errors import UserError
from ..space import SearchSpace
from .device_import import import_timings
from .kit import KIT_RUNTIMES, write_kit
from .table import LatencyTable

PLACEHOLDERS = ("kit", "timings")
#: the runner's default and largest time limit (seconds)
RUNNER_TIMEOUT = 3600
MAX_RUNNER_TIMEOUT = 7 * 24 * 3600
#: the timings file's name (in the temporary folder, or in ``--kit-dir``)
TIMINGS = "timings.json"
#: seconds between the group's SIGTERM and its SIGKILL on timeout
_GRACE_S = 3.0
_LAST_CHARS = 300

Log = Callable[[str], None]


def check_runner(template: str, config: LatencyTableConfig, timeout: float, kit_dir: Path | None) -> None:
    """User errors, before any work, for a runner template, runtime, time limit or kit folder that
    cannot be used: the template's only fields are ``{kit}`` and ``{timings}``, both present."""
    try:
        fields = [(f, spec, conv) for _, f, spec, conv in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise UserError(f"--runner {template!r}: {exc}; write {{{{ and }}}} for a literal brace") from None
    for name, spec, conv in fields:
        if name not in PLACEHOLDERS or spec or conv:
            raise UserError(f"--runner has the field {{{name}{'!' + conv if conv else ''}{':' + spec if spec else ''}}}; "
                            "only {kit} and {timings} are filled in (write {{ and }} for a literal brace)")
    missing = [p for p in PLACEHOLDERS if p not in {f for f, _, _ in fields}]
    if missing:
        raise UserError(f"--runner lacks {' and '.join('{' + m + '}' for m in missing)}: the command must take the "
                        "kit folder {kit} and write the timings file {timings}")
    if config.runtime not in KIT_RUNTIMES:
        raise UserError(f"--runner times a kit on the device: --runtime must be {' or '.join(KIT_RUNTIMES)}, "
                        f"got {config.runtime!r}")
    if not 1 <= timeout <= MAX_RUNNER_TIMEOUT:
        raise UserError(f"--runner-timeout {timeout:g} is out of range: use 1..{MAX_RUNNER_TIMEOUT} seconds")
    if kit_dir is not None and kit_dir.exists() and (not kit_dir.is_dir() or any(kit_dir.iterdir())):
        raise UserError(f"--kit-dir {kit_dir} exists and is not an empty folder; choose a new path")


def fill_runner(template: str, kit: Path, timings: Path) -> str:
    """The shell command of ``template`` with the absolute kit folder and timings path, shell-quoted."""
    return template.format(kit=shlex.quote(str(kit.absolute())), timings=shlex.quote(str(timings.absolute())))


def table_on_device(space: SearchSpace, config: LatencyTableConfig, template: str, *, timeout: float | None = None,
                    kit_dir: Path | None = None, device_name: str | None = None, progress: bool = True,
                    log: Log | None = None) -> LatencyTable:
    """Write the kit (to ``kit_dir``, kept, with the timings in it; else a temporary folder), run the
    command ``template`` on it (at most ``timeout`` seconds, default :data:`RUNNER_TIMEOUT`), and
    import the timings into a table (not saved: the caller writes it)."""
    timeout = RUNNER_TIMEOUT if timeout is None else timeout
    check_runner(template, config, timeout, kit_dir)
    say = log or (lambda _: None)
    with tempfile.TemporaryDirectory(prefix="attentivenas-kit.", ignore_cleanup_errors=True) as tmp:
        kit = kit_dir if kit_dir is not None else Path(tmp) / "kit"
        write_kit(space, config, kit, progress=progress, log=say)
        timings = kit / TIMINGS if kit_dir is not None else Path(tmp) / TIMINGS
        command = fill_runner(template, kit, timings)
        kept = f" (the kit is kept in {kit_dir})" if kit_dir is not None else ""
        say(f"runner: {command} (time limit {timeout:g} s)")
        start = time.monotonic()
        last = run_runner(command, timeout, say, kept)
        if not timings.is_file():
            raise UserError(f"--runner exited 0 but wrote no timings file (its {{timings}}, {timings}){kept}"
                            f"{_last_line(last)}")
        say(f"runner finished in {time.monotonic() - start:.1f} s; importing {timings}")
        try:
            return import_timings(kit, timings, device_name)
        except UserError as exc:
            raise UserError(f"--runner left bad timings: {exc}{kept}{_last_line(last)}") from None


def run_runner(command: str, timeout: float, log: Log, kept: str = "") -> str:
    """Run ``command`` in a shell in its own process group, its output lines passed to ``log``;
    returns its last non-empty stderr line. A non-zero exit or a run past ``timeout`` seconds (the
    whole group killed) is one :class:`UserError` line with that stderr line."""
    proc = subprocess.Popen(command, shell=True, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,  # noqa: S602
                            stderr=subprocess.PIPE, start_new_session=True, text=True, errors="replace")
    last = [""]
    readers = [threading.Thread(target=_forward, args=(proc.stdout, log, None), daemon=True),
               threading.Thread(target=_forward, args=(proc.stderr, log, last), daemon=True)]
    for r in readers:
        r.start()
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        _join(readers)
        raise UserError(f"--runner timed out after {timeout:g} s (--runner-timeout); its process group was "
                        f"killed{kept}{_last_line(last[0])}") from None
    except BaseException:
        _kill_group(proc)
        raise
    _join(readers)
    if code != 0:
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        raise UserError(f"--runner {how}{kept}{_last_line(last[0])}")
    return last[0]


def _forward(stream: IO[str], log: Log, last: list[str] | None) -> None:
    """Pass each line of ``stream`` to ``log`` (indented); keep the last non-empty one in ``last``."""
    for line in stream:
        text = line.rstrip("\r\n")
        if text.strip():
            log(f"  | {text}")
            if last is not None:
                last[0] = text.strip()


def _join(readers: list[threading.Thread]) -> None:
    """Wait briefly for the output: a process that left the group may still hold the pipes."""
    for r in readers:
        r.join(timeout=2.0)


def _kill_group(proc: subprocess.Popen[str]) -> None:
    """SIGTERM the runner's process group, then SIGKILL whatever is left of it after a grace period."""
    for sig, wait in ((signal.SIGTERM, _GRACE_S), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        if sig == signal.SIGTERM:
            time.sleep(0.1)  # the shell died first; its children get the same signal, then the KILL sweep


def _last_line(line: str) -> str:
    """``; its last stderr line: ...`` (shortened), or nothing when it printed none."""
    if not line:
        return "; it printed nothing on stderr"
    return f"; its last stderr line: {line if len(line) <= _LAST_CHARS else line[:_LAST_CHARS] + '...'}"
