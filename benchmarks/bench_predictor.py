"""Predictor and search speed on a synthetic dataset of the attentivenas space.

Accuracy is a known smooth function (log MFLOPs plus small knob terms plus noise), so the numbers
measure the machinery, not a real supernet. Usage: ``python benchmarks/bench_predictor.py [--n 300]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from attentivenas import accuracy as P
from attentivenas.config import SearchConfig
from attentivenas.costs import CostModel
from attentivenas.search import search_with_predictor
from attentivenas.space import ATTENTIVENAS_SPACE as SPACE


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--kinds", default="rf,lgbm,ridge,gp")
    ap.add_argument("--folds", type=int, default=5)
    args = ap.parse_args()
    cost = CostModel(SPACE)
    rng = np.random.default_rng(1)

    def evaluate(arch) -> float:
        g = SPACE.encode(arch)[None]
        return float(62 + 2.6 * np.log(cost.flops(g)[0]) + 0.1 * g[0, 0] + rng.normal(0, 0.15))

    ds = P.build_arch_dataset(SPACE, evaluate, args.n, seed=0, progress=False)
    genes = SPACE.sample_genes(np.random.default_rng(2), 50)
    print(f"{len(ds)} archs, {args.folds}-fold CV; predict times for 50 rows (median of 50)")
    print(f"{'kind':6} {'tau':>6} {'rho':>6} {'rmse':>6} {'fit s':>6} {'predict ms':>10} {'+features ms':>12}")
    for kind in P.check_kinds(args.kinds.split(",")):
        r = P.cross_validate(ds, kind, args.folds, seed=0)
        pred = P.fit_predictor(ds, kind)
        x = pred.featurize(genes)
        t_pred = _median_ms(lambda pred=pred, x=x: pred.predict(x))
        t_all = _median_ms(lambda pred=pred: pred.predict_genes(genes))
        print(f"{kind:6} {r['kendall_tau']:6.3f} {r['spearman_rho']:6.3f} {r['rmse']:6.3f} {r['fit_seconds']:6.2f} "
              f"{t_pred:10.3f} {t_all:12.3f}")
    pred = P.fit_predictor(ds, "rf")
    t0 = time.perf_counter()
    config = SearchConfig.model_validate({"budgets": {"max_mflops": 600}, "seed": 0,
                                          "evolution": {"pop_size": 50, "generations": 30}})
    res = search_with_predictor(SPACE, pred, config)
    print(f"search pop 50 x 30 generations (rf): {time.perf_counter() - t0:.2f} s, {res.n_evaluations} archs, "
          f"front {len(res.pareto)}, hypervolume {res.hypervolume:.4f}")


def _median_ms(fn, repeats: int = 50) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e3)


if __name__ == "__main__":
    main()
