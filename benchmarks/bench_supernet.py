"""Supernet speed, measured side by side in one run: set_arch cost, dynamic vs static forward,
and one sandwich-sized training step of the tiny space.

Usage: python benchmarks/bench_supernet.py [--space tiny] [--batch 64] [--resolution R] [--repeats 5]
                                           [--threads 1] [--channels-last] [--reuse-freed-memory auto]

Prints medians of interleaved rounds and the median of the per-round ratios (dynamic / static, eval
and forward + backward: each round times both back to back, so the machine's drift cancels), so a
change to the supernet's ops can be compared before and after on the same noisy machine. Freed host
memory is kept for reuse as training does on CPU (``--reuse-freed-memory false``: glibc's defaults).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch

from attentivenas.host_memory import in_effect, reuse_freed_memory
from attentivenas.nn import Supernet
from attentivenas.space import get_space


def interleaved(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Seconds of each function per round, timed in alternating rounds (fair on a noisy machine)."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t)
    return times


def ratio(times: dict[str, list[float]]) -> float:
    """The median over rounds of dynamic / static."""
    return float(np.median([d / s for d, s in zip(times["dyn"], times["static"], strict=True)]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="tiny")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--resolution", type=int, default=None, help="input size (default: the space's largest)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--channels-last", action="store_true", help="both nets and the input in channels-last memory")
    ap.add_argument("--reuse-freed-memory", choices=("auto", "true", "false"), default="auto",
                    help="glibc keeps freed memory for reuse (auto: on CPU, as training does)")
    args = ap.parse_args()
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
    print(f"set_arch: {(time.perf_counter() - t) / len(archs) * 1e6:.1f} us per arch ({space.name} space)")

    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    net.to(memory_format=fmt)
    res = args.resolution or max(space.resolutions)
    x = torch.randn(args.batch, 3, res, res).contiguous(memory_format=fmt)
    print(f"batch {args.batch} at {res}, {args.threads} thread(s), channels_last {args.channels_last}, "
          f"reuse_freed_memory {in_effect()}, median of {args.repeats} interleaved rounds")
    print(f"{'subnet':<6} {'dyn eval ms':>12} {'static eval ms':>15} {'ratio':>6} "
          f"{'dyn fwd+bwd ms':>15} {'static fwd+bwd ms':>18} {'ratio':>6}")
    for name, arch in (("min", space.min_arch()), ("max", space.max_arch())):
        net.set_arch(arch)
        static = net.extract().to(memory_format=fmt)

        def train_step(model: torch.nn.Module) -> None:
            model.train()
            model.zero_grad(set_to_none=True)
            model(x).logsumexp(1).mean().backward()

        def evaluate(model: torch.nn.Module) -> None:
            model.eval()
            with torch.no_grad():
                model(x)

        t_eval = interleaved({"dyn": lambda: evaluate(net), "static": lambda s=static: evaluate(s)}, args.repeats)
        t_train = interleaved({"dyn": lambda: train_step(net), "static": lambda s=static: train_step(s)}, args.repeats)
        med = {k: {side: float(np.median(v)) * 1e3 for side, v in t.items()} for k, t in
               (("eval", t_eval), ("train", t_train))}
        print(f"{name:<6} {med['eval']['dyn']:>12.2f} {med['eval']['static']:>15.2f} {ratio(t_eval):>6.3f} "
              f"{med['train']['dyn']:>15.2f} {med['train']['static']:>18.2f} {ratio(t_train):>6.3f}")


if __name__ == "__main__":
    main()
