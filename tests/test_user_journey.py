"""Issue 38, item 9: the journey a user takes, as they take it. A generated small-image ImageFolder
(train/ and val/, 10 classes) goes through ``init``, ``train``, a whole-space latency table built from
the checkpoint, ``search`` under a latency budget relative to the space, ``finetune`` of the pick,
a bundle ``export`` and ``load_pretrained(...).classify`` on the image files of val/; the bundle must
beat logistic regression on the raw pixels of the same images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from attentivenas import load_pretrained
from tests.cli_helpers import run_cli
from tests.synthetic import write_small_imagefolder

pytestmark = pytest.mark.slow

CLASSES = [f"class{k}" for k in range(10)]


def _pixels(folder: Path) -> tuple[np.ndarray, np.ndarray, list[Path]]:
    files = [p for k in CLASSES for p in sorted((folder / k).glob("*.png"))]
    x = np.stack([np.asarray(Image.open(p).convert("RGB"), dtype=np.float32).ravel() / 255.0 for p in files])
    y = np.array([CLASSES.index(p.parent.name) for p in files])
    return x, y, files


def _logistic_regression_top1(root: Path) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x_train, y_train, _ = _pixels(root / "train")
    x_val, y_val, _ = _pixels(root / "val")
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.1))
    model.fit(x_train, y_train)
    return 100.0 * float((model.predict(x_val) == y_val).mean())


def test_your_images_to_a_bundle_that_beats_logistic_regression(tmp_path: Path) -> None:
    root = write_small_imagefolder(tmp_path / "images", 60, 20, size=28, seed=0)
    cfg = tmp_path / "mine.yaml"
    res = run_cli("init", "--data", str(root), "--out", str(cfg))
    assert res.code == 0, res.err

    run = tmp_path / "run"  # 3 epochs: the bundle 100% against logistic regression 54.5% (5 epochs: 97%, 8: 98.5%)
    with pytest.warns(RuntimeWarning, match="hold-out has"):  # 120 images: the run says what one is worth
        res = run_cli("train", "--config", str(cfg), "--out", str(run), "optim.epochs=3", "data.batch_size=32",
                      "eval.every_epochs=3", "eval.calib_batches=2", "sampler.prior_samples=500",
                      "runtime.threads=1", "runtime.device=cpu", "log.progress=false", "log.tensorboard=false")
    assert res.code == 0, res.err
    ckpt = run / "checkpoints" / "last.pt"

    table = tmp_path / "table.json"
    res = run_cli("latency", "build-table", "--checkpoint", str(ckpt), "--runtime", "torch", "--warmup", "0",
                  "--repeats", "1", "--calibration-archs", "2", "--holdout-archs", "0", "--no-drift-correction",
                  "--out", str(table), "--json")
    assert res.code == 0, res.err
    built = json.loads(res.out)
    span = built["latency_range_ms"]
    assert built["drives_search"] and span["min_ms"] <= span["p50_ms"] <= span["max_ms"]

    search = tmp_path / "search"
    res = run_cli("search", "--checkpoint", str(ckpt), "--latency-table", str(table), "--max-latency", "p50",
                  "--objectives", "latency", "--num-archs", "10", "--remeasure-top", "2", "--pop-size", "12",
                  "--generations", "3", "--calib-batches", "2", "--calib-batch-size", "32", "--device", "cpu",
                  "--out", str(search))
    assert res.code == 0, res.err
    assert "hold-out top-1" in res.out + res.err
    tuned = tmp_path / "tuned"  # the front's most accurate subnet, all of them under the budget
    res = run_cli("finetune", "--checkpoint", str(ckpt), "--arch", f"{search / 'pareto.json'}:best", "--epochs", "2",
                  "--calib-batches", "2", "--threads", "1", "--device", "cpu", "--out", str(tuned))
    assert res.code == 0, res.err

    bundle = tmp_path / "bundle"
    res = run_cli("export", "--checkpoint", str(tuned / "checkpoints" / "last.pt"), "--format", "bundle",
                  "--no-latency", "--out", str(bundle))
    assert res.code == 0, res.err

    model = load_pretrained(bundle)  # the app's side: the folder alone
    _, y_val, files = _pixels(root / "val")
    labels = [r["label"] for r in model.classify([str(p) for p in files])]
    bundle_top1 = 100.0 * float(np.mean([CLASSES.index(lb) == y for lb, y in zip(labels, y_val, strict=True)]))
    baseline = _logistic_regression_top1(root)
    assert bundle_top1 > baseline, f"bundle {bundle_top1:.1f}% vs logistic regression {baseline:.1f}%"
