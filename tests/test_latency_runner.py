"""`latency build-table --runner CMD`: the kit written, the user's command run on it (here the kit's
runner on the stand-in device of tests/test_latency_kit.py), the timings imported; a runner that
fails, hangs, writes nothing or bad timings is one line and exit 2, and --out is written only when
complete."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
import sysconfig
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("onnxruntime")

from attentivenas.latency import LatencyTable, device_run  # noqa: E402
from attentivenas.latency.kit import MANIFEST  # noqa: E402
from tests.cli_helpers import run_cli  # noqa: E402
from tests.synthetic import MICRO_SPACE  # noqa: E402
from tests.test_latency_kit import STAND_IN  # noqa: E402

#: the one kit setting of these tests: the micro space (36 programs), one calibration and one held-out subnet
FLAGS = ("--runtime", "onnxruntime", "--num-classes", "10", "--calibration-archs", "1", "--holdout-archs", "1",
         "--warmup", "0", "--repeats", "2", "--passes", "2")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the micro space as a YAML file and the stand-in wrapper."""
    root = tmp_path_factory.mktemp("runner")
    (root / "micro.yaml").write_text(json.dumps({"supernet_config": MICRO_SPACE.to_supernet_config()}))
    (root / "stand_in.py").write_text(STAND_IN)
    return root


def _build(root: Path, out: Path, runner: str, *extra: str) -> Any:
    return run_cli("latency", "build-table", "--space", str(root / "micro.yaml"), *FLAGS, "--out", str(out),
                   "--runner", runner, *extra)


@pytest.fixture(scope="module")
def built(root: Path) -> tuple[Path, Path, Any]:
    """A table timed by the kit's runner on the stand-in (kit kept in --kit-dir), and the CLI result."""
    python, wrapper, packages = (shlex.quote(str(p)) for p in (sys.executable, root / "stand_in.py",
                                                                  sysconfig.get_paths()["purelib"]))
    runner = (f"STAND_IN_BLOCK=attentivenas,torch OMP_NUM_THREADS=1 {python} -I -S {wrapper} {packages} "
              "{kit}/runner.py --out {timings}")
    out = root / "table.json"
    res = _build(root, out, runner, "--kit-dir", str(root / "kit"), "--device-name", "stand-in", "--json")
    return out, root / "kit", res


def test_runner_times_the_kit_and_the_table_is_written(built: tuple[Path, Path, Any]) -> None:
    out, kit, res = built
    assert res.code == 0, res.err
    assert "  | wrote " in res.err and "runner finished" in res.err  # the runner's output is passed on
    info = json.loads(res.out)
    tab = LatencyTable.load(out)
    man = json.loads((kit / MANIFEST).read_text())
    assert tab.device_name == "stand-in" and tab.runtime == "onnxruntime" and tab.meta["kit_id"] == man["kit_id"]
    assert len(tab.entries) == sum(it["measures"] == "op" for it in man["items"]) and tab.meta["holdout_archs"] == 1
    assert not tab.missing_ops(MICRO_SPACE, 10) and tab.predict(MICRO_SPACE, MICRO_SPACE.min_arch()) > 0
    again = run_cli("latency", "import", str(kit), str(kit / device_run.TIMINGS), "--out", str(kit.parent / "t2.json"),
                    "--device-name", "stand-in", "--json")
    assert again.code == 0, again.err
    assert {k: v for k, v in json.loads(again.out).items() if k != "path"} == \
        {k: v for k, v in info.items() if k != "path"}  # --json prints what `latency import` prints


