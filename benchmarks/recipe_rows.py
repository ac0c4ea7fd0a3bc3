"""The rows of ``docs/training.md``'s Fashion-MNIST recipe tables ("Small images: what holds the
supernet back"), one setting per row, each measured again and kept as one record.

A supernet row: ``attentivenas train --config configs/fashion_mnist.yaml BUDGET ROW runtime.threads=1``
(BUDGET: ``data.train_size=10000 optim.epochs=4``, or the full data, 54,000 images for 8 epochs), then
the min and max subnet on the hold-out and the test split, ``attentivenas evaluate --calib-batches 16``
(BN recalibrated on 16 x 256 training images). A reference row: ``benchmarks/plain_cnn_reference.py``
on the same config and overrides (a plain CNN trained alone). Every record,
``OUT/rows/<name>.json``, holds the row's overrides, its commands, seed, wall times and load, the
run's resolved ``config.yaml`` and checkpoint sha256, and the evaluations; a finished row is skipped
when the script runs again (a killed training resumes from its checkpoint). ``--rows`` picks rows by
name, in the order given.

    OMP_NUM_THREADS=1 python benchmarks/recipe_rows.py --rows plain-cnn,defaults-s1,defaults-s2
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from attentivenas.io import atomic_write_json
from measured_steps import CLI, ROOT, done, evaluate_ends, python, run_step, sha256

SMALL = ["data.train_size=10000", "optim.epochs=4"]
FULL: list[str] = []  # the config's own: all 54,000 training images, 8 epochs
AUG = ["data.random_shift=2", "data.random_flip=true"]
#: the "distillation after 2 epochs" row of the old defaults: batch 128, augmentation, w = 2
W2 = ["data.batch_size=128", *AUG, "loss.distill_warmup_epochs=2"]
#: name -> (kind, budget, overrides, label)
ROWS: dict[str, tuple[str, list[str], list[str], str]] = {
    "plain-cnn-b64": ("cnn", SMALL, [], "plain CNN alone, batch 64, no augmentation"),
    "plain-cnn-b128": ("cnn", SMALL, ["data.batch_size=128"], "plain CNN alone, batch 128, no augmentation"),
    "plain-cnn-b128-aug": ("cnn", SMALL, ["data.batch_size=128", *AUG], "plain CNN alone, old settings"),
    "defaults-s1": ("supernet", SMALL, ["seed=1"], "the new defaults, seed 1"),
    "defaults-s2": ("supernet", SMALL, ["seed=2"], "the new defaults, seed 2"),
    "old-defaults": ("supernet", SMALL, ["data.batch_size=128", *AUG, "loss.distill_warmup_epochs=0"],
                     "old defaults (distillation from step 0)"),
    "labels-b32": ("supernet", SMALL, ["data.batch_size=32"], "labels only, batch 32, no augmentation"),
    "w2-b64": ("supernet", SMALL, ["loss.distill_warmup_epochs=2"],
               "distillation after 2 epochs, batch 64, no augmentation"),
    "w2": ("supernet", SMALL, W2, "distillation after 2 epochs"),
    "w2-noaug": ("supernet", SMALL, ["data.batch_size=128", "loss.distill_warmup_epochs=2"],
                 "... and no augmentation"),
    "labels-b128-aug": ("supernet", SMALL, ["data.batch_size=128", *AUG], "labels only"),
    "labels-b64-aug": ("supernet", SMALL, AUG, "labels only, batch 64"),
    "w2-b64-aug": ("supernet", SMALL, [*AUG, "loss.distill_warmup_epochs=2"], "... and batch 64"),
    "w2-noreg": ("supernet", SMALL, [*W2, "model.dropout=0", "model.drop_connect=0", "loss.label_smoothing=0"],
                 "... and no dropout, drop-connect or label smoothing"),
    "w2-lr02": ("supernet", SMALL, [*W2, "optim.lr=0.2"], "... and LR 0.2 per 256 images (not 0.1)"),
    "labels-b32-aug": ("supernet", SMALL, ["data.batch_size=32", *AUG], "labels only, batch 32"),
    "full-w4": ("supernet", FULL, ["loss.distill_warmup_epochs=4"], "full data, distillation after 4 epochs"),
    "full-plain-cnn": ("cnn", FULL, [], "full data, plain CNN alone, no augmentation"),
    "full-plain-cnn-aug": ("cnn", FULL, AUG, "full data, plain CNN alone, with augmentation"),
}


def seed_of(overrides: list[str]) -> int:
    return next((int(o.split("=", 1)[1]) for o in overrides if o.startswith("seed=")), 0)


def supernet_row(name: str, budget: list[str], overrides: list[str], work: Path, log: Path) -> dict[str, Any]:
    """Train and evaluate one supernet row."""
    run_dir = work / name
    seed = seed_of(overrides)
    cmd = [CLI, "train", "--config", "configs/fashion_mnist.yaml", *budget, *overrides, "runtime.threads=1",
           "--out", str(run_dir), "--resume", "auto"]
    rec: dict[str, Any] = {"train": run_step(work / "records" / f"{name}-train.json", cmd, seed=seed, log=log)}
    ckpt = run_dir / "checkpoints" / "last.pt"
    rec["checkpoint_sha256"] = sha256(ckpt)
    rec["config"] = (run_dir / "config.yaml").read_text()
    rec["evaluate"] = evaluate_ends(ckpt, name, work, seed, log, rec["checkpoint_sha256"], ("--calib-batches", "16"))
    return rec


def cnn_row(name: str, budget: list[str], overrides: list[str], work: Path, log: Path) -> dict[str, Any]:
    """One plain-CNN reference row."""
    cmd = [python(), "benchmarks/plain_cnn_reference.py", "--config", "configs/fashion_mnist.yaml",
           "--threads", "1", *budget, *overrides]
    return {"reference": run_step(work / "records" / f"{name}.json", cmd, seed=seed_of(overrides), log=log)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/recipe")
    ap.add_argument("--work", type=Path, default=ROOT / "runs/recipe")
    ap.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated, from: {', '.join(ROWS)}")
    args = ap.parse_args()
    out, work = args.out.resolve(), args.work.resolve()
    for name in args.rows.split(","):
        if name not in ROWS:
            raise SystemExit(f"--rows: unknown row {name!r}; known: {', '.join(ROWS)}")
        dest = out / "rows" / f"{name}.json"
        if done(dest) is not None:
            print(f"skip (done): {dest}", flush=True)
            continue
        kind, budget, overrides, label = ROWS[name]
        fn = supernet_row if kind == "supernet" else cnn_row
        rec = fn(name, budget, overrides, work, work / f"{name}.log")
        atomic_write_json(dest, {"name": name, "label": label, "kind": kind, "budget": budget,
                                 "overrides": overrides, "seed": seed_of(overrides), **rec, "done": True})
        print(json.dumps({"row": name, "done": True}), file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
