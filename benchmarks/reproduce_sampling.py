"""Does attentive sampling beat uniform sampling? The paper's stage-1 comparison, on Fashion-MNIST.

Trains the tiny space (``configs/fashion_mnist.yaml``) with one budget for every run: uniform
sampling, BestUp-3 and WorstUp-3 ranked by the mini-batch loss, and BestUp-3 ranked by the online
predictor (``sampler.estimator=online``), each with 3 seeds. For every run it measures, on the
hold-out split with BN recalibration:

(a) one fixed set of ``--archs`` subnets spread over the space's FLOPs range (seeded, min and max
    included, the same for every run: ``OUT/archs.json``);
(b) the Pareto front of an NSGA-II search on a predictor fitted to those measurements, re-measured
    (the package's ``predicted+remeasure``), with the best subnet under 3 MFLOPs budgets (25, 50 and
    75% of the space's MFLOPs range); the budget winners and the min and max subnets (with
    ``--test-front`` every subnet of the front too) are then measured on the test split.

``--report`` (also run at the end) reads every ``OUT/runs/*/result.json`` and writes
``OUT/summary.json``, ``OUT/summary.md`` and ``OUT/fronts.png``; ``--docs docs/results.md`` also
writes that page (tables, plot, commands, machine, wall time, the comparison with uniform computed
from the numbers, and a marked place for the human-written conclusion, kept on regeneration).

Budget (the defaults, since 2026-12-03): all 54,000 training images, 8 epochs, with the
Fashion-MNIST recipe of that date (batch 64, no augmentation, labels only for 8 epochs), into
``benchmarks/results/sampling-54k``: there the supernets' min / max subnets reach 89.7-90.6 /
91.5-92.2% test top-1, and one run takes 0.66 hours of one core on average (its ``summary.json``), so
the 12 runs are about 8 hours of one core, 4 with ``--jobs 2 --threads 1``, minutes on a GPU. The results in
``benchmarks/results/sampling`` are the old budget (``--train-size 10000 --epochs 4`` with the recipe
before that date: batch 128, augmentation, distillation from step 0; each run's ``config.yaml`` holds
it); ``--report --out benchmarks/results/sampling`` still aggregates them. The old budget's
parts, as estimated for it (not timed end to end):

* training: the Fashion-MNIST sandwich step (BestUp-3, batch 128) runs about 124 images/s on one
  quiet thread, so 10,000 training images x 4 epochs (40,000 images) is about 5.4 min per run, less
  for uniform sampling (no candidates to score); the trainer's own min / max check runs after the
  last epoch only (``eval.every_epochs`` = epochs);
* measuring one subnet (BN recalibrated on 8 x 128 training images, then 2,000 hold-out images, in
  channels-last memory) takes 0.5-3 s by size, about 1.5 s on average: the 60 fixed subnets, about
  20 re-measured after the search and 5 on the 10,000 test images add about 3 min per run;
* the online predictor's fits (30 subnets after epochs 1, 2 and 3, BN calibrated on 4 batches,
  measured on 1,000 hold-out images) add about 2.5 min to each of its 3 runs.

That is about 9 min a run, 1 h 50 min in all on one thread; ``--threads 2`` (the default) leaves
room for a machine that is not quiet. ``--test-front`` measures every subnet of each front on the
test split too (about 15 more per run, 20 min in all). The seeds vary the initialisation, the
sampling, the training augmentation and the search; the training images (``data.train_size`` is a
subset drawn with the split seed), the hold-out, the BN calibration images and the fixed subnets
are the same for every run.

Resumable: each run trains in ``OUT/runs/<method>-s<seed>/`` with the trainer's own checkpoints
(``--resume auto``); its measurements are appended to JSONL caches as they are made and its
result is written atomically to ``result.json``, which makes the run skipped next time. Kill it at
any moment and run the same command again. Wall time per phase is kept in ``timing.json`` (summed
over the invocations that worked on the run).

``--jobs N`` runs N runs at once, each in a worker process with ``--threads`` threads (on a 2-core
CPU: ``--jobs 2 --threads 1``), its output in ``OUT/runs/<method>-s<seed>/run.log``; each run folder is
locked by the process working on it, and the report is written once all have finished. ``--device
cuda`` trains and measures on the GPU, the training images held there (``data.on_device=auto``: each
batch gathered and augmented on the GPU); several runs share one GPU. On one H200 the whole comparison
at full size is meant to fit in 8 minutes (``GPU_CHECK_SAMPLING=1 bash benchmarks/gpu_check.sh``):

    python benchmarks/reproduce_sampling.py --device cuda --jobs 8 --seeds 0,1,2,3,4 --train-size 54000 --epochs 8

    python benchmarks/reproduce_sampling.py --docs docs/results.md        # the whole thing, ~8 h of one core
    python benchmarks/reproduce_sampling.py --methods uniform --seeds 0    # one part of it
    python benchmarks/reproduce_sampling.py --report --docs docs/results.md
    python benchmarks/reproduce_sampling.py --smoke                        # every step on a few hundred images
    python benchmarks/reproduce_sampling.py --jobs 2 --threads 1           # two runs at once on 2 cores
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch

from attentivenas.devices import resolve_device
from attentivenas.errors import UserError
from attentivenas.io import OutputLock, atomic_write_json, read_json_file, remove_torn_writes

# This file is the CLI. The work is in two modules beside it: sampling_runs.py (train, measure, search, test:
# resumable; the stage-2 part of a run in one function, stage2) and sampling_report.py (tables, paired
# differences and their intervals, plots, the docs page).
from sampling_report import CONCLUSION_BEGIN, CONCLUSION_END, PLACEHOLDER, write_report
from sampling_runs import (
    ARCH_SEED,
    BUDGET_FRACTIONS,
    FULL,
    METHODS,
    PROBE_N,
    SCRIPT,
    SMOKE,
    STATS,
    log,
    run_dir_of,
    run_one,
    shown,
)

#: what the tests and other scripts read from this module (the runs and the report live beside it)
__all__ = ["CONCLUSION_BEGIN", "CONCLUSION_END", "METHODS", "PLACEHOLDER", "STATS", "main", "parse_args", "settings"]


# --------------------------------------------------------------------------- settings
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--config", help=f"training config (default {FULL['config']})")
    ap.add_argument("--out", help=f"results folder (default {shown(Path(FULL['out']))}; --smoke: a new temp folder)")
    ap.add_argument("--methods", help=f"comma-separated, of {', '.join(METHODS)} (default all)")
    ap.add_argument("--seeds", help="comma-separated training seeds (default 0,1,2)")
    ap.add_argument("--train-size", type=int, help="training images, a class-stratified subset (default 54000: all)")
    ap.add_argument("--epochs", type=int, help="training epochs (default 8)")
    ap.add_argument("--archs", type=int, help="fixed subnets measured per run (default 60)")
    ap.add_argument("--eval-images", type=int, help="hold-out images per measured subnet (default: all of them after "
                    "the first --online-eval-batches x data.eval_batch_size, which the online predictor measures on)")
    ap.add_argument("--calib-batches", type=int, help="BN calibration batches (of data.batch_size) per subnet (default 8)")
    ap.add_argument("--test-images", type=int, help="test images per subnet (default: all 10,000)")
    ap.add_argument("--pop-size", type=int, help="NSGA-II population (default 40)")
    ap.add_argument("--generations", type=int, help="NSGA-II generations (default 25)")
    ap.add_argument("--remeasure-top", type=int, help="best predicted candidates re-measured (default 12)")
    ap.add_argument("--predictor-kinds", help="predictor kinds cross-validated for the search (default rf,lgbm,ridge)")
    ap.add_argument("--folds", type=int, help="cross-validation folds of the search's predictor (default 5)")
    ap.add_argument("--online-archs", type=int, help="subnets per fit of the online predictor (default 30)")
    ap.add_argument("--online-folds", type=int, help="cross-validation folds of the online predictor (default 5)")
    ap.add_argument("--online-calib-batches", type=int,
                    help="BN calibration batches per subnet of the online predictor's fits (default 4)")
    ap.add_argument("--online-eval-batches", type=int,
                    help="hold-out batches (of data.eval_batch_size) per subnet of those fits (default 2)")
    ap.add_argument("--test-front", action="store_true",
                    help="also measure every subnet of the searched front on the test split (its test hypervolume)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="another training-config override for every run (repeatable), e.g. --set optim.lr=0.3")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2; of each run with --jobs)")
    ap.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu",
                    help="where runs train and measure (runtime.device; default cpu). cuda keeps the training data "
                         "on the GPU (data.on_device=auto)")
    ap.add_argument("--jobs", type=int, default=1,
                    help="runs at once, each a worker process with --threads threads (on cuda they share the GPU; "
                         "default 1: one after the other in this process)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)  # METHOD:SEED: one run, in a worker process of --jobs
    ap.add_argument("--report", action="store_true", help="only aggregate the results already in --out")
    ap.add_argument("--earlier", metavar="DIR",
                    help="an earlier comparison's results folder (e.g. another budget's): the report shows each "
                         "method's numbers there as a labelled row beside this one's")
    ap.add_argument("--docs", help="also write this Markdown page (e.g. docs/results.md) and its plot beside it")
    ap.add_argument("--smoke", action="store_true", help="every step on a few hundred images, 1 seed (under a minute)")
    ap.add_argument("--quiet", action="store_true", help="no training progress bars")
    args = ap.parse_args(argv)
    defaults = SMOKE if args.smoke else FULL
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.out is None:
        args.out = tempfile.mkdtemp(prefix="reproduce-sampling-smoke-")
    args.methods = [m.strip() for m in str(args.methods).split(",") if m.strip()]
    bad = [m for m in args.methods if m not in METHODS]
    if bad or not args.methods:
        raise UserError(f"--methods: unknown {bad or args.methods}; choose from {', '.join(METHODS)}")
    try:
        args.seeds = [int(s) for s in str(args.seeds).split(",") if s.strip()]
    except ValueError:
        raise UserError(f"--seeds must be comma-separated integers, got {args.seeds!r}") from None
    for name in ("train_size", "epochs", "archs", "eval_images", "calib_batches", "pop_size", "generations", "folds",
                 "online_archs", "online_folds", "online_calib_batches", "online_eval_batches", "threads", "jobs"):
        if getattr(args, name) is not None and int(getattr(args, name)) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be >= 1")
    if args.earlier is not None and not Path(args.earlier).is_dir():
        raise UserError(f"--earlier {args.earlier}: no such results folder")
    if args.test_images is not None and args.test_images < 1:
        raise UserError("--test-images must be >= 1")
    if args.archs < max(args.folds, 4):
        raise UserError(f"--archs {args.archs}: the search's predictor needs at least --folds ({args.folds}) and 4")
    args.predictor_kinds = [k.strip() for k in str(args.predictor_kinds).split(",") if k.strip()]
    if args.device == "cuda":
        resolve_device("cuda")  # a one-line error where there is no GPU, before any run starts
    return args


def settings(args: argparse.Namespace) -> dict[str, Any]:
    """What defines the experiment: every run in a results folder must share it (``OUT/plan.json``)."""
    return {
        "config": shown(Path(args.config)), "train_size": args.train_size, "epochs": args.epochs,
        "archs": args.archs, "eval_images": args.eval_images, "calib_batches": args.calib_batches,
        "test_images": args.test_images, "pop_size": args.pop_size, "generations": args.generations,
        "remeasure_top": args.remeasure_top, "predictor_kinds": list(args.predictor_kinds), "folds": args.folds,
        "online_archs": args.online_archs, "online_folds": args.online_folds,
        "online_calib_batches": args.online_calib_batches, "online_eval_batches": args.online_eval_batches,
        "test_front": bool(args.test_front), "set": list(args.set), "smoke": bool(args.smoke),
        "budget_fractions": list(BUDGET_FRACTIONS), "arch_seed": ARCH_SEED, "channels_last": True,
        "probe_subnets": PROBE_N,
        # the config file's contents too: a changed recipe (e.g. its learning rate) is another experiment
        "config_sha256": hashlib.sha256(Path(args.config).read_bytes()).hexdigest(),
    }


def check_plan(out: Path, plan: dict[str, Any]) -> None:
    """Write ``OUT/plan.json`` the first time; later invocations must have the same settings."""
    path = out / "plan.json"
    if path.is_file():
        saved = read_json_file(path, "results plan", UserError).get("settings", {})
        differ = sorted(k for k in set(saved) | set(plan) if saved.get(k) != plan.get(k))
        if differ:
            detail = ", ".join(f"{k}: {saved.get(k)!r} there, {plan.get(k)!r} now" for k in differ)
            raise UserError(f"{out} holds runs made with other settings ({detail}); use them again or another --out")
        return
    atomic_write_json(path, {"settings": plan, "created": time.strftime("%Y-%m-%d %H:%M:%S")})


# --------------------------------------------------------------------------- worker processes (--jobs)
WORKER_LOG = "run.log"  #: what a worker process prints, in its run folder (appended by every invocation)
STATS_MARK = "@stats "  #: the worker's last line: its STATS, added to the parent's


def worker_main(args: argparse.Namespace, argv: list[str]) -> int:
    """``--worker METHOD:SEED``: one run, in a worker process the parent started (which holds the
    results folder's lock and checked the plan); its command as the user typed it is the parent's."""
    method, _, seed = str(args.worker).partition(":")
    if method not in METHODS or not seed.lstrip("-").isdigit():
        raise UserError(f"--worker expects METHOD:SEED, got {args.worker!r}")
    user = argv[:argv.index("--worker")] if "--worker" in argv else argv
    try:
        run_one(args, Path(args.out), method, int(seed), f"[{method}-s{seed}]",
                f"python {SCRIPT} {shlex.join(user)}".rstrip())
    finally:
        print(STATS_MARK + json.dumps(STATS), flush=True)
    return 0


def run_worker(args: argparse.Namespace, out: Path, method: str, seed: int, argv: list[str],
               where: str) -> tuple[int, dict[str, int], str]:
    """Run one (method, seed) in a worker process (``--threads`` threads), its output appended to
    ``OUT/runs/<method>-s<seed>/run.log``; (exit code, its STATS, its last line of error)."""
    run_dir = run_dir_of(out, method, seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / WORKER_LOG
    start = path.stat().st_size if path.is_file() else 0
    cmd = [sys.executable, str(Path(__file__).resolve()), *argv, "--worker", f"{method}:{seed}", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    t0 = time.perf_counter()
    log(f"{where} {method} seed {seed}: started in a worker process (log: {path})")
    with path.open("ab") as fh:
        rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, check=False).returncode
    with path.open("rb") as fh:
        fh.seek(start)
        lines = fh.read().decode("utf-8", "replace").splitlines()
    stats = {k: 0 for k in STATS}
    for line in lines:
        if line.startswith(STATS_MARK):
            stats = {k: int(v) for k, v in json.loads(line[len(STATS_MARK):]).items() if k in STATS}
    errors = [ln for ln in lines if ln.strip() and not ln.startswith(STATS_MARK)]
    last = errors[-1].strip() if errors else ""
    state = "done" if rc == 0 else f"failed (exit {rc}): {last}"
    log(f"{where} {method} seed {seed}: {state} after {time.perf_counter() - t0:.0f} s")
    return rc, stats, last


def run_parallel(args: argparse.Namespace, out: Path, runs: list[tuple[str, int]], argv: list[str]) -> None:
    """``--jobs N``: the runs not done yet, N at once in worker processes; the report waits for all."""
    todo = []
    for m, s in runs:
        if (run_dir_of(out, m, s) / "result.json").is_file():
            STATS["skipped"] += 1
            log(f"{m} seed {s}: already done ({run_dir_of(out, m, s) / 'result.json'})")
        else:
            todo.append((m, s))
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(run_worker, args, out, m, s, argv, f"[{i}/{len(todo)}]")
                   for i, (m, s) in enumerate(todo, start=1)]
        results = [f.result() for f in futures]
    failed = []
    for (m, s), (rc, stats, last) in zip(todo, results, strict=True):
        for key in STATS:
            STATS[key] += stats.get(key, 0)
        if rc != 0:
            failed.append(f"{m}-s{s} ({last or f'exit {rc}'})")
    if failed:
        raise UserError(f"{len(failed)} of {len(todo)} runs failed: {'; '.join(failed)}; their logs are "
                        f"{out / 'runs' / '<run>' / WORKER_LOG}; run the same command again to resume them")


# --------------------------------------------------------------------------- main
def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    for key in STATS:
        STATS[key] = 0
    threads = torch.get_num_threads()
    try:
        args = parse_args(argv)
        torch.set_num_threads(args.threads)
        if args.worker:
            return worker_main(args, argv)
        out = Path(args.out)
        with OutputLock(out, "results folder"):
            remove_torn_writes(out, depth=3)  # the temporary files of writes a kill interrupted
            if not args.report:
                check_plan(out, settings(args))
                runs = [(m, s) for s in args.seeds for m in args.methods]
                t0 = time.perf_counter()
                how = (f", {args.jobs} at once" if args.jobs > 1 else "") + (
                    f", on {args.device}" if args.device != "cpu" else "")
                log(f"{len(runs)} runs ({', '.join(args.methods)} x seeds {','.join(map(str, args.seeds))}{how}) "
                    f"-> {out}")
                if args.jobs > 1:
                    run_parallel(args, out, runs, argv)
                else:
                    for i, (m, s) in enumerate(runs, start=1):
                        run_one(args, out, m, s, f"[{i}/{len(runs)}]", f"python {SCRIPT} {shlex.join(argv)}".rstrip())
                log(f"runs done in {time.perf_counter() - t0:.0f} s (this invocation)")
            write_report(out, args.docs, args.earlier)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        torch.set_num_threads(threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