@pytest.fixture
def cheap_kit(built: tuple[Path, Path, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Failing runners need no fresh export: the kit is the built one, copied (manifest, programs, runner)."""
    kit = built[1]

    def copy_kit(space: Any, config: Any, out: Path, progress: bool = True, log: Any = None) -> dict[str, Any]:
        shutil.copytree(kit, out, ignore=shutil.ignore_patterns(device_run.TIMINGS))
        return json.loads((out / MANIFEST).read_text())

    monkeypatch.setattr(device_run, "write_kit", copy_kit)


FAILING = {
    "exit 3": ("true {kit} {timings}; echo progress; echo boom on the board >&2; echo >&2; exit 3",
               ["exited with code 3", "its last stderr line: boom on the board"]),
    "no timings": ("true {kit} {timings}; echo quiet", ["wrote no timings file", "printed nothing on stderr"]),
    "bad timings": ("echo '{{\"format\": \"other\"}}' > {timings}; true {kit}",
                    ["left bad timings", "is not a latency timings file"]),
}


@pytest.mark.parametrize("case", sorted(FAILING))
def test_failing_runner_is_one_line_and_writes_no_table(root: Path, tmp_path: Path, cheap_kit: None,
                                                        case: str) -> None:
    runner, messages = FAILING[case]
    out = tmp_path / "table.json"
    res = _build(root, out, runner)
    assert res.code == 2, (case, res.out, res.err)
    last = res.err.strip().splitlines()[-1]
    assert all(m in last for m in messages), res.err
    assert not out.exists() and res.out == ""


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, killed and waiting for its reaper, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def test_hanging_runner_is_killed_with_its_group(root: Path, tmp_path: Path, cheap_kit: None) -> None:
    pidfile = tmp_path / "pid"
    runner = f"true {{kit}} {{timings}}; echo started >&2; sleep 60 & echo $! > {shlex.quote(str(pidfile))}; wait"
    out = tmp_path / "table.json"
    start = time.monotonic()
    res = _build(root, out, runner, "--runner-timeout", "2")
    assert res.code == 2, res.err
    last = res.err.strip().splitlines()[-1]
    assert "timed out after 2 s" in last and "process group was killed" in last and "started" in last, res.err
    assert time.monotonic() - start < 15 and not out.exists()
    pid = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)  # the background child of the shell was killed too


REFUSED = {
    "no timings field": ("python3 {kit}/runner.py", (), "lacks {timings}"),
    "no kit field": ("cp /dev/null {timings}", (), "lacks {kit}"),
    "another field": ("ssh {host} {kit} {timings}", (), "{host}"),
    "a format spec": ("run {kit:>9} {timings}", (), "only {kit} and {timings}"),
    "a lone brace": ("run {kit} {timings} }", (), "literal brace"),
    "not a kit runtime": ("run {kit} {timings}", ("--runtime", "torch"), "--runtime must be onnxruntime"),
    "timeout out of range": ("run {kit} {timings}", ("--runner-timeout", "0"), "--runner-timeout 0 is out of range"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_unusable_runner_is_refused_before_any_kit_is_written(root: Path, tmp_path: Path, case: str) -> None:
    runner, extra, message = REFUSED[case]
    out, kit = tmp_path / "table.json", tmp_path / "kit"
    res = _build(root, out, runner, "--kit-dir", str(kit), *extra)
    assert res.code == 2, (case, res.err)
    assert message in res.err and len(res.err.strip().splitlines()) == 1, res.err
    assert not out.exists() and not kit.exists()


def test_kit_dir_needs_a_runner(root: Path, tmp_path: Path) -> None:
    res = run_cli("latency", "build-table", "--space", str(root / "micro.yaml"), *FLAGS, "--out",
                  str(tmp_path / "t.json"), "--kit-dir", str(tmp_path / "kit"))
    assert res.code == 2 and "only with --runner" in res.err and len(res.err.strip().splitlines()) == 1, res.err


def test_placeholders_are_filled_shell_quoted(tmp_path: Path) -> None:
    odd = tmp_path / "a b; echo x"
    cmd = device_run.fill_runner("ls {kit} > {timings}", odd / "kit", odd / "t.json")
    assert shlex.split(cmd) == ["ls", str(odd / "kit"), ">", str(odd / "t.json")]


def test_device_name_names_a_local_build_too(root: Path, tmp_path: Path) -> None:
    out = tmp_path / "t.json"
    res = run_cli("latency", "build-table", "--space", str(root / "micro.yaml"), "--num-classes", "10", "--archs", "1",
                  "--calibration-archs", "0", "--holdout-archs", "0", "--warmup", "0", "--repeats", "1",
                  "--no-drift-correction", "--out", str(out), "--device-name", "my box")
    assert res.code == 0, res.err
    assert LatencyTable.load(out).device_name == "my box"
