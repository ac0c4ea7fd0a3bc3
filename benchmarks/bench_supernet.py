"""Supernet speed, measured side by side in one run: set_arch cost, and the dynamic supernet against
its extracted static subnet (eval, and one training forward + backward).

Usage: python benchmarks/bench_supernet.py [--space tiny] [--batch 64] [--resolution R] [--repeats 5]
                                           [--block 3] [--subnets min,max] [--threads 1]
                                           [--channels-last] [--reuse-freed-memory auto] [--json]

The two sides are timed in blocks: a block runs them alternately ``--block`` times each (the order
swapped every time; the shared interleaved-rounds timer of ``benchmarks/timing.py``) and keeps each
side's fastest run, and its ratio is dynamic / static. On a shared machine a run is only ever slowed down, in bursts that last from milliseconds to seconds, so
a block's minimum is the side's speed in that moment and the alternation cancels the slower drift.
The figure is the median of the block ratios, with a 95% bootstrap interval of that median, so a
change to the supernet's ops can be compared before and after on the same noisy machine.

A training pass is timed as the sandwich step runs it: the gradients already exist (the step's
first subnet created them; later ones add into them) and are zeroed outside the timed region.
Freed host memory is kept for reuse as training does on CPU (``--reuse-freed-memory false``:
glibc's defaults).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

from attentivenas.host_memory import in_effect, reuse_freed_memory
from attentivenas.nn import Supernet
from attentivenas.space import get_space
from timing import compare, interleaved_rounds, print_header


def blocks(fns: dict[str, Callable[[], float]], n_blocks: int, block: int) -> dict[str, list[float]]:
    """Each side's fastest seconds per block; ``fns`` return the seconds of the run they time. The
    sides run in the shared timer's interleaved rounds (one warm-up round, then ``n_blocks`` x
    ``block`` rounds, the first side changing every round); a block is ``block`` consecutive rounds."""
    runs = interleaved_rounds(fns, n_blocks * block, warmup=1)
    return {k: [min(v[i * block:(i + 1) * block]) for i in range(n_blocks)] for k, v in runs.items()}


@dataclass(frozen=True)
class Ratio:
    """dynamic / static over the blocks: the median block ratio, its 95% bootstrap interval, the
    ratio of the fastest runs overall, and each side's median block time (ms)."""

    median: float
    low: float
    high: float
    of_fastest: float
    dynamic_ms: float
    static_ms: float


def block_ratio(times: dict[str, Sequence[float]], seed: int = 0) -> Ratio:
    """The :class:`Ratio` of ``times["dyn"]`` over ``times["static"]`` (paired by block)."""
    dyn, static = np.asarray(times["dyn"]), np.asarray(times["static"])
    c = compare(dyn, static, seed)
    return Ratio(c.median, c.low, c.high, float(dyn.min() / static.min()),
                 float(np.median(dyn)) * 1e3, float(np.median(static)) * 1e3)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="tiny")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--resolution", type=int, default=None, help="input size (default: the space's largest)")
    ap.add_argument("--repeats", type=int, default=5, help="blocks per subnet and mode")
    ap.add_argument("--block", type=int, default=3, help="alternations per block (each side's fastest is kept)")
    ap.add_argument("--subnets", default="min,max", help="comma-separated: min, max")
    ap.add_argument("--modes", default="eval,train", help="comma-separated: eval, train (forward + backward)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--channels-last", action="store_true", help="both nets and the input in channels-last memory")
    ap.add_argument("--reuse-freed-memory", choices=("auto", "true", "false"), default="auto",
                    help="glibc keeps freed memory for reuse (auto: on CPU, as training does)")
    ap.add_argument("--json", action="store_true", help="one JSON object per subnet and mode")
    args = ap.parse_args(argv)
    args.subnets = [s for s in args.subnets.split(",") if s]
    args.modes = [m for m in args.modes.split(",") if m]
    if not args.subnets or set(args.subnets) - {"min", "max"}:
        ap.error("--subnets: a comma-separated list of min, max")
    if not args.modes or set(args.modes) - {"eval", "train"}:
        ap.error("--modes: a comma-separated list of eval, train")
    if args.repeats < 1 or args.block < 1:
        ap.error("--repeats and --block: at least 1")
    return args


def timer(model: torch.nn.Module, x: torch.Tensor, mode: str) -> Callable[[], float]:
    """A function that runs one pass of ``model`` on ``x`` and returns its seconds."""

    def evaluate() -> float:
        model.eval()
        t = time.perf_counter()
        with torch.no_grad():
            model(x)
        return time.perf_counter() - t

    def train() -> float:
        model.train()
        model.zero_grad(set_to_none=False)  # as in the sandwich step: the gradients exist already
        t = time.perf_counter()
        model(x).logsumexp(1).mean().backward()
        return time.perf_counter() - t

    return evaluate if mode == "eval" else train


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    reuse = {"auto": "auto", "true": True, "false": False}[args.reuse_freed_memory]
    reuse_freed_memory(reuse, "cpu", "--reuse-freed-memory")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    space = get_space(args.space)
    net = Supernet(space, 10)
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(1000)]

    t = time.perf_counter()
    for a in archs:
        net.set_arch(a)
    set_arch_us = (time.perf_counter() - t) / len(archs) * 1e6

    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    net.to(memory_format=fmt)
    res = args.resolution or max(space.resolutions)
    x = torch.randn(args.batch, 3, res, res).contiguous(memory_format=fmt)
    setting = {"space": space.name, "batch": args.batch, "resolution": res, "threads": args.threads,
               "channels_last": args.channels_last, "reuse_freed_memory": in_effect(),
               "blocks": args.repeats, "block": args.block}
    if not args.json:
        print_header()
        print(f"set_arch: {set_arch_us:.1f} us per arch ({space.name} space)")
        print(f"batch {args.batch} at {res}, {args.threads} thread(s), channels_last {args.channels_last}, "
              f"reuse_freed_memory {in_effect()}; {args.repeats} blocks of {args.block} alternations, "
              "each side's fastest per block")
        print(f"{'subnet':<6} {'pass':<10} {'dyn ms':>9} {'static ms':>10} {'ratio':>6} {'95% interval':>14} "
              f"{'of fastest':>10}")
    for name in args.subnets:
        net.set_arch(space.min_arch() if name == "min" else space.max_arch())
        static = net.extract().to(memory_format=fmt)
        for mode in args.modes:
            times = blocks({"dyn": timer(net, x, mode), "static": timer(static, x, mode)}, args.repeats, args.block)
            r = block_ratio(times)
            label = "eval" if mode == "eval" else "fwd+bwd"
            if args.json:
                print(json.dumps({**setting, "subnet": name, "pass": label, "set_arch_us": set_arch_us, **asdict(r)}))
            else:
                print(f"{name:<6} {label:<10} {r.dynamic_ms:>9.1f} {r.static_ms:>10.1f} {r.median:>6.3f} "
                      f"{f'{r.low:.3f}-{r.high:.3f}':>14} {r.of_fastest:>10.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
