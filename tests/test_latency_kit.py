"""The latency kit (`latency kit`) timed by its runner on a stand-in device, an interpreter where
attentivenas and torch cannot be imported, and its timings imported (`latency import`) into a table;
bad kits and timings refused in one line with exit 2, the table written only when complete."""

from __future__ import annotations

import ast
import hashlib
import json
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime")

from attentivenas.config import LatencyTableConfig  # noqa: E402
from attentivenas.latency import LatencyTable  # noqa: E402
from attentivenas.latency.device_import import import_timings  # noqa: E402
from attentivenas.latency.fit import stored_subnets, table_error  # noqa: E402
from attentivenas.latency.kit import MANIFEST, kit_bytes, write_kit  # noqa: E402
from attentivenas.latency.table import check_table_precision  # noqa: E402
from attentivenas.space import get_space  # noqa: E402
from tests.cli_helpers import run_cli  # noqa: E402
from tests.synthetic import MICRO_SPACE  # noqa: E402

#: runs a script with the venv's packages on the path but the packages of STAND_IN_BLOCK refused; with
#: STAND_IN_SLOWER=k every ONNX Runtime inference call runs k times: a device k times slower per call
STAND_IN = """
import os, runpy, sys
from importlib.abc import MetaPathFinder
BLOCKED = os.environ["STAND_IN_BLOCK"].split(",")
class Block(MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError("stand-in device: " + name + " is not installed")
        return None
sys.meta_path.insert(0, Block())
sys.path.append(sys.argv[1])
k = int(os.environ.get("STAND_IN_SLOWER", "1"))
if k > 1:
    import onnxruntime
    run = onnxruntime.InferenceSession.run
    def slower(self, *args, **kwargs):
        for _ in range(k - 1):
            run(self, *args, **kwargs)
        return run(self, *args, **kwargs)
    onnxruntime.InferenceSession.run = slower
script = sys.argv[2]
sys.argv = [script, *sys.argv[3:]]
runpy.run_path(script, run_name="__main__")
"""
PROBE = """
import importlib
for name in ("attentivenas", "torch", "numpy", "onnxruntime"):
    try:
        importlib.import_module(name)
        print(name, "ok")
    except ImportError:
        print(name, "missing")
"""


