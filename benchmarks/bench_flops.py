"""Vectorised FLOPs rate on one core: archs per second for the attentivenas space.

Usage: python benchmarks/bench_flops.py [--n 200000] [--repeats 3]
Exits 1 if CostModel.flops is below 100,000 archs/s (target of the cost model).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import numpy as np  # noqa: E402

TARGET = 100_000


def best_rate(fn: Callable[[np.ndarray], np.ndarray], genes: np.ndarray, repeats: int) -> float:
    """Best-of-``repeats`` archs/s of ``fn`` over the whole gene matrix."""
    fn(genes[:100])
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn(genes)
        best = min(best, time.perf_counter() - t)
    return len(genes) / best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass
    from attentivenas.costs import CostModel, TableCost
    from attentivenas.space import ATTENTIVENAS_SPACE as S

    genes = S.sample_genes(np.random.default_rng(0), args.n)
    cm = CostModel(S)
    t = time.perf_counter()
    tc = TableCost(S)
    build = time.perf_counter() - t
    assert np.array_equal(tc(genes[:2000]), cm.flops(genes[:2000]))
    rate_cm = best_rate(cm.flops, genes, args.repeats)
    rate_tc = best_rate(tc, genes, args.repeats)
    print(f"archs: {args.n}, best of {args.repeats}, 1 thread")
    print(f"CostModel.flops : {rate_cm:12,.0f} archs/s  (target >= {TARGET:,})")
    print(f"TableCost       : {rate_tc:12,.0f} archs/s  (sampling's table cost; built in {build:.2f} s, same values)")
    if rate_cm < TARGET:
        print("FAIL: CostModel below target", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
