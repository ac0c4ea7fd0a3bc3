"""The ImageNet sandwich step's speed: our step exactly as ``train`` builds it from
``configs/attentivenas_imagenet.yaml`` (default settings for the device: channels-last and freed memory kept for reuse on CPU, the
recipe's optimiser, BestUp-3 by mini-batch loss, KD, clip by value), on random 224x224 images with
1000 classes.

``--json`` prints one object per timed step::

    {"step_s": ..., "gflop": ..., "gflop_per_s": ..., "batch": ..., "threads": ..., "amp": ..., "channels_last": ..., "reuse_freed_memory": ...}

``gflop`` counts the step's work from the cost model (multiply-adds x 2; forward + backward = 3 x
forward for the trained subnets, forward only for the scored candidates)::

    python benchmarks/bench_step.py --batch 16 --steps 5 --threads 2
    python benchmarks/bench_step.py --json runtime.channels_last=false runtime.amp=bf16   # any config override
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from attentivenas.config import load_config
from attentivenas.host_memory import in_effect
from attentivenas.space import get_space
from attentivenas.train.loop import build_training_supernet
from attentivenas.train.optim import build_optimizer
from attentivenas.train.sampling import ArchSampler
from attentivenas.train.sandwich import SandwichStep, loss_scorer, resolve_amp

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "configs" / "attentivenas_imagenet.yaml"


def build_step(batch: int, seed: int, overrides: list[str], device: torch.device) -> tuple[SandwichStep, dict]:
    """The recipe's step (as :class:`attentivenas.train.loop.Trainer` builds it) at ``batch`` per process."""
    cfg = load_config(RECIPE, ["data.path=/unused", f"data.batch_size={batch}", f"seed={seed}", *overrides])
    torch.manual_seed(seed)
    space = get_space(cfg.space)
    net, channels_last = build_training_supernet(cfg, space, 1000, device)
    optimizer = build_optimizer(net, cfg.optim, batch)
    sampler = ArchSampler.from_config(space, cfg.sampler, seed=seed, num_classes=1000)
    scorer = None if cfg.sampler.method == "uniform" else loss_scorer
    step = SandwichStep.from_config(cfg, net, optimizer, sampler, scorer, channels_last=channels_last)
    return step, {"amp": resolve_amp(cfg.runtime.amp, device), "channels_last": channels_last,
                  "reuse_freed_memory": in_effect()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=5, help="timed steps (after one warm-up step)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--compile", action="store_true", help="torch.compile the supernet's forward (dynamic archs "
                    "recompile; recorded as measured)")
    ap.add_argument("overrides", nargs="*", help="config overrides, e.g. runtime.channels_last=false")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    step, info = build_step(args.batch, args.seed, args.overrides, device)
    info["compile"] = bool(args.compile)
    if args.compile:
        step.net = torch.compile(step.net)  # attribute access (set_arch, space) reaches the original module
    gen = torch.Generator().manual_seed(args.seed)
    x = torch.randn(args.batch, 3, 224, 224, generator=gen).to(device)
    y = torch.randint(0, 1000, (args.batch,), generator=gen).to(device)
    step(x, y)  # warm-up
    rows = []
    for _ in range(args.steps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        r = step(x, y)
        if device.type == "cuda":
            torch.cuda.synchronize()
        secs = time.perf_counter() - t0
        gflop = r.gflop(args.batch)
        row = {"step_s": secs, "gflop": gflop, "gflop_per_s": gflop / secs, "batch": args.batch,
               "images_per_s": args.batch / secs, "threads": torch.get_num_threads(), "device": str(device), **info}
        rows.append(row)
        if args.json:
            print(json.dumps(row), flush=True)
    if not args.json:
        secs = [r["step_s"] for r in rows]
        rates = [r["gflop_per_s"] for r in rows]
        print(f"batch {args.batch} threads {torch.get_num_threads()} amp {info['amp']} channels_last "
              f"{info['channels_last']}: step s min/median/max {min(secs):.2f}/{statistics.median(secs):.2f}/"
              f"{max(secs):.2f}, GFLOP/s median {statistics.median(rates):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
