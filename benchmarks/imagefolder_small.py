"""Issue 38's user case measured: Fashion-MNIST as a small-image ImageFolder (28x28 PNGs, 3,000
training and 1,000 val/ images), from ``attentivenas init`` to the min and max subnets' top-1 on val/
(the test split), beside logistic regression on the raw pixels and, at the same budget, the old
ImageFolder transform (RandomResizedCrop 0.08-1 in training and in BN calibration, eval_resize 256).

    OMP_NUM_THREADS=1 python benchmarks/imagefolder_small.py --folder /tmp/fm-folder \
        --out benchmarks/results/imagefolder-small [--epochs 25] [--quick] [--no-old]

The folder is written by ``benchmarks/make_imagefolder.py`` when missing (``--quick``: a generated
10-class folder from tests/synthetic.py, tiny budget, for the test suite). Every run uses one thread.
Writes ``OUT/result.json`` and the runs under ``OUT/runs/`` (``--work`` elsewhere).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
#: the old ImageFolder behaviour, as overrides of the config that init writes
OLD = ["data.crop=random_resized", "data.crop_scale=[0.08,1.0]", "data.eval_resize=256", "data.calib_transform=train"]


def folder_arrays(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """The images of an ImageFolder split as flat greyscale [0, 1] pixel rows, and their labels."""
    from PIL import Image

    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    xs, ys = [], []
    for i, c in enumerate(classes):
        for f in sorted((folder / c).iterdir()):
            xs.append(np.asarray(Image.open(f).convert("L"), dtype=np.float32).ravel() / 255.0)
            ys.append(i)
    return np.stack(xs), np.asarray(ys)


def logistic_regression(folder: Path) -> dict[str, float]:
    """Logistic regression on raw pixels, fitted on train/ and scored on val/ (top-1, %)."""
    from sklearn.linear_model import LogisticRegression

    xtr, ytr = folder_arrays(folder / "train")
    xte, yte = folder_arrays(folder / "val")
    t0 = time.perf_counter()
    model = LogisticRegression(max_iter=2000, C=1.0).fit(xtr, ytr)
    return {"top1": round(100.0 * float((model.predict(xte) == yte).mean()), 2), "fit_s": round(time.perf_counter() - t0, 1),
            "train_images": len(ytr), "test_images": len(yte)}


def cli(*args: str, log: Path | None = None) -> str:
    """Run ``attentivenas ARGS`` with one thread; stdout (stderr to ``log``)."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    err = open(log, "w") if log is not None else subprocess.PIPE  # noqa: SIM115
    try:
        proc = subprocess.run([sys.executable, "-m", "attentivenas", *args], stdout=subprocess.PIPE, stderr=err,
                              text=True, env=env)
    finally:
        if log is not None:
            err.close()
    if proc.returncode != 0:
        raise SystemExit(f"attentivenas {' '.join(args)} failed ({proc.returncode}); see {log}")
    return proc.stdout


def train_and_test(cfg: Path, run: Path, overrides: list[str]) -> dict[str, object]:
    """Train with the config (one thread), then the min and max subnets' top-1 on the test split."""
    t0 = time.perf_counter()
    cli("train", "--config", str(cfg), "--out", str(run), "runtime.threads=1", "log.progress=false", *overrides,
        log=run.with_suffix(".train.log"))
    wall = time.perf_counter() - t0
    evals = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()
             if json.loads(line)["kind"] == "eval"]
    out: dict[str, object] = {"overrides": overrides, "train_wall_s": round(wall, 1),
                              "holdout_final": {k: round(v, 2) for k, v in (evals[-1] if evals else {}).items()
                                                if k.endswith("top1")}}
    for arch in ("min", "max"):
        res = json.loads(cli("evaluate", "--checkpoint", str(run / "checkpoints" / "last.pt"), "--arch", arch,
                             "--split", "test", "--calib-batches", "16", "--calib-batch-size", "128",
                             "--interpolation", "bicubic", "--threads", "1", "--json",
                             log=run.with_suffix(f".eval-{arch}.log")))
        out[f"{arch}_test_top1"] = round(float(res["top1"]), 2)
        out[f"{arch}_test_images"] = int(res.get("samples", res.get("images", 0)) or 0)
    return out


def _test_helpers() -> ModuleType:
    """``tests/synthetic.py`` (its generated ImageFolder for ``--quick``), loaded from its file."""
    spec = importlib.util.spec_from_file_location("synthetic", ROOT / "tests" / "synthetic.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--folder", type=Path, default=Path("/tmp/fm-folder"))
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "imagefolder-small")
    ap.add_argument("--work", type=Path, default=None, help="where the runs go (default OUT/runs)")
    ap.add_argument("--epochs", type=int, default=None, help="optim.epochs (default: what init writes)")
    ap.add_argument("--quick", action="store_true", help="a generated folder and a tiny budget (tests)")
    ap.add_argument("--no-old", action="store_true", help="skip the old-behaviour run")
    ap.add_argument("--parallel", action="store_true", help="train the new and old settings side by side")
    args = ap.parse_args(argv)
    work = args.work or args.out / "runs"
    work.mkdir(parents=True, exist_ok=True)
    if not args.folder.exists():
        if args.quick:
            _test_helpers().write_small_imagefolder(args.folder, 12, 4, size=16, seed=0)
        else:
            from make_imagefolder import make_fashion_folder

            make_fashion_folder(args.folder)
    cfg = work / "cfg.yaml"
    print(cli("init", "--data", str(args.folder), "--out", str(cfg), "--force"), end="", file=sys.stderr)
    budget = [f"optim.epochs={args.epochs}"] if args.epochs else []
    if args.quick:
        budget = ["optim.epochs=1", "runtime.steps_per_epoch=2", "data.batch_size=8", "eval.calib_batches=1",
                  "sampler.prior_samples=200"]
    result: dict[str, object] = {"folder": str(args.folder), "config": cfg.read_text(), "budget": budget,
                                 "logistic_regression": logistic_regression(args.folder), "threads": 1}
    runs = {"new": (work / "new", budget)}
    if not args.no_old:
        runs["old"] = (work / "old", budget + OLD)
    if args.parallel and len(runs) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(len(runs)) as pool:
            futures = {k: pool.submit(train_and_test, cfg, run, ov) for k, (run, ov) in runs.items()}
            result.update({k: f.result() for k, f in futures.items()})
    else:
        for k, (run, ov) in runs.items():
            result[k] = train_and_test(cfg, run, ov)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "result.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "config"}, indent=1))


if __name__ == "__main__":
    main()
