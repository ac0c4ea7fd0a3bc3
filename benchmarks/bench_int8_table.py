"""Where an INT8 latency table's build time goes, beside the fp32 one (small setting, one thread).

Builds a table of the ops of the tiny space's min subnet (no calibration or held-out subnets, no
drift reference) in each runtime and precision, and splits its wall time into exporting the
programs (INT8: quantizing them, calibration included), loading them in the runtime and timing
them (the cumulative times of the runtime records' ``export`` and ``load`` and of ``time_in_passes``
under cProfile, whose overhead they include; no library code is replaced). ``--label`` names the variant measured (e.g. ``before`` / ``after`` a change); each run adds
its rows to ``--out`` (a JSON file), so variants measured in turn land side by side.

    OMP_NUM_THREADS=1 python benchmarks/bench_int8_table.py --label after --out benchmarks/results/int8-table-build.json
    OMP_NUM_THREADS=1 python benchmarks/bench_int8_table.py --interleaved 4 --out benchmarks/results/int8-table-build.json
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import time
from pathlib import Path
from typing import Any

import torch

from attentivenas.config import LatencyTableConfig
from attentivenas.io import atomic_write_json
from attentivenas.latency import build_table
from attentivenas.runtimes import runners as runtimes
from attentivenas.runtimes.records import is_available
from attentivenas.space import TINY_SPACE

#: (module file, function) whose cumulative time is a phase of the build -> the phase's key: every
#: runtime exports and loads its programs through its record (``runtimes/records.py``)
PHASES = {("runtimes/records.py", "export"): "export_s", ("runtimes/records.py", "load"): "load_s",
          ("latency/measure.py", "time_in_passes"): "timing_s"}


def _phase_seconds(profiler: cProfile.Profile) -> dict[str, float]:
    """The cumulative seconds of each function of :data:`PHASES`."""
    out = dict.fromkeys(PHASES.values(), 0.0)
    for (file, _, name), (_, _, _, cumulative, _) in pstats.Stats(profiler).stats.items():  # type: ignore[attr-defined]
        key = next((k for (suffix, fn), k in PHASES.items() if fn == name and file.endswith(suffix)), None)
        if key is not None:
            out[key] += cumulative
    return out


def build_once(runtime: str, precision: str, repeats: int) -> dict[str, Any]:
    """One small table built, its wall time split into export, load and timing (:data:`PHASES`)."""
    cfg = LatencyTableConfig(runtime=runtime, precision=precision, num_classes=10, threads=1, warmup=2,
                             repeats=repeats, calibration_archs=0, holdout_archs=0, drift_correction=False)
    profiler = cProfile.Profile()
    t0 = time.perf_counter()
    profiler.enable()
    try:
        table = build_table(TINY_SPACE, cfg, [TINY_SPACE.min_arch()], holdout=[], progress=False)
    finally:
        profiler.disable()
    total = time.perf_counter() - t0
    phases = _phase_seconds(profiler)
    ops = len(table.entries)
    return {"runtime": runtime, "precision": precision, "ops": ops, "total_s": round(total, 2),
            "export_s": round(phases["export_s"], 2), "load_s": round(phases["load_s"], 2),
            "timing_s": round(phases["timing_s"], 2),
            "export_s_per_op": round(phases["export_s"] / max(ops, 1), 3),
            "median_op_ms": round(sorted(table.entries.values())[ops // 2], 4)}


def interleaved(runtime: str, n_ops: int, seed: int = 0) -> dict[str, Any]:
    """INT8 export of ``n_ops`` seeded random op signatures of the tiny space, each exported without the
    caches (``runtimes.quantize`` directly), with them (``runtimes.runners.export_program``) and without
    again, in turn: the same op, the same moment, so the machine's load falls on both alike."""
    import numpy as np

    from attentivenas.latency import space_signatures
    from attentivenas.latency.ops import op_input, seeded_op_module
    from attentivenas.runtimes.quantize import int8_executorch_bytes, int8_onnx_bytes

    plain = int8_onnx_bytes if runtime == "onnxruntime" else int8_executorch_bytes
    sigs = sorted(space_signatures(TINY_SPACE, 10))
    pick = [sigs[i] for i in np.random.default_rng(seed).choice(len(sigs), n_ops, replace=False)]
    without, with_, same = [], [], True
    for i, sig in enumerate(pick):
        module, x = seeded_op_module(sig, i, TINY_SPACE.act, runtime), op_input(sig, 1, i)
        t0 = time.perf_counter()
        a = plain(module, x, runtimes.latency_calibration(x))
        t1 = time.perf_counter()
        b = runtimes.export_program(module, x, runtime, "int8")
        t2 = time.perf_counter()
        c = plain(module, x, runtimes.latency_calibration(x))
        t3 = time.perf_counter()
        without += [t1 - t0, t3 - t2]
        with_.append(t2 - t1)
        same = same and a == b == c
    return {"runtime": runtime, "ops": n_ops, "uncached_s_per_op_median": round(float(np.median(without)), 3),
            "cached_s_per_op_median": round(float(np.median(with_)), 3), "identical_programs": same,
            "uncached_s": [round(v, 3) for v in without], "cached_s": [round(v, 3) for v in with_],
            "load_avg_1m": os.getloadavg()[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--label", default="current", help="the variant measured (before, after, ...)")
    ap.add_argument("--runtimes", default="onnxruntime,executorch")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/int8-table-build.json"))
    ap.add_argument("--interleaved", type=int, default=0, help="instead: N ops exported without and with the "
                    "INT8 caches in turn (key 'interleaved' of --out)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.interleaved:
        found = [interleaved(r, args.interleaved) for r in args.runtimes.split(",") if is_available(r)]
        print(json.dumps(found), flush=True)
        old = json.loads(args.out.read_text()) if args.out.is_file() else {"runs": []}
        old["interleaved"] = found
        atomic_write_json(args.out, old)
        return
    rows = []
    for runtime in args.runtimes.split(","):
        if not is_available(runtime):
            print(f"{runtime}: not installed, skipped")
            continue
        for precision in ("fp32", "int8"):
            row = {"label": args.label, **build_once(runtime, precision, args.repeats)}
            print(json.dumps(row), flush=True)
            rows.append(row)
    old = json.loads(args.out.read_text()) if args.out.is_file() else {"runs": []}
    old["runs"] = [r for r in old["runs"] if r["label"] != args.label] + rows
    old.setdefault("settings", {})[args.label] = {"space": "tiny", "ops": "those of the min subnet", "threads": 1, "warmup": 2,
                      "repeats": args.repeats, "calibration_archs": 0, "holdout_archs": 0, "drift_correction": False,
                      "machine": "2 shared CPU cores, other jobs running beside", "load_avg_1m": os.getloadavg()[0],
                      "torch": torch.__version__,
                      "runtimes": {r: runtimes.runtime_version(r) for r in args.runtimes.split(",")}}
    atomic_write_json(args.out, old)


if __name__ == "__main__":
    main()
