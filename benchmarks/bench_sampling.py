"""Cost of attentive sampling per chosen subnet: BestUp-k with predictor ranking on CPU.

Per chosen subnet: draw a target bin from the FLOPs prior, draw k = 50 candidates in it (rejection,
per-bin caches, walk for rare bins), score all candidates of the step in one predictor call, keep
the best: ``propose``, the scorer, ``choose``, exactly as the training step calls them. The predictor
is a random forest (100 trees) fitted on random archs; it is evaluated three ways: scikit-learn's
``predict`` (per-call overhead of several ms), its trees called directly, and the project's packed
``TreeEnsemble``.

Usage: python benchmarks/bench_sampling.py [--k 50] [--steps 30]
Exits 1 if the fastest forest path costs 2 ms or more per subnet at 2 subnets per step.
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

TARGET_MS = 2.0


def sample_step(sampler, scorer, n: int):
    """What a training step runs: propose ``n`` groups, score every candidate in one call, choose."""
    groups = sampler.propose(n)
    return sampler.choose(groups, scorer(groups, None))


def per_subnet_ms(sampler, scorer, n: int, steps: int, repeats: int = 3) -> float:
    """Best-of-``repeats`` mean time per chosen subnet of ``steps`` training-step samplings of ``n``."""
    for _ in range(10):
        sample_step(sampler, scorer, n)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(steps):
            sample_step(sampler, scorer, n)
        best = min(best, (time.perf_counter() - t) / (steps * n))
    return best * 1e3


def call_ms(fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray, repeats: int = 10) -> float:
    fn(x)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn(x)
        best = min(best, time.perf_counter() - t)
    return best * 1e3


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, default=50)
    ap.add_argument("--steps", type=int, default=30)
    args = ap.parse_args()
    import torch
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.linear_model import Ridge

    torch.set_num_threads(1)
    from attentivenas.accuracy import TreeEnsemble
    from attentivenas.costs import TableCost
    from attentivenas.space import ATTENTIVENAS_SPACE as S
    from attentivenas.train.sampling import ArchSampler, ConstraintPrior, PredictorEstimator
    from attentivenas.train.sandwich import estimator_scorer

    t = time.perf_counter()
    TableCost(S)
    t_tables = time.perf_counter() - t
    t = time.perf_counter()
    ConstraintPrior(S, seed=0)
    t_prior = time.perf_counter() - t
    print(f"setup: cost tables {t_tables:.2f} s, empirical prior (100k archs) {t_prior:.2f} s")

    rng = np.random.default_rng(0)
    x = S.features_from_genes(S.sample_genes(rng, 2000))
    y = x @ rng.normal(size=x.shape[1]) + rng.normal(scale=5.0, size=len(x))
    rf = RandomForestRegressor(n_estimators=100, random_state=0, n_jobs=1).fit(x, y)
    trees = [e.tree_ for e in rf.estimators_]

    def trees_direct(f: np.ndarray) -> np.ndarray:
        f32 = np.ascontiguousarray(f, dtype=np.float32)
        out = np.zeros(len(f32))
        for tr in trees:
            out += tr.predict(f32).reshape(-1)
        return out / len(trees)

    predictors: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "constant (sampling only)": lambda f: np.zeros(len(f)),
        "ridge": Ridge().fit(x, y).predict,
        "forest: sklearn predict": rf.predict,
        "forest: trees called directly": trees_direct,
    }
    predictors["forest: attentivenas TreeEnsemble"] = TreeEnsemble.from_sklearn(rf).predict
    fast_paths = ["forest: trees called directly", "forest: attentivenas TreeEnsemble"]
    x100 = x[: 2 * args.k]
    ref = rf.predict(x100)
    for name in fast_paths:
        assert np.allclose(predictors[name](x100), ref), name

    print(f"\nBestUp-{args.k}, predictor ranking, 1 thread; ms per chosen subnet (best of 3 x {args.steps} steps)")
    print(f"{'predictor':36s} {'predict(2k rows)':>16s} {'prior':>10s} {'2/step':>8s} {'8/step':>8s}")
    results: dict[tuple[str, str, int], float] = {}
    for name, fn in predictors.items():
        scorer = estimator_scorer(PredictorEstimator(fn, S))
        for kind in ("empirical", "uniform"):
            row = []
            for n in (2, 8):
                sampler = ArchSampler(S, "bestup", k=args.k, num_middle=n,
                                      prior=ConstraintPrior(S, kind=kind, seed=1), seed=1)
                ms = per_subnet_ms(sampler, scorer, n, args.steps)
                results[(name, kind, n)] = ms
                row.append(ms)
            pc = call_ms(fn, x[: 2 * args.k])
            print(f"{name:36s} {pc:13.3f} ms {kind:>10s} {row[0]:8.3f} {row[1]:8.3f}")
    best_fast = min(results[(name, "empirical", 2)] for name in fast_paths)
    verdict = "OK" if best_fast < TARGET_MS else "FAIL"
    print(f"\n{verdict}: fastest forest path, empirical prior, 2 subnets/step: {best_fast:.3f} ms/subnet "
          f"(target < {TARGET_MS} ms)")
    return 0 if best_fast < TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
