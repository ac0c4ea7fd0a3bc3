"""Small-image training speed: the sandwich step against a plain PyTorch loop, side by side.

For each config (the quick start on the digits, Fashion-MNIST), in one run on the same machine:

* the sandwich step exactly as ``attentivenas train`` builds it (:class:`attentivenas.train.loop.Trainer`)
  on the config's own training batches;
* a plain PyTorch loop training the extracted static max subnet alone (SGD, cross-entropy) on the
  same batches.

Printed per row: images/s and the achieved GFLOP/s counted from the cost model (a multiply-add is
two FLOPs; forward + backward = 3 x forward for trained subnets, forward only for scored candidates).
Rounds of the two are interleaved (the shared timer of ``benchmarks/timing.py``: the side that goes
first alternates) and the median is reported, since these machines are noisy; the GFLOP/s ratio is
that of the medians, and beside it the median of the per-round ratios with its 95% bootstrap interval::

    python benchmarks/bench_train_small.py                 # both configs, 1 thread
    python benchmarks/bench_train_small.py --threads 2 --steps 20 --rounds 3 --json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from attentivenas.config import load_config
from attentivenas.costs import count_flops
from attentivenas.data import train_loader
from attentivenas.distributed import DistInfo
from attentivenas.train.loop import Trainer
from timing import compare, interleaved_rounds, print_header

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"quickstart": (ROOT / "configs" / "quickstart.yaml", []),
           "fashion_mnist": (ROOT / "configs" / "fashion_mnist.yaml", ["data.train_size=4000"])}


def _batches(trainer: Trainer, steps: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    cfg = trainer.config
    loader = train_loader(trainer.data.train, cfg.data.batch_size, cfg.seed, 0)
    out = []
    for x, y in loader:
        out.append((x, y))
        if len(out) == steps:
            break
    return out


def time_sandwich(trainer: Trainer, batches: list) -> tuple[float, float]:
    """Seconds and GFLOP of the sandwich step over ``batches`` (after the warm-up the caller did)."""
    gflop = 0.0
    t0 = time.perf_counter()
    for x, y in batches:
        r = trainer.step_fn(x, y)
        gflop += r.gflop(x.shape[0])
    return time.perf_counter() - t0, gflop


def plain_loop(trainer: Trainer) -> tuple[torch.nn.Module, torch.optim.Optimizer, float]:
    """The extracted static max subnet with SGD, and its MFLOPs."""
    space = trainer.space
    arch = space.max_arch()
    model = trainer.net.extract(arch).train()
    if trainer.channels_last:  # the same memory format as the step
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    return model, opt, count_flops(space, arch, trainer.num_classes)


def time_plain(model: torch.nn.Module, opt: torch.optim.Optimizer, mflops: float, batches: list,
               resolution: int, channels_last: bool = False) -> tuple[float, float]:
    gflop = 0.0
    t0 = time.perf_counter()
    for x, y in batches:
        if x.shape[-1] != resolution:
            x = torch.nn.functional.interpolate(x, size=(resolution, resolution), mode="bicubic", align_corners=False)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        gflop += 2.0 * x.shape[0] * 3.0 * mflops / 1e3
    return time.perf_counter() - t0, gflop


def bench(name: str, steps: int, rounds: int, threads: int, overrides: list[str]) -> dict[str, Any]:
    path, extra = CONFIGS[name]
    cfg = load_config(path, [*extra, f"runtime.threads={threads}", "log.progress=false", "log.tensorboard=false",
                             "runtime.device=cpu", *overrides])
    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, Path(tmp), DistInfo())
        batches = _batches(trainer, steps + 2)
        warm, timed = batches[:2], batches[2:]
        time_sandwich(trainer, warm)
        model, opt, mflops = plain_loop(trainer)
        res = trainer.space.max_arch().resolution
        cl = trainer.channels_last
        time_plain(model, opt, mflops, warm, res, cl)
        rows = interleaved_rounds({"sandwich": lambda: time_sandwich(trainer, timed),
                                   "plain": lambda: time_plain(model, opt, mflops, timed, res, cl)}, rounds)
    images = sum(int(x.shape[0]) for x, _ in timed)
    out: dict[str, Any] = {"config": name, "batch": cfg.data.batch_size, "threads": threads, "steps": len(timed),
                           "rounds": rounds, "channels_last": cl}
    for kind, runs in rows.items():
        secs = statistics.median(s for s, _ in runs)
        gflop = runs[0][1]
        out[kind] = {"images_per_s": images / secs, "gflop_per_s": gflop / secs, "step_s": secs / len(timed)}
    out["ratio_gflops"] = out["sandwich"]["gflop_per_s"] / out["plain"]["gflop_per_s"]
    per_round = compare(*([g / s for s, g in rows[kind]] for kind in ("sandwich", "plain")))
    out["ratio_gflops_rounds"] = {"median": per_round.median, "ci95": [per_round.low, per_round.high],
                                  "ratios": list(per_round.ratios)}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--configs", default="quickstart,fashion_mnist")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("overrides", nargs="*", help="config overrides for both configs, e.g. data.batch_size=64")
    args = ap.parse_args(argv)
    if not args.json:
        print_header()
    for name in args.configs.split(","):
        r = bench(name, args.steps, args.rounds, args.threads, args.overrides)
        if args.json:
            print(json.dumps(r))
            continue
        s, p, q = r["sandwich"], r["plain"], r["ratio_gflops_rounds"]
        print(f"{name:14s} batch {r['batch']:4d} threads {r['threads']} channels_last {int(r['channels_last'])}  sandwich {s['images_per_s']:8.1f} img/s "
              f"{s['gflop_per_s']:6.2f} GFLOP/s ({s['step_s'] * 1e3:7.1f} ms/step) | plain max subnet "
              f"{p['images_per_s']:8.1f} img/s {p['gflop_per_s']:6.2f} GFLOP/s | GFLOP/s ratio {r['ratio_gflops']:.2f} "
              f"(per round: median {q['median']:.2f}, 95% interval {q['ci95'][0]:.2f}-{q['ci95'][1]:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
