"""Every command that writes refuses an ``--out`` it cannot write in one line, exit 2, before any work:
a folder where a file is asked for, a file where a folder is, a path under a file, a place that
refuses new files (``/proc``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from attentivenas.errors import UserError
from attentivenas.io import check_output
from tests.cli_helpers import run_cli

# (command line before --out, what --out is: file or dir); the checkpoint does not exist: the --out
# check comes first, so the message must be about --out, never about the missing checkpoint
FILE_OUTPUTS = [
    ["export", "--checkpoint", "missing.pt", "--arch", "min", "--format", "torch-export"],
    ["predictor", "build", "--checkpoint", "missing.pt"],
    ["predictor", "fit", "--dataset", "missing.jsonl"],
    ["latency", "build-table", "--space", "tiny"],
    ["latency", "refit", "--table", "missing.json"],
]
DIR_OUTPUTS = [
    ["search", "--checkpoint", "missing.pt"],
    ["train", "--config", "missing.yaml"],
    ["quickstart"],
    ["export", "--checkpoint", "missing.pt", "--pareto", "missing.json", "--format", "safetensors"],
    ["export", "--checkpoint", "missing.pt", "--arch", "min", "--format", "safetensors"],  # a weights folder
]


def _ids(cases: list[list[str]]) -> list[str]:
    return [" ".join(c[:2]) for c in cases]


def _one_line_about_out(result, *words: str) -> None:
    assert result.code == 2, result
    lines = [ln for ln in result.err.splitlines() if ln.strip()]
    assert len(lines) == 1, result.err
    assert "--out" in lines[0] and "Traceback" not in result.err
    for w in words:
        assert w in lines[0], lines[0]


@pytest.mark.parametrize("args", FILE_OUTPUTS, ids=_ids(FILE_OUTPUTS))
def test_a_file_output_that_is_a_folder_is_refused(args: list[str], tmp_path: Path) -> None:
    _one_line_about_out(run_cli(*args, "--out", str(tmp_path)), "is a folder")


@pytest.mark.parametrize("args", DIR_OUTPUTS, ids=_ids(DIR_OUTPUTS))
def test_a_folder_output_that_is_a_file_is_refused(args: list[str], tmp_path: Path) -> None:
    f = tmp_path / "taken"
    f.write_text("x")
    _one_line_about_out(run_cli(*args, "--out", str(f)), "exists and is not a folder")
    assert f.read_text() == "x"


@pytest.mark.parametrize("args", FILE_OUTPUTS + DIR_OUTPUTS, ids=_ids(FILE_OUTPUTS + DIR_OUTPUTS))
def test_an_output_under_a_file_is_refused(args: list[str], tmp_path: Path) -> None:
    f = tmp_path / "taken"
    f.write_text("x")
    _one_line_about_out(run_cli(*args, "--out", str(f / "sub" / "out.json")), "which is a file")


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs /proc")
@pytest.mark.parametrize("args", FILE_OUTPUTS + DIR_OUTPUTS, ids=_ids(FILE_OUTPUTS + DIR_OUTPUTS))
def test_an_output_in_proc_is_refused(args: list[str]) -> None:
    _one_line_about_out(run_cli(*args, "--out", "/proc/attentivenas-out/x.json"), "refuses new files")


def test_check_output_leaves_nothing_behind_and_accepts_new_paths(tmp_path: Path) -> None:
    assert check_output(tmp_path / "new" / "deeper" / "t.json") == tmp_path / "new" / "deeper" / "t.json"
    assert check_output(tmp_path / "run", "dir") == tmp_path / "run"
    assert check_output(tmp_path, "dir") == tmp_path
    assert list(tmp_path.iterdir()) == []  # the probe file is gone and nothing was created
    with pytest.raises(UserError, match="is a folder"):
        check_output(tmp_path)
