"""benchmarks/reproduce_sampling.py --smoke: every step of the sampling comparison on a few hundred
Fashion-MNIST images, its files, the report and the docs page, and resuming without redoing work."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import kendalltau

from .bench_helpers import load_benchmark
from .test_fashion_mnist import needs_package

RUNS = ["bestup-online-s0", "bestup-s0", "uniform-s0", "worstup-s0"]




def _stamps(out: Path) -> dict[Path, int]:
    """Modification times of everything a run writes once: results, checkpoints, measurement caches."""
    files = [*out.glob("runs/*/result.json"), *out.glob("runs/*/checkpoints/*.pt"), *out.glob("runs/*/*.jsonl"),
             *out.glob("runs/*/search/*.jsonl"), out / "archs.json"]
    return {p: p.stat().st_mtime_ns for p in files}


@needs_package
def test_smoke_writes_every_result_and_resumes_without_redoing_work(tmp_path: Path) -> None:
    bench = load_benchmark("reproduce_sampling")
    out, docs = tmp_path / "out", tmp_path / "docs" / "results.md"
    args = ["--smoke", "--out", str(out), "--docs", str(docs), "--threads", "1"]
    assert bench.main(args) == 0
    assert bench.STATS["finished"] == 4 and bench.STATS["steps"] == 4 * 4 and bench.STATS["measured"] >= 4 * 8

    assert sorted(p.name for p in (out / "runs").iterdir()) == RUNS
    fixed = json.loads((out / "archs.json").read_text())["archs"]
    assert len(fixed) == 8
    results = {name: json.loads((out / "runs" / name / "result.json").read_text()) for name in RUNS}
    for name, r in results.items():
        run = out / "runs" / name
        assert (run / "checkpoints" / "last.pt").is_file() and (run / "search" / "pareto.json").is_file()
        assert r["train"]["status"] == "completed" and r["holdout_images"] == 200 and r["test_images"] == 200
        assert r["holdout_first"] == 200  # after the online predictor's 1 batch of 200 hold-out images
        assert r["fixed"]["n"] == 8 and r["fixed"]["mflops"] == [a["mflops"] for a in fixed]  # the same set
        assert 0 < r["fixed"]["hypervolume"] <= r["search"]["hypervolume"] + 1e-12 <= 1  # the front holds (a)
        assert r["search"]["hypervolume"] == pytest.approx(r["search"]["search_hypervolume"])  # the search's own
        assert len(r["budgets_mflops"]) == 3 and len(r["search"]["budget_winners"]) == 3
        assert all(w["test_top1"] is not None and w["mflops"] <= w["budget"] for w in r["search"]["budget_winners"])
        assert r["test"]["min_top1"] is not None and r["test"]["max_top1"] is not None
        assert r["timing"]["total_s"] > 0 and r["command"].startswith("python benchmarks/reproduce_sampling.py")
    assert (out / "runs" / "bestup-online-s0" / "predictors" / "epoch_001.json").is_file()  # fitted after epoch 1
    probe = json.loads((out / "probe_archs.json").read_text())["archs"]  # the ranking probe: here all 8, by MFLOPs
    assert [p["mflops"] for p in probe] == sorted(a["mflops"] for a in fixed)
    for r in results.values():
        assert [p["arch"] for p in r["probe"]] == [p["arch"] for p in probe]
        assert all(0 <= p["test_top1"] <= 100 for p in r["probe"])

    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["methods"]) == ["uniform", "bestup", "worstup", "bestup-online"]
    assert list(summary["paired_vs_uniform"]) == ["bestup", "worstup", "bestup-online"]
    hv = summary["methods"]["bestup"]["metrics"]["hv_front"]
    assert hv["n"] == 1 and hv["mean"] == pytest.approx(100 * results["bestup-s0"]["search"]["hypervolume"])
    d = summary["paired_vs_uniform"]["bestup"]["hv_front"]
    assert d["mean"] == pytest.approx(hv["mean"] - summary["methods"]["uniform"]["metrics"]["hv_front"]["mean"])
    assert (out / "fronts.png").stat().st_size > 0 and (docs.parent / "results_fronts.png").stat().st_size > 0
    page = docs.read_text()
    assert bench.CONCLUSION_BEGIN in page and bench.PLACEHOLDER in page and "BestUp-3 minus uniform" in page
    assert "**Labels only.**" in page and "never ran" in page  # distill_warmup_epochs 8 >= 2 epochs
    assert "after the first 200, on which the online predictor measures" in page
    assert summary["analysis"]["recipe"]["labels_only"] == 4 and len(summary["analysis"]["hv_setters"]) == 4

    # run again: every run is done, nothing trained or measured; the hand-written conclusion is kept
    stamps = _stamps(out)
    docs.write_text(page.replace(bench.PLACEHOLDER, "Written by hand.") + "\n## Transfer\n\nOther results.\n")
    assert bench.main(args) == 0
    assert bench.STATS == {"steps": 0, "measured": 0, "skipped": 4, "finished": 0}
    assert _stamps(out) == stamps
    assert "Written by hand." in docs.read_text() and docs.read_text().endswith("## Transfer\n\nOther results.\n")

    # a run killed after its work but before its result: continued from its checkpoint and caches
    (out / "runs" / "uniform-s0" / "result.json").unlink()
    assert bench.main(["--smoke", "--out", str(out), "--methods", "uniform", "--threads", "1"]) == 0
    assert bench.STATS == {"steps": 0, "measured": 0, "skipped": 0, "finished": 1}
    again = json.loads((out / "runs" / "uniform-s0" / "result.json").read_text())
    for part in ("fixed", "search", "test"):
        assert {k: v for k, v in again[part].items() if k != "hypervolume_reference"} == {
            k: v for k, v in results["uniform-s0"][part].items() if k != "hypervolume_reference"}

    # the probe's subnets "trained alone" (made-up top-1s, 4 as finetune --arch folders, 4 as a --pareto
    # index): the report ranks every run's inherited top-1 against them
    alone = {p["name"]: 50.0 + 5 * i for i, p in enumerate(probe)}
    for i, p in enumerate(probe):
        rec = {"arch": p["arch"], "after": {"holdout": None, "test": {"top1": alone[p["name"]]}}}
        if i < 4:
            (out / "probe" / p["name"]).mkdir(parents=True)
            (out / "probe" / p["name"] / "result.json").write_text(json.dumps(rec))
        else:
            index = json.loads((out / "probe" / "index.json").read_text()) if i > 4 else []
            (out / "probe" / "index.json").write_text(json.dumps([*index, {"folder": f"subnet_{i}", **rec}]))
    assert bench.main(["--report", "--out", str(out), "--docs", str(docs)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    ranking = {(r["method"], r["seed"]): r for r in summary["ranking"]["runs"]}
    assert summary["ranking"]["standalone_subnets"] == 8 and len(ranking) == 4
    uni = results["uniform-s0"]["probe"]
    tau = kendalltau([p["test_top1"] for p in uni], list(alone.values())).statistic
    assert ranking[("uniform", 0)]["kendall_tau"] == pytest.approx(tau)
    gap = np.mean([p["test_top1"] - alone[p["name"]] for p in uni])
    assert summary["methods"]["uniform"]["metrics"]["rank_gap"]["mean"] == pytest.approx(gap, abs=1e-3)
    assert "rank_tau" in summary["paired_vs_uniform"]["bestup"]
    assert "| p7 | " in docs.read_text() and "Kendall tau" in docs.read_text()

    # an earlier comparison (here a copy of these runs) is shown beside this one, a labelled row per method
    shutil.copytree(out / "runs", tmp_path / "earlier" / "runs")
    assert bench.main(["--report", "--out", str(out), "--docs", str(docs), "--earlier", str(tmp_path / "earlier")]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["earlier"]["methods"].keys() == summary["methods"].keys()
    page = docs.read_text()
    assert "## Both budgets" in page and page.count("| uniform | earlier: ") == 1 and "| BestUp-3 | this: " in page
    assert bench.main(["--report", "--out", str(out), "--earlier", str(tmp_path / "nowhere")]) == 2

    # other settings in the same folder are refused
    assert bench.main(["--smoke", "--out", str(out), "--epochs", "3", "--threads", "1"]) == 2


@needs_package
def test_jobs_runs_worker_processes_at_once_on_the_device_data_path_and_resumes(tmp_path: Path) -> None:
    """--jobs 2 on the CPU: two runs at once in worker processes (one thread each), the training
    batches made by the device path (data.on_device=true, the code path --device cuda takes)."""
    bench = load_benchmark("reproduce_sampling")
    out = tmp_path / "out"
    args = ["--smoke", "--out", str(out), "--methods", "uniform,bestup", "--threads", "1", "--jobs", "2",
            "--set", "data.on_device=true", "--archs", "6", "--folds", "3", "--eval-images", "100",
            "--test-images", "100", "--pop-size", "6", "--generations", "1", "--remeasure-top", "1"]  # a small budget
    assert bench.main(args) == 0
    assert bench.STATS["finished"] == 2 and bench.STATS["steps"] == 2 * 4 and bench.STATS["measured"] >= 2 * 6
    results = {}
    for name in ("bestup-s0", "uniform-s0"):
        run = out / "runs" / name
        r = results[name] = json.loads((run / "result.json").read_text())
        assert r["train"]["status"] == "completed" and r["device"] == "cpu" and r["data_on_device"] is True
        assert r["command"] == "python benchmarks/reproduce_sampling.py " + " ".join(args)  # the user's, no --worker
        assert "runtime.threads=1" in r["overrides"] and "data.on_device=true" in r["overrides"]
        assert "@stats " in (run / "run.log").read_text()  # the worker's output, in its run folder
    summary = json.loads((out / "summary.json").read_text())  # the report, once both had finished
    assert list(summary["methods"]) == ["uniform", "bestup"]
    # both at once: each run's span (its finish time less its phases) overlaps the other's
    spans = []
    for r in results.values():
        end = time.mktime(time.strptime(r["finished"], "%Y-%m-%d %H:%M:%S"))
        spans.append((end - r["timing"]["total_s"] - 2, end + 1))
    assert max(s for s, _ in spans) < min(e for _, e in spans)

    # again: both done, no worker started, nothing written
    stamps = _stamps(out)
    assert bench.main(args) == 0
    assert bench.STATS == {"steps": 0, "measured": 0, "skipped": 2, "finished": 0} and _stamps(out) == stamps

    # a worker that fails is named, with its log; the others go on; exit code 2
    bad = ["--smoke", "--out", str(tmp_path / "bad"), "--methods", "uniform,worstup", "--threads", "1", "--jobs", "2",
           "--set", "optim.lr=-1"]
    assert bench.main(bad) == 2
    assert "optim.lr" in (tmp_path / "bad" / "runs" / "uniform-s0" / "run.log").read_text()
