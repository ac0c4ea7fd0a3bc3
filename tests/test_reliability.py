"""Reliability: one run per output folder, checkpoints that prove themselves, recoverable divergence,
tidy restarts, and one line with exit code 2 for user errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from attentivenas.errors import UserError
from attentivenas.io import OutputLock
from attentivenas.nn import Supernet, save_supernet
from attentivenas.space import TINY_SPACE

from .cli_helpers import run_cli

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "configs" / "quickstart.yaml")


@pytest.fixture()
def holder(tmp_path: Path):
    """Another process holding the lock of ``tmp_path / 'run'`` (killed at the end)."""
    folder = tmp_path / "run"
    code = ("import sys, time; from attentivenas.io import OutputLock; OutputLock(sys.argv[1]).acquire(); "
            "print('locked', flush=True); time.sleep(120)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    yield folder, proc
    proc.kill()
    proc.wait()


def test_lock_names_the_holder_and_dies_with_it(holder) -> None:
    folder, proc = holder
    with pytest.raises(UserError, match=rf"run folder {folder} is in use by another attentivenas process \(pid {proc.pid}\)"):
        OutputLock(folder, "run folder").acquire()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with OutputLock(folder):  # an OS lock: nothing stale is left behind
        with OutputLock(folder):  # re-entrant in one process
            pass


@pytest.mark.parametrize("command", ["train", "search", "quickstart"])
def test_a_second_process_on_the_same_folder_gets_one_line(holder, tmp_path: Path, command: str) -> None:
    folder, proc = holder
    args = {
        "train": ["train", "--config", QUICK, "--out", str(folder), "runtime.max_steps=1"],
        "search": ["search", "--predictor", str(tmp_path / "p.json"), "--out", str(folder)],
        "quickstart": ["quickstart", "--out", str(folder)],
    }[command]
    r = run_cli(*args)
    assert r.code == 2 and f"is in use by another attentivenas process (pid {proc.pid})" in r.err
    assert r.err.count("\n") == 1
    assert not (folder / "checkpoints").exists() and not (folder / "pareto.json").exists()


def test_predictor_build_locks_its_dataset_file(tmp_path: Path) -> None:
    torch.manual_seed(0)
    ckpt = save_supernet(tmp_path / "tiny.pt", Supernet(TINY_SPACE, 10))
    data = tmp_path / "archs.jsonl"
    with OutputLock(tmp_path, "dataset file", name=".archs.jsonl.lock"):
        code = ("import sys; from attentivenas.cli import main; main(sys.argv[1:])")
        r = subprocess.run([sys.executable, "-c", code, "predictor", "build", "--checkpoint", str(ckpt), "--out",
                            str(data), "--num-archs", "2", "--data", "digits", "--calib-batches", "1", "--device",
                            "cpu"], capture_output=True, text=True)
    assert r.returncode == 2 and f"dataset file {data} is in use by another attentivenas process" in r.stderr
    assert not data.exists()


@pytest.mark.parametrize("command", ["train", "search", "quickstart"])
def test_out_pointing_at_a_file_is_one_line(tmp_path: Path, command: str) -> None:
    target = tmp_path / "a_file"
    target.write_text("x")
    args = {
        "train": ["train", "--config", QUICK, "--out", str(target)],
        "search": ["search", "--predictor", str(tmp_path / "p.json"), "--out", str(target)],
        "quickstart": ["quickstart", "--out", str(target)],
    }[command]
    r = run_cli(*args)
    assert r.code == 2 and f"{target} exists and is not a folder" in r.err and r.err.count("\n") == 1
    assert target.read_text() == "x"


def test_json_stays_strict(tmp_path: Path) -> None:
    from attentivenas.io import atomic_write_json, dumps_json

    assert dumps_json({"a": float("nan"), "b": [float("inf"), 1.5]}) == '{"a": null, "b": [null, 1.5]}'
    path = atomic_write_json(tmp_path / "x.json", {"v": float("-inf")})
    assert json.loads(path.read_text()) == {"v": None}
