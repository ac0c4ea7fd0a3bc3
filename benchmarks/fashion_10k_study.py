"""The 10,000-image, 4-epoch Fashion-MNIST supernet of ``configs/fashion_mnist.yaml`` and what is
measured on it (``docs/results.md``: the ranking probe and the fine-tuning of its Pareto subnets;
``docs/training.md``: the recipe table's "new defaults" and "max subnet alone" rows). Steps, each a
record under ``--out`` (skipped when finished, so a killed run is continued by running it again):

1. ``supernet/train.json``: ``attentivenas train --config configs/fashion_mnist.yaml
   data.train_size=10000 optim.epochs=4 runtime.threads=1 seed=SEED`` (labels only: the config's
   ``loss.distill_warmup_epochs`` is 8); its resolved ``config.yaml`` and ``metrics.jsonl`` are copied
   beside it, the checkpoint's sha256 recorded (the checkpoint itself stays in ``--work``);
2. ``supernet/eval-{min,max}-{holdout,test}.json``: ``attentivenas evaluate --calib-batches 16``;
3. ``probe/pK/result.json``: the 8 subnets of ``--probe-archs`` trained alone from scratch on the
   same images and budget (``attentivenas finetune --init scratch --distill none --epochs 4
   --calib-batches 16``), the finetune result with this step's record under ``"run"``;
4. ``ranking.json``: ``attentivenas ranking --probe OUT/probe --split test --calib-batches 16``;
5. ``stage2/``: ``attentivenas quickstart`` on the trained run (predictor of 24 subnets, NSGA-II
   30 x 15, 6 re-measured), its ``pareto.json`` copied;
6. ``finetune-{kd,none}/subnet_N.json``: each Pareto subnet fine-tuned alone for 2 epochs
   (``attentivenas finetune --arch PARETO.json:N --epochs 2 --calib-batches 16 --distill kd|none``).

    OMP_NUM_THREADS=1 python benchmarks/fashion_10k_study.py   # 80 min of one core on a busy machine (2026-12-08)
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from attentivenas.io import atomic_write_json
from measured_steps import CLI, ROOT, done, run_step, sha256

TRAIN_OVERRIDES = ["data.train_size=10000", "optim.epochs=4", "runtime.threads=1"]


def train(out: Path, work: Path, seed: int, log: Path) -> Path:
    """Step 1; returns the checkpoint."""
    run_dir = work / "supernet"
    ckpt = run_dir / "checkpoints" / "last.pt"
    cmd = [CLI, "train", "--config", "configs/fashion_mnist.yaml", *TRAIN_OVERRIDES, f"seed={seed}",
           "--out", str(run_dir), "--resume", "auto"]
    rec = out / "supernet" / "train.json"
    if done(rec) is None:
        run_step(rec, cmd, seed=seed, log=log, extra={"checkpoint": str(ckpt.relative_to(ROOT)),
                                                      "checkpoint_sha256": "pending"})
        obj = json.loads(rec.read_text())
        obj["checkpoint_sha256"] = sha256(ckpt)
        atomic_write_json(rec, obj)
        for name in ("config.yaml", "metrics.jsonl"):
            if (run_dir / name).exists():
                shutil.copyfile(run_dir / name, out / "supernet" / name)
    return ckpt


def evaluate(out: Path, ckpt: Path, seed: int, log: Path) -> None:
    """Step 2: min and max subnet, hold-out and test."""
    digest = sha256(ckpt)
    for arch in ("min", "max"):
        for split in ("holdout", "test"):
            cmd = [CLI, "evaluate", "--checkpoint", str(ckpt), "--arch", arch, "--split", split,
                   "--calib-batches", "16", "--threads", "1", "--json"]
            run_step(out / "supernet" / f"eval-{arch}-{split}.json", cmd, seed=seed, log=log,
                     extra={"checkpoint_sha256": digest, "arch": arch, "split": split})


def probe(out: Path, work: Path, ckpt: Path, archs: Path, seed: int, log: Path) -> None:
    """Step 3: the probe subnets trained alone, one folder each."""
    digest = sha256(ckpt)
    for item in json.loads(archs.read_text())["archs"]:
        dest = out / "probe" / item["name"] / "result.json"
        if done(dest) is not None:
            print(f"skip (done): {dest}", flush=True)
            continue
        run_dir = work / "probe" / item["name"]
        cmd = [CLI, "finetune", "--checkpoint", str(ckpt), "--arch", json.dumps(item["arch"], separators=(",", ":")),
               "--init", "scratch", "--distill", "none", "--epochs", "4", "--calib-batches", "16",
               "--seed", str(seed), "--threads", "1", "--out", str(run_dir), "--resume", "auto", "--json"]
        rec = run_step(work / "records" / f"probe-{item['name']}.json", cmd, seed=seed, log=log,
                       extra={"checkpoint_sha256": digest, "probe_archs": str(archs.relative_to(ROOT)),
                              "name": item["name"]})
        result = json.loads((run_dir / "result.json").read_text())
        result["run"] = {k: v for k, v in rec.items() if k != "output"}
        result["done"] = True
        atomic_write_json(dest, result)


def ranking(out: Path, ckpt: Path, seed: int, log: Path) -> None:
    """Step 4."""
    cmd = [CLI, "ranking", "--checkpoint", str(ckpt), "--probe", str(out / "probe"), "--split", "test",
           "--calib-batches", "16", "--threads", "1", "--json"]
    run_step(out / "ranking.json", cmd, seed=seed, log=log, extra={"checkpoint_sha256": sha256(ckpt)})


def stage2(out: Path, work: Path, ckpt: Path, seed: int, log: Path) -> Path:
    """Step 5; returns the pareto.json."""
    run_dir = work / "supernet"
    cmd = [CLI, "quickstart", "--config", str(run_dir / "config.yaml"), "--out", str(run_dir),
           "--num-archs", "24", "--pop-size", "30", "--generations", "15", "--remeasure-top", "6",
           "--seed", str(seed), "runtime.threads=1"]
    rec = out / "stage2" / "quickstart.json"
    if done(rec) is None:
        before = sha256(ckpt)
        run_step(rec, cmd, seed=seed, log=log, extra={"checkpoint_sha256": before})
        obj = json.loads(rec.read_text())
        obj["checkpoint_sha256_after"] = sha256(ckpt)  # the same: quickstart resumed the finished run
        atomic_write_json(rec, obj)
        for name in ("pareto.json", "pareto.csv"):
            shutil.copyfile(run_dir / name, out / "stage2" / name)
        if (run_dir / "models" / "index.json").exists():
            shutil.copyfile(run_dir / "models" / "index.json", out / "stage2" / "models_index.json")
    return out / "stage2" / "pareto.json"


def finetune(out: Path, work: Path, ckpt: Path, pareto: Path, seed: int, log: Path) -> None:
    """Step 6: every Pareto subnet, KD and labels only."""
    digest = sha256(ckpt)
    front = json.loads(pareto.read_text())
    n = len(front["pareto"] if isinstance(front, dict) else front)
    for i in range(n):  # both losses of a subnet before the next subnet: a cut run leaves pairs
        for distill in ("kd", "none"):
            dest = out / f"finetune-{distill}" / f"subnet_{i}.json"
            if done(dest) is not None:
                print(f"skip (done): {dest}", flush=True)
                continue
            run_dir = work / f"finetune-{distill}" / f"subnet_{i}"
            cmd = [CLI, "finetune", "--checkpoint", str(ckpt), "--arch", f"{pareto}:{i}", "--epochs", "2",
                   "--calib-batches", "16", "--distill", distill, "--seed", str(seed), "--threads", "1",
                   "--out", str(run_dir), "--resume", "auto", "--json"]
            rec = run_step(work / "records" / f"finetune-{distill}-{i}.json", cmd, seed=seed, log=log,
                           extra={"checkpoint_sha256": digest, "pareto_index": i})
            result = json.loads((run_dir / "result.json").read_text())
            result["run"] = {k: v for k, v in rec.items() if k != "output"}
            result["done"] = True
            atomic_write_json(dest, result)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/fashion-10k")
    ap.add_argument("--work", type=Path, default=ROOT / "runs/fashion-10k",
                    help="training folders and checkpoints (not kept in the repository)")
    ap.add_argument("--probe-archs", type=Path, default=ROOT / "benchmarks/results/sampling-54k/probe_archs.json")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", default="train,evaluate,probe,ranking,stage2,finetune",
                    help="comma-separated steps to run (in this order)")
    args = ap.parse_args()
    out, work = args.out.resolve(), args.work.resolve()
    steps = set(args.only.split(","))
    log = work / "commands.log"
    out.mkdir(parents=True, exist_ok=True)
    ckpt = work / "supernet" / "checkpoints" / "last.pt"
    if "train" in steps:
        ckpt = train(out, work, args.seed, log)
    if "evaluate" in steps:
        evaluate(out, ckpt, args.seed, log)
    if "probe" in steps:
        probe(out, work, ckpt, args.probe_archs.resolve(), args.seed, log)
    if "ranking" in steps:
        ranking(out, ckpt, args.seed, log)
    if "stage2" in steps:
        pareto = stage2(out, work, ckpt, args.seed, log)
        if "finetune" in steps:
            finetune(out, work, ckpt, pareto, args.seed, log)
    print("done", file=sys.stderr)


if __name__ == "__main__":
    main()