def _stand_in(tmp: Path, script: Path, *args: str, threads: str = "1", block: tuple[str, ...] = ("attentivenas", "torch"),
              slower: int = 1) -> subprocess.CompletedProcess[str]:
    """``script`` run on a stand-in device: an isolated interpreter where ``block`` do not import,
    each ONNX Runtime call ``slower`` times as costly."""
    wrapper = tmp / "stand_in.py"
    wrapper.write_text(STAND_IN)
    env = {"OMP_NUM_THREADS": threads, "PATH": "/usr/bin:/bin", "STAND_IN_BLOCK": ",".join(block),
           "STAND_IN_SLOWER": str(slower)}
    return subprocess.run([sys.executable, "-I", "-S", str(wrapper), sysconfig.get_paths()["purelib"], str(script),
                           *args], capture_output=True, text=True, env=env, timeout=300, check=False)


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A kit of the whole tiny space and the timings its runner wrote on the stand-in."""
    root = tmp_path_factory.mktemp("kit")
    config = LatencyTableConfig(runtime="onnxruntime", calibration_archs=2, holdout_archs=2, warmup=1,
                                repeats=3, passes=2, num_classes=10)
    write_kit(get_space("tiny"), config, root / "kit", progress=False)
    res = _stand_in(root, root / "kit" / "runner.py", "--out", str(root / "timings.json"))
    assert res.returncode == 0, res.stderr
    return root / "kit", root / "timings.json"


def test_stand_in_refuses_attentivenas_and_torch_only(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    res = _stand_in(tmp_path, probe)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["attentivenas", "missing", "torch", "missing", "numpy", "ok", "onnxruntime", "ok"]


def test_kit_holds_programs_manifest_runner_and_readme(kit: tuple[Path, Path]) -> None:
    folder, _ = kit
    man = json.loads((folder / MANIFEST).read_text())
    assert sorted(p.name for p in folder.iterdir()) == sorted(["README.md", MANIFEST, "items", "runner.py"])
    files = {p.relative_to(folder).as_posix() for p in (folder / "items").iterdir()}
    assert files == {it["file"] for it in man["items"]}
    for it in man["items"][:5] + man["items"][-3:]:
        assert hashlib.sha256((folder / it["file"]).read_bytes()).hexdigest() == it["sha256"]
        assert it["dtype"] == "float32" and it["input_shape"][0] == 1
    kinds = [it["measures"] for it in man["items"]]
    assert kinds.count("calibration") == 2 and kinds.count("holdout") == 2 and kinds.count("reference") == 1
    assert kinds.count("call") == 1 and kinds.count("op") == len(kinds) - 6
    tree = ast.parse((folder / "runner.py").read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    # torch only for ExecuTorch, whose Python runtime needs it: this kit's runner ran where torch does not import
    assert imported <= set(sys.stdlib_module_names) | {"numpy", "onnxruntime", "executorch", "torch"}
    assert "runner.py" in (folder / "README.md").read_text() and man["kit_id"] in (folder / "README.md").read_text()
    assert kit_bytes(folder) > sum((folder / it["file"]).stat().st_size for it in man["items"])


def test_runner_timings_import_into_a_table(kit: tuple[Path, Path], tmp_path: Path) -> None:
    folder, timings = kit
    t = json.loads(timings.read_text())
    man = json.loads((folder / MANIFEST).read_text())
    assert t["kit_id"] == man["kit_id"] and t["threads"] == 1 and t["device"]["os"] and t["device"]["cpu"]
    assert len(t["times"]) == len(man["items"]) - 1 and all(len(v) == 2 for v in t["times"].values())
    out = tmp_path / "table.json"
    r = run_cli("latency", "import", str(folder), str(timings), "--out", str(out), "--device-name", "stand-in")
    assert r.code == 0, r.err
    assert "held-out subnets" in r.out
    tab = LatencyTable.load(out)
    assert tab.runtime == "onnxruntime" and tab.device_name == "stand-in" and tab.threads == 1 and tab.batch == 1
    assert tab.meta["kit_id"] == man["kit_id"] and tab.meta["holdout_archs"] == 2 and tab.call_ms > 0
    assert tab.meta["drift_reference"]["typical_ms"] > 0
    space = get_space("tiny")
    assert len(tab.entries) == sum(it["measures"] == "op" for it in man["items"])
    assert tab.predict(space, space.min_arch()) > 0
    assert not tab.missing_ops(space, 10) and tab.meta["space_range"]["max_ms"] > 0  # it can drive a search
    r = run_cli("latency", "measure", "--arch", "min", "--space", "tiny", "--runtime", "onnxruntime", "--threads",
                "1", "--num-classes", "10", "--repeats", "2", "--warmup", "0", "--table", str(out), "--json")
    assert r.code == 0 and json.loads(r.out)["predicted_ms"] > 0, r.err
    same = import_timings(folder, timings, "stand-in")
    assert same.entries == tab.entries  # the import is a pure function of the kit and the timings


def _copy(kit: tuple[Path, Path], tmp: Path) -> tuple[Path, Path, dict, dict]:
    folder = shutil.copytree(kit[0], tmp / "kit")
    timings = shutil.copy(kit[1], tmp / "timings.json")
    return Path(folder), Path(timings), json.loads((folder / MANIFEST).read_text()), json.loads(kit[1].read_text())


def _set_time(t: dict, value: float) -> None:
    t["times"][next(iter(t["times"]))][0]["ms"] = value


BAD = {
    "edited program": ("kit", lambda folder, man, t: (folder / man["items"][0]["file"]).write_bytes(b"x"),
                       "does not match its sha256"),
    "missing item": ("t", lambda folder, man, t: t["times"].pop(next(iter(t["times"]))), "lacks 1 item"),
    "extra item": ("t", lambda folder, man, t: t["times"].update(extra=[{"ms": 1.0}] * 2), "not in the kit"),
    "negative time": ("t", lambda folder, man, t: _set_time(t, -1.0), "a time must be"),
    "zero time": ("t", lambda folder, man, t: _set_time(t, 0.0), "a time must be"),
    "nan time": ("t", lambda folder, man, t: _set_time(t, float("nan")), "timings file"),
    "absurd time": ("t", lambda folder, man, t: _set_time(t, 1e9), "a time must be"),
    "another kit": ("t", lambda folder, man, t: t.update(kit_id="0123456789abcdef"), "not of this kit"),
    "foreign manifest": ("kit", lambda folder, man, t: (folder / MANIFEST).write_text('{"format": "other"}'),
                         "is not a latency kit manifest"),
    "malformed manifest": ("kit", lambda folder, man, t: (folder / MANIFEST).write_text(
        json.dumps(man | {"items": [1]})), "items must be a list"),
    "edited manifest": ("kit", lambda folder, man, t: (folder / MANIFEST).write_text(
        json.dumps(man | {"repeats": man["repeats"] + 1})), "was edited"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_kit_or_timings_is_one_line_and_writes_nothing(kit: tuple[Path, Path], tmp_path: Path, case: str) -> None:
    folder, timings, man, t = _copy(kit, tmp_path)
    _, change, message = BAD[case]
    change(folder, man, t)
    timings.write_text(json.dumps(t))
    out = tmp_path / "table.json"
    r = run_cli("latency", "import", str(folder), str(timings), "--out", str(out))
    assert r.code == 2, (case, r.out, r.err)
    assert message in r.err and len(r.err.strip().splitlines()) == 1, r.err
    assert not out.exists()


def test_kit_refuses_a_used_folder_and_other_runtimes(tmp_path: Path) -> None:
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "a").write_text("x")
    r = run_cli("latency", "kit", "--space", "tiny", "--archs", "1", "--out", str(tmp_path / "used"))
    assert r.code == 2 and "not an empty folder" in r.err
    r = run_cli("latency", "kit", "--space", "tiny", "--runtime", "openvino", "--out", str(tmp_path / "k"))
    assert r.code == 2 and "onnxruntime" in r.err and not (tmp_path / "k").exists()


def test_runner_refuses_an_edited_program_another_runtime_and_a_foreign_manifest(kit: tuple[Path, Path],
                                                                                 tmp_path: Path) -> None:
    folder, _, man, _ = _copy(kit, tmp_path)
    runner, out = folder / "runner.py", tmp_path / "t.json"
    (folder / man["items"][3]["file"]).write_bytes(b"x")
    res = _stand_in(tmp_path, runner, "--out", str(out))
    assert res.returncode == 2 and res.stderr.strip() == (f"runner: {man['items'][3]['file']} does not match its "
                                                          "sha256 in manifest.json; copy the kit again")
    (folder / MANIFEST).write_text(json.dumps(man | {"runtime": "tflite"}))
    res = _stand_in(tmp_path, runner, "--out", str(out))
    assert res.returncode == 2 and res.stderr.strip() == ("runner: manifest.json is a kit for runtime 'tflite'; "
                                                          "this runner runs onnxruntime, executorch kits")
    (folder / MANIFEST).write_text('{"format": "other"}')
    res = _stand_in(tmp_path, runner, "--out", str(out))
    assert res.returncode == 2 and "not a latency kit manifest" in res.stderr and len(res.stderr.splitlines()) == 1
    assert not out.exists()


def test_a_second_device_gives_a_table_that_predicts_it_better(kit: tuple[Path, Path], tmp_path: Path) -> None:
    """The kit timed again on a device 3x slower per call (every ONNX Runtime inference call runs 3
    times): each device's table predicts its own held-out subnets better than the other's table."""
    folder, timings = kit
    res = _stand_in(tmp_path, folder / "runner.py", "--out", str(tmp_path / "slow.json"), slower=3)
    assert res.returncode == 0, res.stderr
    space = get_space("tiny")
    tables = {"fast": import_timings(folder, timings, "fast"), "slow": import_timings(folder, tmp_path / "slow.json",
                                                                                      "slow")}
    held = {name: stored_subnets(tab, space, "holdout_subnets") for name, tab in tables.items()}
    assert held["slow"][0] == held["fast"][0] and len(held["fast"][0]) == 2  # the same subnets, timed on each
    assert sum(held["slow"][1]) > 2 * sum(held["fast"][1])
    for own, other in (("fast", "slow"), ("slow", "fast")):
        archs, ms = held[own]
        own_err, other_err = table_error(tables[own], space, archs, ms), table_error(tables[other], space, archs, ms)
        assert own_err < other_err, (own, own_err, other_err)


@pytest.mark.slow
def test_int8_kit_runs_on_the_stand_in_and_imports_as_an_int8_table(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime.quantization")
    config = LatencyTableConfig(runtime="onnxruntime", precision="int8", archs=1, calibration_archs=1,
                                holdout_archs=1, warmup=0, repeats=2, passes=1, num_classes=10)
    write_kit(MICRO_SPACE, config, tmp_path / "kit", progress=False)  # one arch: 32 INT8 ops, not tiny's 139
    res = _stand_in(tmp_path, tmp_path / "kit" / "runner.py", "--out", str(tmp_path / "t.json"))
    assert res.returncode == 0, res.stderr
    tab = import_timings(tmp_path / "kit", tmp_path / "t.json")
    assert tab.precision == "int8" and tab.meta["holdout_archs"] == 1 and tab.entries
    check_table_precision(tab, "int8")


def test_a_kit_exported_by_worker_processes_is_the_same_kit(tmp_path: Path) -> None:
    """--jobs 2 streams programs from worker processes (each written as it comes, none held): the
    same files, hashes and manifest as one process, duplicates of an arch included."""
    config = LatencyTableConfig(runtime="onnxruntime", calibration_archs=2, holdout_archs=2, num_classes=10)
    one = write_kit(MICRO_SPACE, config, tmp_path / "one", progress=False)
    two = write_kit(MICRO_SPACE, config.model_copy(update={"jobs": 2}), tmp_path / "two", progress=False)
    assert [it["sha256"] for it in one["items"]] == [it["sha256"] for it in two["items"]]
    assert one["kit_id"] == two["kit_id"]  # the export's process count is not part of the kit
    keys = [it["name"].split(":", 2)[-1] for it in one["items"] if it["measures"] in ("calibration", "holdout")]
    assert len(keys) > len(set(keys))  # the micro space's one arch: every subnet item is the same program
