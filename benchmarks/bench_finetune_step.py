"""A subnet's training step alone (``attentivenas finetune``'s step), contiguous against channels-last
memory, side by side.

For each subnet asked for, two copies of the same static subnet (extracted from one seeded supernet)
train on the same random batch with SGD and cross-entropy: one in PyTorch's default contiguous
memory, one in channels-last memory (what ``FinetuneSettings.channels_last="auto"`` does on the CPU).
Rounds of the two are interleaved (``benchmarks/timing.py``: the side that goes first alternates);
printed per subnet: the median ms per step of each and the median of the per-round ratios with its
95% bootstrap interval::

    python benchmarks/bench_finetune_step.py                         # tiny space: min, max, 1 thread
    python benchmarks/bench_finetune_step.py --archs min,max,a0 --space attentivenas --batch 32
"""

from __future__ import annotations

import argparse
import json
import statistics

import torch
from torch import nn

from attentivenas.nn import Supernet
from attentivenas.space import resolve_arch
from attentivenas.space.presets import get_space
from timing import compare, interleaved_rounds, print_header, timed


def step_side(sub: nn.Module, images: torch.Tensor, labels: torch.Tensor, steps: int) -> object:
    """``steps`` SGD steps of ``sub`` on one batch (a side of the timer)."""
    opt = torch.optim.SGD(sub.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()

    def run() -> None:
        for _ in range(steps):
            loss = loss_fn(sub(images), labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    return timed(run)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="tiny", help="search space preset (default tiny)")
    ap.add_argument("--archs", default="min,max", help="comma-separated subnets: min, max, a0..a6 or arch JSON files")
    ap.add_argument("--batch", type=int, default=64, help="images per step (default 64, the Fashion-MNIST recipe's)")
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--steps", type=int, default=10, help="steps per timed round (default 10)")
    ap.add_argument("--rounds", type=int, default=6, help="timed rounds (default 6, after one untimed)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    space = get_space(args.space)
    torch.manual_seed(0)
    net = Supernet(space, args.classes)
    rows = []
    if not args.json:
        print_header()
    for name in args.archs.split(","):
        arch = resolve_arch(name, space)
        images = torch.randn(args.batch, 3, arch.resolution, arch.resolution)
        labels = torch.randint(0, args.classes, (args.batch,))
        contiguous = net.extract(arch).train()
        channels_last = net.extract(arch).train().to(memory_format=torch.channels_last)
        sides = {"contiguous": step_side(contiguous, images, labels, args.steps),
                 "channels_last": step_side(channels_last, images.contiguous(memory_format=torch.channels_last),
                                            labels, args.steps)}
        times = interleaved_rounds(sides, args.rounds, warmup=1)
        cmp = compare(times["contiguous"], times["channels_last"])
        row = {"arch": name, "resolution": arch.resolution,
               **{f"{k}_ms": 1000 * statistics.median(v) / args.steps for k, v in times.items()},
               "speedup": cmp.median, "speedup_ci95": [cmp.low, cmp.high]}
        rows.append(row)
        if not args.json:
            print(f"{name:>8} @{arch.resolution}: contiguous {row['contiguous_ms']:.1f} ms/step, channels-last "
                  f"{row['channels_last_ms']:.1f} ms/step, {cmp.median:.2f}x [{cmp.low:.2f}, {cmp.high:.2f}]")
    if args.json:
        print(json.dumps({"space": args.space, "batch": args.batch, "threads": args.threads, "rows": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
