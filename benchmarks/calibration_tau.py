"""How the ranking of measured subnets changes with fewer BN calibration batches.

Measures the same subnets (spread over the FLOPs range, seeded) of a checkpoint with the published
calibration (64 batches x 256 crops) and with cheaper settings, and prints the Kendall tau of each
against the reference, the mean absolute top-1 difference and the seconds per subnet.

    python benchmarks/calibration_tau.py --checkpoint runs/quickstart/checkpoints/last.pt --archs 50

On the digits the training split has 1,257 images: 64 x 256 (and any setting over 1,257 crops) means
every training image, in ceil(1257 / batch size) batches; the settings below say how many images each
one actually used.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from attentivenas.accuracy import SubnetEvaluator, kendall_tau, spread_genes
from attentivenas.config import MeasureSettings
from attentivenas.costs import CostModel

#: (batches, crops per batch); on the digits 8 x 256 and 16 x 256 draw the same 1,257 images in the same
#: 5 batches as 64 x 256 (identical by construction), so they are left out there (--all keeps them)
SETTINGS = [(64, 256), (4, 256), (2, 256), (1, 256), (8, 64), (4, 64)]
ALL = [(64, 256), (16, 256), (8, 256), (4, 256), (2, 256), (1, 256), (16, 64), (8, 64), (4, 64)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--archs", type=int, default=50)
    ap.add_argument("--split", default="test")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="also write the results as JSON here")
    ap.add_argument("--all", action="store_true", help="every setting, also those equal to 64 x 256 on small data")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    results = []
    ref = None
    archs = None
    for batches, size in ALL if args.all else SETTINGS:
        ev = SubnetEvaluator.from_checkpoint(args.checkpoint, None, None,
                                             MeasureSettings(split=args.split, calib_batches=batches,
                                                             calib_batch_size=size),
                                             device="cpu", seed=args.seed, warn=lambda m: None)
        if archs is None:
            space = ev.supernet.space
            genes = spread_genes(space, args.archs, np.random.default_rng(args.seed), CostModel(space, 10))
            archs = [space.decode(g) for g in genes]
        images = sum(int(b.shape[0]) for b in ev.calib)
        t0 = time.perf_counter()
        top1 = np.array([ev(a) for a in archs])
        per = (time.perf_counter() - t0) / len(archs)
        if ref is None:
            ref = top1
        row = {"calib_batches": batches, "calib_batch_size": size, "batches_used": len(ev.calib),
               "images_used": images, "kendall_tau_vs_64x256": float(kendall_tau(ref, top1)),
               "mean_abs_diff_top1": float(np.abs(top1 - ref).mean()), "seconds_per_subnet": per,
               "top1_mean": float(top1.mean())}
        results.append(row)
        print(json.dumps(row), flush=True)
    print(f"{'setting':>10} {'batches':>8} {'images':>7} {'tau':>6} {'|d top1|':>9} {'s/subnet':>9}")
    for r in results:
        print(f"{r['calib_batches']:>4} x {r['calib_batch_size']:<4}{r['batches_used']:>7} {r['images_used']:>7} "
              f"{r['kendall_tau_vs_64x256']:>6.3f} {r['mean_abs_diff_top1']:>9.2f} {r['seconds_per_subnet']:>9.2f}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"archs": len(archs or []), "split": args.split, "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
