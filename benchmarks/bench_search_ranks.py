"""Speed-up of measuring subnets over 2 ranks against 1, in one run (one torch thread per rank).

Each setting builds the same predictor dataset (``predictor build``: N subnets of a checkpoint, BN
recalibrated, spread over the FLOPs range) into a fresh file, first in one process, then over two
local gloo processes; the files must be identical. Prints the wall time of each (all of it, and the
measuring only: from the line announcing the subnets to the end) and the speed-up.

    python benchmarks/bench_search_ranks.py --checkpoint runs/quickstart/checkpoints/last.pt --archs 40

The machine's load (``os.getloadavg``) is printed before and after: on a shared 2-core machine the
numbers are only as good as the cores that were free.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from attentivenas.accuracy import build_from_checkpoint
from attentivenas.config import PredictorBuildSettings
from timing import interleaved_rounds, print_header


def _one(settings: PredictorBuildSettings, ranks: int) -> dict:
    marks: list[float] = []
    t0 = time.perf_counter()
    build_from_checkpoint(settings, ranks=ranks, threads=1, progress=False, log=lambda m: marks.append(time.perf_counter()))
    end = time.perf_counter()
    return {"ranks": ranks, "wall_s": end - t0, "measure_s": end - (marks[0] if marks else t0)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--archs", type=int, default=40)
    ap.add_argument("--calib-batches", type=int, default=64)
    ap.add_argument("--split", default="test")
    args = ap.parse_args()
    print_header()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        files: dict[int, bytes] = {}

        def side(ranks: int):
            def run() -> dict:
                out = Path(tmp) / f"ranks{ranks}.jsonl"
                settings = PredictorBuildSettings.from_flags(
                    checkpoint=args.checkpoint, out=str(out), num_archs=args.archs, split=args.split,
                    pipeline="authors", interpolation="bilinear", calib_batches=args.calib_batches,
                    calib_batch_size=256, spread="flops", device="cpu", seed=0)
                row = _one(settings, ranks)
                files[ranks] = out.read_bytes()
                print(json.dumps(row), flush=True)
                return row
            return run

        # the shared timer, one round (a side builds its file from scratch): 1 rank, then 2
        timed = interleaved_rounds({1: side(1), 2: side(2)}, rounds=1)
        identical = files[1] == files[2]
    one, two = timed[1][0], timed[2][0]
    rows = [one, two]
    result = {"archs": args.archs, "calib_batches": args.calib_batches, "identical_files": identical,
              "speedup_wall": one["wall_s"] / two["wall_s"], "speedup_measure": one["measure_s"] / two["measure_s"],
              "load_before": load_before, "load_after": os.getloadavg(), "cpus": os.cpu_count(), "runs": rows}
    print(json.dumps(result))
    print(f"1 rank {one['measure_s']:.1f} s, 2 ranks {two['measure_s']:.1f} s measuring: speed-up "
          f"{result['speedup_measure']:.2f}x ({result['speedup_wall']:.2f}x wall); identical files: {identical}; "
          f"load {load_before[0]:.2f} -> {result['load_after'][0]:.2f}")


if __name__ == "__main__":
    main()
