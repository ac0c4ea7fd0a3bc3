"""Gradients of sliced shared weights: added in place into ``param.grad`` (``nn.layers.take``, the
default) against autograd's own slicing (a zero-filled gradient of the whole parameter, then added
whole; inside ``nn.layers.autograd_slices()``), timed side by side in one process, in the shared interleaved rounds of
``benchmarks/timing.py`` (every subnet and variant once a round, the order rotating), on the
supernet's forward + backward of the min subnet and of seeded random subnets. Printed per subnet:
the median ms of each variant, the ratio of those medians, and the median of the per-round ratios
with its 95% bootstrap interval.

    python benchmarks/bench_shared_slice.py --batch 16 --resolution 224 --rounds 7 --threads 1
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import numpy as np
import torch

from attentivenas.nn import Supernet, layers
from attentivenas.space import get_space
from timing import compare, interleaved_rounds, print_header


def step_ms(net: Supernet, x: torch.Tensor) -> float:
    net.zero_grad(set_to_none=False)  # as in training: the step's first backward meets existing grads
    t0 = time.perf_counter()
    net(x).logsumexp(1).mean().backward()
    return (time.perf_counter() - t0) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="attentivenas")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--resolution", type=int, default=None, help="input size (default: each arch's own)")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--random", type=int, default=2, help="seeded random subnets besides the min")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    space = get_space(args.space)
    torch.manual_seed(args.seed)
    net = Supernet(space, 1000).train().to(memory_format=torch.channels_last)
    rng = np.random.default_rng(args.seed)
    archs = {"min": space.min_arch(), **{f"random {i}": space.sample(rng) for i in range(args.random)}}
    sizes = {name: args.resolution or arch.resolution for name, arch in archs.items()}
    inputs = {name: torch.randn(args.batch, 3, r, r).to(memory_format=torch.channels_last) for name, r in sizes.items()}

    def side(name: str, in_place: bool):
        def run() -> float:
            net.set_arch(archs[name])
            with contextlib.nullcontext() if in_place else layers.autograd_slices():
                return step_ms(net, inputs[name])

        return run

    sides = {(name, variant): side(name, in_place) for name in archs
             for variant, in_place in (("in place", True), ("autograd", False))}
    times = interleaved_rounds(sides, args.rounds)
    print_header()
    print(f"forward + backward, batch {args.batch}, {args.threads} thread(s), channels-last, "
          f"median of {args.rounds} interleaved rounds (ms)")
    print(f"{'subnet':<10} {'autograd':>10} {'in place':>10} {'autograd / in place':>20} "
          f"{'per round: median':>18} {'95% interval':>14}")
    for name in archs:
        a, s = (statistics.median(times[(name, v)]) for v in ("autograd", "in place"))
        c = compare(times[(name, "autograd")], times[(name, "in place")])
        print(f"{name:<10} {a:>10.1f} {s:>10.1f} {a / s:>20.3f} {c.median:>18.3f} {f'{c.low:.3f}-{c.high:.3f}':>14}")


if __name__ == "__main__":
    main()
