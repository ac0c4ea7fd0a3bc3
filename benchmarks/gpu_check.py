"""The measurements of ``benchmarks/gpu_check.sh`` on a CUDA machine, written as one JSON file.

1. The ImageNet sandwich step (``bench_step.py``: the recipe, the attentivenas space) at batch 64
   and 128 per GPU, bf16 autocast and channels-last, with and without ``torch.compile``: images/s and
   achieved TFLOP/s (median of the timed steps). Each run is its own process with a time limit, so a
   compile that fails or runs long is recorded, not fatal.
2. Stage 2's measured evaluation: subnets/min with BN recalibration on the published 64 x 256 crops
   at 224 and ``--eval-images`` evaluation images (synthetic tensors already on the GPU, so the
   figure is the GPU's, without a data loader).
3. Optional (``--sampling DIR``, ``GPU_CHECK_SAMPLING=1`` in ``gpu_check.sh``): the whole sampling
   comparison of ``reproduce_sampling.py`` on the GPU (4 methods x 5 seeds, all 54,000 Fashion-MNIST
   training images, 8 epochs, 8 runs at once), under a time limit; its wall time, exit code, runs
   finished and log are added to the JSON file (``sampling``), the other entries kept. A timed-out
   comparison resumes where it stopped when run again with the same folder.

    python benchmarks/gpu_check.py --out gpu_check.json [--quick]
    python benchmarks/gpu_check.py --out gpu_check.json --sampling results/sampling-gpu [--sampling-limit-s 600]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent


def step_runs(batches: list[int], steps: int, limit_s: int) -> list[dict[str, Any]]:
    out = []
    for batch in batches:
        for compiled in (False, True):
            cmd = [sys.executable, str(HERE / "bench_step.py"), "--device", "cuda", "--batch", str(batch), "--steps",
                   str(steps), "--json", "runtime.amp=bf16", "runtime.channels_last=true"]
            if compiled:
                cmd.append("--compile")
            t0 = time.perf_counter()
            try:
                r = subprocess.run(cmd, capture_output=True, text=True, timeout=limit_s)
                rows = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
                error = None if r.returncode == 0 else r.stderr.strip().splitlines()[-1:]
            except subprocess.TimeoutExpired:
                rows, error = [], [f"timed out after {limit_s} s"]
            rec: dict[str, Any] = {"batch": batch, "compile": compiled, "wall_s": time.perf_counter() - t0,
                                   "error": error}
            if rows:
                rec.update({"images_per_s": statistics.median(x["images_per_s"] for x in rows),
                            "tflop_per_s": statistics.median(x["gflop_per_s"] for x in rows) / 1e3,
                            "step_s": [x["step_s"] for x in rows]})
            print(json.dumps(rec), flush=True)
            out.append(rec)
    return out


def stage2_throughput(subnets: int, eval_images: int, calib_batches: int, calib_batch_size: int) -> dict[str, Any]:
    from torch.utils.data import TensorDataset

    from attentivenas.accuracy import SubnetEvaluator
    from attentivenas.config import MeasureSettings
    from attentivenas.data import DataBundle
    from attentivenas.nn import Supernet
    from attentivenas.space import ATTENTIVENAS_SPACE

    torch.manual_seed(0)
    dev = torch.device("cuda")
    net = Supernet(ATTENTIVENAS_SPACE, 1000).to(dev).eval()
    n_train = calib_batches * calib_batch_size
    train = TensorDataset(torch.randn(n_train, 3, 224, 224, device=dev), torch.randint(0, 1000, (n_train,), device=dev))
    test = TensorDataset(torch.randn(eval_images, 3, 224, 224, device=dev),
                         torch.randint(0, 1000, (eval_images,), device=dev))
    bundle = DataBundle("synthetic", train, test, test, 1000, 224)
    t0 = time.perf_counter()
    settings = MeasureSettings(split="test", calib_batches=calib_batches, calib_batch_size=calib_batch_size,
                               batch_size=256)
    ev = SubnetEvaluator(net, bundle, settings, device=dev)
    prep_s = time.perf_counter() - t0
    rng = __import__("numpy").random.default_rng(0)
    archs = [ATTENTIVENAS_SPACE.sample(rng) for _ in range(subnets)]
    ev.evaluate(archs[0])  # warm-up (cuDNN autotuning of the first shapes)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for a in archs:
        ev.evaluate(a)
    torch.cuda.synchronize()
    secs = time.perf_counter() - t0
    return {"subnets": subnets, "eval_images": eval_images, "calib": f"{calib_batches} x {calib_batch_size}",
            "prepare_s": prep_s, "seconds_per_subnet": secs / subnets, "subnets_per_min": 60.0 * subnets / secs}


#: the comparison of step 3: reproduce_sampling.py's options (--jobs: ``--sampling-jobs``)
SAMPLING_ARGS = ["--device", "cuda", "--seeds", "0,1,2,3,4", "--train-size", "54000", "--epochs", "8", "--quiet"]


def sampling_comparison(out: Path, limit_s: float, jobs: int = 8, extra: list[str] | None = None) -> dict[str, Any]:
    """Step 3: ``reproduce_sampling.py`` with :data:`SAMPLING_ARGS` and ``--jobs jobs`` into ``out``, its
    whole process group stopped (SIGTERM, then SIGKILL after 30 s) past ``limit_s``; its wall time, exit
    code and runs done."""
    out.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, str(HERE / "reproduce_sampling.py"), *SAMPLING_ARGS, "--jobs", str(jobs), "--out", str(out),
           *(extra or [])]
    log_path = out / "gpu_check_sampling.log"
    t0 = time.perf_counter()
    timed_out = False
    with log_path.open("ab") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc = proc.wait(timeout=limit_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(proc.pid, signal.SIGTERM)  # the workers too: the trainers stop with a checkpoint
            try:
                rc = proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                rc = proc.wait()
    wall = time.perf_counter() - t0
    done = sorted(p.parent.name for p in out.glob("runs/*/result.json"))
    train_s = []
    for p in out.glob("runs/*/result.json"):
        try:
            train_s.append(float(json.loads(p.read_text())["timing"]["train_s"]))
        except (OSError, ValueError, KeyError, TypeError):
            pass
    return {"command": " ".join(["python", "benchmarks/reproduce_sampling.py", *cmd[2:]]), "out": str(out),
            "log": str(log_path), "limit_s": limit_s, "wall_s": wall, "exit": rc, "timed_out": timed_out,
            "runs_done": len(done), "runs": done, "summary": str(out / "summary.json"),
            "train_s_median": statistics.median(train_s) if train_s else None}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="gpu_check.json")
    ap.add_argument("--quick", action="store_true", help="batch 64 only, fewer steps and subnets")
    ap.add_argument("--eval-images", type=int, default=10_000)
    ap.add_argument("--sampling", metavar="DIR",
                    help="only step 3: the sampling comparison into DIR, added to --out (its other entries kept)")
    ap.add_argument("--sampling-limit-s", type=float, default=600.0, help="time limit of step 3 (default 600 s)")
    ap.add_argument("--sampling-jobs", type=int, default=8, help="runs at once in step 3 (default 8)")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device", file=sys.stderr)
        return 2
    if args.sampling:
        path = Path(args.out)
        saved: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
        saved["sampling"] = sampling_comparison(Path(args.sampling), args.sampling_limit_s, args.sampling_jobs)
        from attentivenas.io import atomic_write_json

        atomic_write_json(path, saved)
        print(json.dumps(saved["sampling"]))
        return 0 if saved["sampling"]["exit"] == 0 else 1
    report: dict[str, Any] = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__,
                              "cuda": torch.version.cuda, "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    report["step"] = step_runs([64] if args.quick else [64, 128], 3 if args.quick else 5, 150)
    try:
        report["stage2"] = stage2_throughput(3 if args.quick else 8, args.eval_images, 64, 256)
    except Exception as exc:  # recorded, not fatal: the step figures are still worth having
        report["stage2"] = {"error": f"{type(exc).__name__}: {exc}"}
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["stage2"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
