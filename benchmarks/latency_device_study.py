"""Latency on a device without attentivenas: the kit timed by its package-free runner against
``build-table`` on the same held-out subnets, per runtime and precision, and whole-model predictors
fitted on 50/100/200 measured subnets beside the per-op table (issue 40, item 7).

For each runtime and precision, in one run and in turn on this host (one thread):

1. ``latency kit`` writes the kit (its size and wall time recorded);
2. the kit's ``runner.py`` times it in a separate interpreter where ``attentivenas`` cannot be
   imported (nor ``torch`` for ONNX Runtime; ExecuTorch's Python runtime needs torch), as on a board;
3. ``latency import`` fits the table from those timings;
4. ``latency build-table`` with the same flags times the same items in this process.

Both tables hold the same held-out subnets (the same seeds); each is scored on its own held-out
measurements and on the other's. ``--whole`` adds the whole-model study: one ``build-table`` with
``--calibration-archs 200 --holdout-archs 50`` and ``latency fit-model --subnets 50|100|200``.
Every step's result is a JSON file under ``--out`` and a step already done is not run again.

    OMP_NUM_THREADS=1 python benchmarks/latency_device_study.py --out benchmarks/results/latency-device
    OMP_NUM_THREADS=1 python benchmarks/latency_device_study.py --whole --out benchmarks/results/latency-device
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path
from typing import Any

from scipy.stats import kendalltau

from attentivenas.io import atomic_write_json
from attentivenas.latency import LatencyTable
from attentivenas.latency.fit import stored_subnets, table_error
from attentivenas.latency.kit import kit_bytes
from attentivenas.space import get_space

#: an interpreter with this venv's packages where the named top-level packages cannot be imported
STAND_IN = """
import runpy, sys
from importlib.abc import MetaPathFinder
BLOCKED = tuple(sys.argv[1].split(","))
class Block(MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError("stand-in device: " + name + " is not installed")
        return None
sys.meta_path.insert(0, Block())
sys.path.append(sys.argv[2])
script = sys.argv[3]
sys.argv = [script, *sys.argv[4:]]
runpy.run_path(script, run_name="__main__")
"""
#: what the device's runner may not import, per runtime (ExecuTorch's Python runtime imports torch)
BLOCKED = {"onnxruntime": "attentivenas,torch", "executorch": "attentivenas"}


def _cli(*args: str) -> tuple[dict[str, Any], float]:
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "attentivenas", *args, "--json"], capture_output=True, text=True,
                       check=False)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"attentivenas {' '.join(args)} failed ({r.returncode}): {r.stderr.strip()[-2000:]}")
    return json.loads(r.stdout), wall


def _stand_in(work: Path, runtime: str, runner: Path, timings: Path, threads: int) -> float:
    wrapper = work / "stand_in.py"
    wrapper.write_text(STAND_IN)
    env = {"OMP_NUM_THREADS": str(threads), "PATH": "/usr/bin:/bin"}
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-I", "-S", str(wrapper), BLOCKED[runtime], sysconfig.get_paths()["purelib"],
                        str(runner), "--out", str(timings), "--threads", str(threads)],
                       capture_output=True, text=True, env=env, check=False)
    if r.returncode != 0:
        raise SystemExit(f"the kit's runner failed ({r.returncode}): {r.stderr.strip()[-2000:]}")
    return time.perf_counter() - t0


def _scores(table: LatencyTable, held: LatencyTable, space_name: str) -> dict[str, float]:
    """``table``'s MAPE (%) and Kendall tau on the held-out subnets stored in ``held``."""
    space = get_space(space_name)
    archs, ms = stored_subnets(held, space, "holdout_subnets")
    pred = [table.predict(space, a) for a in archs]
    return {"mape_percent": round(table_error(table, space, archs, ms), 3),
            "kendall_tau": round(float(kendalltau(pred, ms).statistic), 4), "subnets": len(archs)}


def table_flags(a: argparse.Namespace, runtime: str, precision: str) -> list[str]:
    return ["--space", a.space, "--runtime", runtime, "--precision", precision, "--archs", str(a.archs),
            "--calibration-archs", str(a.calibration_archs), "--holdout-archs", str(a.holdout_archs),
            "--repeats", str(a.repeats), "--warmup", str(a.warmup), "--passes", str(a.passes),
            "--threads", "1", "--seed", str(a.seed), "--num-classes", str(a.num_classes), "--jobs", str(a.jobs)]


def kit_vs_table(a: argparse.Namespace, runtime: str, precision: str, out: Path) -> dict[str, Any]:
    """One runtime and precision: kit + stand-in runner + import, then build-table, side by side."""
    work = Path(a.work) / f"{runtime}-{precision}"
    flags = table_flags(a, runtime, precision)
    if a.reuse_kit and (work / "kit_table.json").is_file():  # the kit's steps done and timed before: kept
        info = json.loads((work / "kit_steps.json").read_text())
    else:
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        kit, kit_s = _cli("latency", "kit", *flags, "--out", str(work / "kit"))
        run_s = _stand_in(work, runtime, work / "kit" / "runner.py", work / "timings.json", 1)
        _, import_s = _cli("latency", "import", str(work / "kit"), str(work / "timings.json"), "--out",
                           str(work / "kit_table.json"), "--device-name", "stand-in (this host, package-free)")
        info = {"items": kit["items"], "bytes": kit_bytes(work / "kit"), "write_s": round(kit_s, 1),
                "runner_s": round(run_s, 1), "import_s": round(import_s, 1)}
        atomic_write_json(work / "kit_steps.json", info)
    kt = LatencyTable.load(work / "kit_table.json")
    timings = json.loads((work / "timings.json").read_text())
    row: dict[str, Any] = {
        "runtime": runtime, "precision": precision, "space": a.space, "command_flags": " ".join(flags),
        "kit": {**info, "runner_timing_s": timings.get("seconds"), "runtime_version": timings.get("runtime_version"),
                "model": kt.model, "holdout_mape_by_model": kt.meta.get("holdout_mape_by_model"),
                "on_own_holdout": _scores(kt, kt, a.space)},
        "host": a.host, "date": time.strftime("%Y-%m-%d"), "load_before": os.getloadavg()[0],
    }
    if a.skip_build_table:
        row["build_table"] = {"not_run": a.skip_build_table}
    else:
        _, build_s = _cli("latency", "build-table", *flags, "--out", str(work / "table.json"))
        bt = LatencyTable.load(work / "table.json")
        row["kit"]["on_build_table_holdout"] = _scores(kt, bt, a.space)
        row["build_table"] = {"wall_s": round(build_s, 1), "model": bt.model,
                              "holdout_mape_by_model": bt.meta.get("holdout_mape_by_model"),
                              "on_own_holdout": _scores(bt, bt, a.space), "on_kit_holdout": _scores(bt, kt, a.space)}
    keep = out.parent / "tables" / f"{runtime}-{precision}"  # the tables whose subnets the docs compare
    keep.mkdir(parents=True, exist_ok=True)
    for name in ("kit_table.json", "table.json"):
        if (work / name).is_file():
            shutil.copyfile(work / name, keep / name)
    atomic_write_json(out, row)
    shutil.rmtree(work / "kit", ignore_errors=True)  # the programs (hundreds of MB); the tables are kept
    return row


def whole_model(a: argparse.Namespace, out: Path) -> dict[str, Any]:
    """One build-table with many measured subnets; whole-model predictors fitted on 50/100/200."""
    work = Path(a.work) / "whole"
    work.mkdir(parents=True, exist_ok=True)
    flags = table_flags(a, "onnxruntime", "fp32")
    flags[flags.index("--calibration-archs") + 1] = str(max(a.whole_subnets))
    flags[flags.index("--holdout-archs") + 1] = str(a.whole_holdout)
    table_path = work / "table.json"
    build_s = 0.0
    if not table_path.exists():
        _, build_s = _cli("latency", "build-table", *flags, "--out", str(table_path))
    tab = LatencyTable.load(table_path)
    rows = []
    for n in a.whole_subnets:
        info, fit_s = _cli("latency", "fit-model", str(table_path), "--subnets", str(n), "--out",
                           str(work / f"whole-{n}.json"))
        rows.append({"subnets": n, "fit_s": round(fit_s, 1), "printed": info})
    row = {"runtime": "onnxruntime", "precision": "fp32", "space": a.space, "command_flags": " ".join(flags),
           "build_table_s": round(build_s, 1), "per_op_table": {"model": tab.model,
                                                               "on_holdout": _scores(tab, tab, a.space)},
           "whole_models": rows, "host": a.host, "date": time.strftime("%Y-%m-%d")}
    atomic_write_json(out, row)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="benchmarks/results/latency-device")
    p.add_argument("--work", default="/tmp/latency-device-study")
    p.add_argument("--space", default="attentivenas")
    p.add_argument("--settings", default="onnxruntime:fp32,onnxruntime:int8,executorch:fp32,executorch:int8")
    p.add_argument("--archs", type=int, default=1)
    p.add_argument("--calibration-archs", type=int, default=8)
    p.add_argument("--holdout-archs", type=int, default=10)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--passes", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-classes", type=int, default=1000)
    p.add_argument("--jobs", type=int, default=2, help="processes exporting the programs (before any timing)")
    p.add_argument("--whole", action="store_true", help="run the whole-model study instead")
    p.add_argument("--whole-subnets", type=lambda s: [int(x) for x in s.split(",")], default=[50, 100, 200])
    p.add_argument("--whole-holdout", type=int, default=50)
    p.add_argument("--reuse-kit", action="store_true", help="keep a setting's kit steps done before (work folder)")
    p.add_argument("--skip-build-table", default="", help="record the kit alone, with this reason")
    p.add_argument("--host", default="this project's 2-core Intel Xeon VM (/proc/cpuinfo: Intel(R) Xeon(R) Processor), one thread, nothing else running")
    a = p.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if a.whole:
        path = out / "whole-model.json"
        print(json.dumps(whole_model(a, path) if not path.exists() else json.loads(path.read_text()), indent=1))
        return
    for setting in a.settings.split(","):
        runtime, precision = setting.split(":")
        path = out / f"{runtime}-{precision}.json"
        if path.exists():
            print(f"{path}: done before")
            continue
        row = kit_vs_table(a, runtime, precision, path)
        print(f"{runtime} {precision}: kit {row['kit']['on_own_holdout']} vs build-table "
              f"{row['build_table'].get('on_own_holdout')}; kit {row['kit']['bytes'] / 1e6:.1f} MB", flush=True)


if __name__ == "__main__":
    main()
