"""Which part of the architecture makes an exported AttentiveNAS subnet slower per MFLOP than MobileNetV3?

AttentiveNAS-A0 (random weights, 1000 classes) is timed as exported and with one part swapped at a
time for MobileNetV3-Large's choice: the squeeze-and-excitation modules removed, swish (SiLU)
replaced by hard-swish, both; torchvision's ``mobilenet_v3_large`` is timed as it is and with its
hard-swish replaced by swish. Every model's MFLOPs (multiply-accumulates) are counted the same way,
with ``torch.utils.flop_counter``, so ``us/MFLOP`` compares like with like; the shortcut
projections stay (they are part of the space; their MFLOPs are in the count). Same runtimes and
timing as ``bench_runtimes.py``: all six models of a runtime and batch are loaded together and
timed in the shared interleaved rounds (``benchmarks/timing.py``), each ratio the median of its
rounds (with their range and a 95% bootstrap interval of that median)::

    python benchmarks/bench_arch_parts.py [--threads 1] [--batches 1,32] [--runtimes torch,onnxruntime]
                                          [--repeats 20] [--rounds 5] [--clock wall] [--json]
"""

from __future__ import annotations

import argparse
import copy
import json

import numpy as np
import torch
import torch.nn as nn
from torchvision.models import mobilenet_v3_large

from attentivenas.latency import RUNTIMES, Runner, prepare, time_runner
from attentivenas.nn import Supernet
from attentivenas.nn.static import SqueezeExcite
from attentivenas.runtimes.records import is_available
from attentivenas.runtimes.runners import CPU_CLOCK_RUNTIMES
from attentivenas.space import ATTENTIVENAS_SPACE, named_arch
from bench_runtimes import macs
from timing import interleaved_rounds, median_interval, print_header, ratios


def swap(model: nn.Module, kind: type[nn.Module], make) -> nn.Module:
    """A copy of ``model`` with every submodule of type ``kind`` replaced by ``make()``."""
    out = copy.deepcopy(model)
    for child in list(out.modules()):
        for sub_name, sub in list(child.named_children()):
            if isinstance(sub, kind):
                setattr(child, sub_name, make())
    return out.eval()


def variants() -> list[tuple[str, nn.Module, int]]:
    torch.manual_seed(0)
    arch = named_arch("a0")
    a0 = Supernet(ATTENTIVENAS_SPACE, 1000).eval().extract(arch).eval()
    mbv3 = mobilenet_v3_large(weights=None).eval()
    from torchvision.ops.misc import SqueezeExcitation  # heavy: only to count MobileNetV3's SE

    assert any(isinstance(m, SqueezeExcitation) for m in mbv3.modules())
    r = arch.resolution
    return [
        ("A0", a0, r),
        ("A0 without SE", swap(a0, SqueezeExcite, nn.Identity), r),
        ("A0 with hard-swish", swap(a0, nn.SiLU, nn.Hardswish), r),
        ("A0 without SE, hard-swish", swap(swap(a0, SqueezeExcite, nn.Identity), nn.SiLU, nn.Hardswish), r),
        ("mobilenet_v3_large", mbv3, 224),
        ("mobilenet_v3_large with swish", swap(mbv3, nn.Hardswish, nn.SiLU), 224),
    ]


def interleaved_medians(runners: dict[str, Runner], repeats: int, rounds: int, clock: str,
                       warmup: int = 2) -> dict[str, list[float]]:
    """Each runner's median ms per round, in the shared timer's interleaved rounds: a round times
    every runner once (``repeats`` runs after ``warmup``), starting one runner further along each
    round, so slow drift of the machine falls on all of them alike."""

    def side(runner: Runner):
        return lambda: float(np.median(time_runner(runner, warmup=warmup, repeats=repeats, rounds=1, clock=clock)))

    return interleaved_rounds({name: side(r) for name, r in runners.items()}, rounds)


def ratios_per_mflop(medians: dict[str, list[float]], mflops: dict[str, float], reference: str) -> dict[str, list[float]]:
    """Per round, each model's time per MFLOP over ``reference``'s in the same round."""
    return {n: [r * mflops[reference] / mflops[n] for r in ratios(times, medians[reference])]
            for n, times in medians.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batches", default="1,32")
    ap.add_argument("--runtimes", default="torch,onnxruntime")
    ap.add_argument("--repeats", type=int, default=20, help="timed runs per round at batch 1 (a quarter at batch 32, >= 3)")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds over all models (each ratio: median of rounds)")
    ap.add_argument("--clock", default="wall", choices=["wall", "cpu"])
    ap.add_argument("--json", action="store_true", help="one JSON object per (model, runtime, batch) instead of the table")
    args = ap.parse_args()
    if args.repeats < 1 or args.rounds < 1:
        ap.error("--repeats and --rounds must be at least 1")
    runtimes = [r for r in args.runtimes.split(",") if r in RUNTIMES and is_available(r)]
    batches = [int(b) for b in args.batches.split(",")]
    models = variants()
    mflops = {name: macs(model, res) for name, model, res in models}
    reference = "mobilenet_v3_large"
    rows = []
    for runtime in runtimes:
        for batch in batches:
            gen = torch.Generator().manual_seed(0)
            runners = {name: prepare(model, torch.randn(batch, 3, res, res, generator=gen), runtime, "cpu",
                                     args.threads) for name, model, res in models}
            repeats = args.repeats if batch == 1 else max(3, args.repeats // 4)
            clock = args.clock if runtime in CPU_CLOCK_RUNTIMES else "wall"
            medians = interleaved_medians(runners, repeats, args.rounds, clock)
            for name, per_round in ratios_per_mflop(medians, mflops, reference).items():
                iv = median_interval(per_round)
                rows.append({"model": name, "mflops": round(mflops[name], 2), "runtime": runtime, "batch": batch,
                             "median_ms": float(np.median(medians[name])), "rounds": args.rounds, "clock": clock,
                             "vs_mbv3_per_mflop": iv.median, "low": min(per_round), "high": max(per_round),
                             "ci95_low": iv.low, "ci95_high": iv.high})
            del runners
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return
    print_header()
    print(f"{args.threads} thread(s), {args.rounds} interleaved rounds")
    print("| model | MFLOPs | runtime | batch | median ms | x MobileNetV3 per MFLOP (median of rounds) | range "
          "| 95% interval |")
    print("|---|---:|---|---:|---:|---:|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['mflops']:.1f} | {r['runtime']} | {r['batch']} | {r['median_ms']:.2f} "
              f"| {r['vs_mbv3_per_mflop']:.2f} | {r['low']:.2f}-{r['high']:.2f} "
              f"| {r['ci95_low']:.2f}-{r['ci95_high']:.2f} |")


if __name__ == "__main__":
    main()
