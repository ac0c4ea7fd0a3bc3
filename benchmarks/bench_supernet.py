"""Supernet speed, measured side by side in one run: set_arch cost, dynamic vs static forward,
and one sandwich-sized training step of the tiny space.

Usage: python benchmarks/bench_supernet.py [--space tiny] [--batch 64] [--repeats 5] [--threads 1]

Prints best-of-N times and the ratios between them (dynamic / static), so a change to the
supernet's ops can be compared before and after on the same noisy machine.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch

from attentivenas.nn import Supernet
from attentivenas.space import get_space


def best_of(fn: Callable[[], object], repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="tiny")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
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

    res = max(space.resolutions)
    x = torch.randn(args.batch, 3, res, res)
    print(f"batch {args.batch}, {args.threads} thread(s), best of {args.repeats}")
    print(f"{'subnet':<6} {'dyn eval ms':>12} {'static eval ms':>15} {'ratio':>6} {'dyn fwd+bwd ms':>15}")
    for name, arch in (("min", space.min_arch()), ("max", space.max_arch())):
        net.set_arch(arch)
        net.eval()
        static = net.extract().eval()
        with torch.no_grad():
            t_dyn = best_of(lambda: net(x), args.repeats)
            t_static = best_of(lambda static=static: static(x), args.repeats)
        net.train()

        def step() -> None:
            net.zero_grad(set_to_none=True)
            net(x).logsumexp(1).mean().backward()

        t_train = best_of(step, args.repeats)
        print(f"{name:<6} {t_dyn * 1e3:>12.2f} {t_static * 1e3:>15.2f} {t_dyn / t_static:>6.2f} {t_train * 1e3:>15.2f}")


if __name__ == "__main__":
    main()
