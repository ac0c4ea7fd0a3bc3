"""Latency table vs measured latency on held-out archs (tiny space, this CPU, 1 thread).

Builds a per-op latency table of the tiny space (every op signature of the space), then measures
held-out random archs (a seed disjoint from the table's calibration archs) as whole static
subnets and reports the table's mean absolute percentage error (MAPE) and rank correlation.
Measurements take the lowest median over round-robin passes, so transient load from other
processes (which only adds time) is filtered out as far as possible; the 1-minute load average is
reported beside the result. ``--clock cpu`` times thread CPU time instead of wall-clock time
(steadier when the CPU is heavily shared, less faithful on a quiet one).

    python benchmarks/bench_latency_table.py [--archs 20] [--passes 3] [--clock wall|cpu] [--out table.json]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch
from scipy.stats import kendalltau, spearmanr

from attentivenas.latency import build_latency_table, measure_archs, table_error
from attentivenas.nn import Supernet
from attentivenas.space import get_space


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="tiny")
    ap.add_argument("--archs", type=int, default=20, help="held-out archs")
    ap.add_argument("--passes", type=int, default=3, help="round-robin passes (lowest median kept)")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--num-classes", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--clock", default="wall", choices=["cpu", "wall"],
                    help="wall: wall-clock (default); cpu: thread CPU time (steadier on a heavily shared CPU)")
    ap.add_argument("--out", default=None, help="write the table JSON here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    space = get_space(args.space)
    torch.manual_seed(args.seed)
    net = Supernet(space, num_classes=args.num_classes)
    t0 = time.perf_counter()
    table = build_latency_table(space, "cpu", args.batch, None, args.num_classes, args.threads, warmup=3,
                                repeats=args.repeats, passes=args.passes, calibration_archs=8, seed=args.seed,
                                progress=False, supernet=net, clock=args.clock)
    t_build = time.perf_counter() - t0
    load = os.getloadavg()[0]
    if args.out:
        table.save(args.out)

    rng = np.random.default_rng(args.seed + 1)  # disjoint from the calibration archs' seed
    held_out = [space.sample(rng) for _ in range(args.archs)]
    t0 = time.perf_counter()
    measured = measure_archs(space, held_out, "cpu", args.batch, args.threads, warmup=5, repeats=args.repeats,
                             passes=args.passes, num_classes=args.num_classes, supernet=net, seed=args.seed,
                             clock=args.clock)
    t_meas = time.perf_counter() - t0
    predicted = [table.predict(space, a) for a in held_out]
    mape = table_error(table, space, held_out, measured)
    report = {
        "space": space.name,
        "device": table.device_name,
        "load_avg_1min": round(load, 2),
        "threads": args.threads,
        "clock": args.clock,
        "batch": args.batch,
        "ops": len(table.entries),
        "overhead_ms": round(table.overhead_ms, 4),
        "per_block_ms": round(table.per_block_ms, 4),
        "build_s": round(t_build, 1),
        "held_out_archs": len(held_out),
        "measure_s": round(t_meas, 1),
        "mape_percent": round(mape, 2),
        "kendall_tau": round(float(kendalltau(predicted, measured)[0]), 3),
        "spearman_rho": round(float(spearmanr(predicted, measured)[0]), 3),
        "measured_ms": [round(m, 3) for m in measured],
        "predicted_ms": [round(p, 3) for p in predicted],
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
