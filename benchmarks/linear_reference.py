"""A linear model on a config's images: the floor a supernet's subnets are judged against
(``docs/results.md``: "below a linear model on the same data").

Multinomial logistic regression (scikit-learn, lbfgs, L2) on the raw pixels, standardised, of
exactly the training images ``train`` would use (``data.train_size`` included: the same seeded,
class-stratified subset); the regularisation C is chosen on the config's hold-out images (never on
test), and the chosen model is scored on the test split. Writes one JSON object per training size
(hold-out top-1 of every C, test top-1 of the chosen one, seconds, the settings) to ``--out``.

    python benchmarks/linear_reference.py --config configs/fashion_mnist.yaml --sizes 10000,54000 \\
        --out benchmarks/results/linear-reference/fashion_mnist.json
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from attentivenas.config import load_config
from attentivenas.data import build_data
from attentivenas.io import atomic_write_json


def arrays(dataset: Any) -> tuple[np.ndarray, np.ndarray]:
    """Every image of a split, flattened, and its labels."""
    xs, ys = [], []
    for x, y in DataLoader(dataset, batch_size=2000, shuffle=False):
        xs.append(x.reshape(len(x), -1).float().numpy())
        ys.append(np.asarray(y))
    return np.concatenate(xs), np.concatenate(ys)


def fit_one(config: str, size: int | None, seed: int, cs: list[float], max_iter: int) -> dict[str, Any]:
    from sklearn.linear_model import LogisticRegression  # heavy
    from sklearn.preprocessing import StandardScaler

    cfg = load_config(config, [f"data.train_size={size if size else 'null'}", f"seed={seed}"])
    bundle = build_data(cfg.data, seed)
    xtr, ytr = arrays(bundle.train)
    xva, yva = arrays(bundle.val)
    xte, yte = arrays(bundle.test)
    scaler = StandardScaler().fit(xtr)
    xtr, xva, xte = scaler.transform(xtr), scaler.transform(xva), scaler.transform(xte)
    fits = []
    for c in cs:
        t0 = time.perf_counter()
        model = LogisticRegression(max_iter=max_iter, C=c).fit(xtr, ytr)
        fits.append({"C": c, "holdout_top1": round(float((model.predict(xva) == yva).mean() * 100), 2),
                     "iterations": int(np.max(model.n_iter_)), "fit_s": round(time.perf_counter() - t0, 1),
                     "model": model})
    best = max(fits, key=lambda f: f["holdout_top1"])
    top1 = float((best["model"].predict(xte) == yte).mean() * 100)
    return {"config": config, "data": cfg.data.name, "train_images": int(len(ytr)), "holdout_images": int(len(yva)),
            "test_images": int(len(yte)), "seed": seed,
            "model": f"LogisticRegression(lbfgs, max_iter={max_iter}) on standardised pixels, C chosen on the hold-out",
            "fits": [{k: v for k, v in f.items() if k != "model"} for f in fits], "chosen_C": best["C"],
            "test_top1": round(top1, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="configs/fashion_mnist.yaml")
    ap.add_argument("--sizes", default="10000", help="comma-separated data.train_size values (0: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--C", default="0.01,0.1", help="comma-separated regularisation values tried")
    ap.add_argument("--max-iter", type=int, default=200)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = []
    for s in args.sizes.split(","):
        rows.append(fit_one(args.config, int(s) or None, args.seed, [float(c) for c in args.C.split(",")],
                            args.max_iter))
        print(rows[-1], flush=True)
    atomic_write_json(args.out, {"command": "python benchmarks/linear_reference.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()), "finished": time.strftime("%Y-%m-%d %H:%M:%S"), "rows": rows})


if __name__ == "__main__":
    main()
