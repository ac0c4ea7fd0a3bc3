"""Resumable measurement steps for the study scripts (``fashion_10k_study.py``, ``transfer_study.py``,
``recipe_rows.py``): each step runs one command and writes one JSON record.

A record holds the exact command, its working folder, the seed, the wall time, the machine and its
load average before and after, the command's JSON output (or the files it wrote, as the caller
reads them) and the sha256 of every checkpoint the caller names. A step whose record exists and
says ``"done": true`` is skipped on the next invocation, so a killed study loses at most the step
it was in (the commands themselves resume with ``--resume auto`` where they can).

Imported by the scripts of ``benchmarks/`` (``sys.path`` holds the script's folder when it runs).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from attentivenas.export.folders import file_sha256
from attentivenas.io import atomic_write_json
from timing import load_average, machine

ROOT = Path(__file__).resolve().parents[1]
CLI = str(ROOT / ".venv" / "bin" / "attentivenas")
#: what every record says about the machine it ran on
LOAD_NOTE = ("2-core CPU shared with other jobs (other helpers' tests and a second measurement process); "
             "one thread per process (OMP_NUM_THREADS=1); wall times move with that load")


#: a file's sha256 (hex), as export folders record it
sha256 = file_sha256


def done(record: Path) -> dict[str, Any] | None:
    """The finished record at ``record`` (None: absent, unreadable or not finished)."""
    try:
        obj = json.loads(record.read_text())
    except (OSError, ValueError):
        return None
    return obj if obj.get("done") else None


def run_step(record: Path, cmd: Sequence[str], *, seed: int | None, log: Path,
             collect: Callable[[str], dict[str, Any]] | None = None, extra: dict[str, Any] | None = None,
             threads: int = 1) -> dict[str, Any]:
    """Run ``cmd`` (from the repository root, ``threads`` threads) unless ``record`` is finished; write
    the record: the command, seed, wall time, machine and load, ``collect(stdout)`` (default: stdout
    parsed as JSON when it is, else its last 4,000 characters) and ``extra``. Raises on a failed command
    (its stderr is in ``log``)."""
    old = done(record)
    if old is not None:
        print(f"skip (done): {record}", flush=True)
        return old
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1")
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"run: {shlex.join(cmd)}", flush=True)
    load_start, t0 = load_average(), time.perf_counter()
    with open(log, "a") as err:
        err.write(f"\n$ {shlex.join(cmd)}\n")
        err.flush()
        proc = subprocess.run(list(cmd), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=err, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"failed (exit {proc.returncode}): {shlex.join(cmd)}; see {log}")
    out = collect(proc.stdout) if collect is not None else _parse(proc.stdout)
    obj = {"command": shlex.join(cmd), "cwd": str(ROOT), "seed": seed, "threads": threads,
           "wall_s": round(wall, 1), "machine": machine(), "load_average": {"start": load_start, "end": load_average()},
           "load_note": LOAD_NOTE, "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "output": out, **(extra or {}), "done": True}
    atomic_write_json(record, obj)
    return obj


def _parse(stdout: str) -> Any:
    text = stdout.strip()
    try:
        return json.loads(text)
    except ValueError:
        pass
    for line in reversed(text.splitlines()):  # a command that prints progress, then one JSON line
        try:
            return json.loads(line)
        except ValueError:
            continue
    return {"stdout_tail": text[-4000:]}


def python() -> str:
    """The interpreter running this script (the project's virtualenv)."""
    return sys.executable


def evaluate_ends(ckpt: Path, name: str, work: Path, seed: int, log: Path, digest: str,
                  extra_args: Sequence[str] = ()) -> dict[str, Any]:
    """``attentivenas evaluate`` of the min and max subnet on the hold-out and the test split, one record each
    (``WORK/records/NAME-eval-ARCH-SPLIT.json``), keyed ``ARCH-SPLIT``."""
    out = {}
    for arch in ("min", "max"):
        for split in ("holdout", "test"):
            out[f"{arch}-{split}"] = run_step(
                work / "records" / f"{name}-eval-{arch}-{split}.json",
                [CLI, "evaluate", "--checkpoint", str(ckpt), "--arch", arch, "--split", split, *extra_args,
                 "--threads", "1", "--json"], seed=seed, log=log, extra={"checkpoint_sha256": digest})
    return out
