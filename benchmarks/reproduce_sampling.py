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

Budget (the defaults), sized for about 2 hours in all for the 12 runs on this project's 2-core CPU
(an estimate from the parts' speeds, not yet timed end to end):

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

    python benchmarks/reproduce_sampling.py --docs docs/results.md        # the whole thing, ~2 h
    python benchmarks/reproduce_sampling.py --methods uniform --seeds 0    # one part of it
    python benchmarks/reproduce_sampling.py --report --docs docs/results.md
    python benchmarks/reproduce_sampling.py --smoke                        # every step on a few hundred images
"""

from __future__ import annotations

import argparse
import hashlib
import io
import math
import os
import platform
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from attentivenas.accuracy import SubnetEvaluator, fit_best, spread_genes
from attentivenas.config import AccuracyConfig, BudgetsConfig, EvolutionConfig, SearchConfig, TrainConfig, load_config
from attentivenas.costs import CostModel
from attentivenas.data import DataBundle, build_data
from attentivenas.errors import UserError
from attentivenas.io import (
    OutputLock,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    dumps_json,
    read_json_file,
    remove_torn_writes,
)
from attentivenas.search import MeasuredAccuracy, front_hypervolume, run_search, write_pareto_csv, write_pareto_json
from attentivenas.space import Arch, SearchSpace
from attentivenas.train import train

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = "benchmarks/reproduce_sampling.py"
#: method -> (label, training-config overrides)
METHODS: dict[str, tuple[str, list[str]]] = {
    "uniform": ("uniform", ["sampler.method=uniform", "sampler.estimator=loss"]),
    "bestup": ("BestUp-3", ["sampler.method=bestup", "sampler.k=3", "sampler.estimator=loss"]),
    "worstup": ("WorstUp-3", ["sampler.method=worstup", "sampler.k=3", "sampler.estimator=loss"]),
    "bestup-online": ("BestUp-3 (online predictor)", ["sampler.method=bestup", "sampler.k=3",
                                                      "sampler.estimator=online"]),
}
BASELINE = "uniform"
BUDGET_FRACTIONS = (0.25, 0.5, 0.75)  # of the space's MFLOPs range
ARCH_SEED = 0  # the fixed subnets
EVAL_SEED = 0  # the calibration images
FULL: dict[str, Any] = {
    "config": str(ROOT / "configs" / "fashion_mnist.yaml"), "out": str(ROOT / "benchmarks" / "results" / "sampling"),
    "methods": ",".join(METHODS), "seeds": "0,1,2", "train_size": 10_000, "epochs": 4, "archs": 60,
    "eval_images": 2000, "calib_batches": 8, "test_images": None, "pop_size": 40, "generations": 25,
    "remeasure_top": 12, "predictor_kinds": "rf,lgbm,ridge", "folds": 5, "online_archs": 30, "online_folds": 5,
    "online_calib_batches": 4, "online_eval_batches": 2,
}
SMOKE: dict[str, Any] = {
    **FULL, "out": None, "train_size": 256, "epochs": 2, "archs": 8, "eval_images": 200, "calib_batches": 2,
    "test_images": 200, "pop_size": 8, "generations": 2, "remeasure_top": 2, "predictor_kinds": "ridge",
    "folds": 4, "online_archs": 4, "online_folds": 2, "online_calib_batches": 1, "online_eval_batches": 1,
    "seeds": "0",
}
#: the training overrides of --smoke: 256 images, 2 epochs of 2 steps (the online predictor fits after the
#: first), no epoch-end check
SMOKE_TRAIN = ["data.batch_size=32", "data.eval_batch_size=200", "runtime.steps_per_epoch=2", "eval.every_epochs=0",
               "eval.calibration_batches=2", "eval.max_batches=1", "sampler.prior_samples=2000",
               "sampler.online.kinds=[ridge]", "log.progress=false"]
#: counts of this process (the test reads them): steps trained, subnets measured, runs skipped as done
STATS: dict[str, int] = {"steps": 0, "measured": 0, "skipped": 0, "finished": 0}

def log(text: str) -> None:
    print(text, flush=True)


# --------------------------------------------------------------------------- settings
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--config", help=f"training config (default {FULL['config']})")
    ap.add_argument("--out", help="results folder (default benchmarks/results/sampling; --smoke: a new temp folder)")
    ap.add_argument("--methods", help=f"comma-separated, of {', '.join(METHODS)} (default all)")
    ap.add_argument("--seeds", help="comma-separated training seeds (default 0,1,2)")
    ap.add_argument("--train-size", type=int, help="training images, a class-stratified subset (default 10000)")
    ap.add_argument("--epochs", type=int, help="training epochs (default 4)")
    ap.add_argument("--archs", type=int, help="fixed subnets measured per run (default 60)")
    ap.add_argument("--eval-images", type=int, help="hold-out images per measured subnet (default 2000)")
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
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    ap.add_argument("--report", action="store_true", help="only aggregate the results already in --out")
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
                 "online_archs", "online_folds", "online_calib_batches", "online_eval_batches", "threads"):
        if int(getattr(args, name)) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be >= 1")
    if args.test_images is not None and args.test_images < 1:
        raise UserError("--test-images must be >= 1")
    if args.archs < max(args.folds, 4):
        raise UserError(f"--archs {args.archs}: the search's predictor needs at least --folds ({args.folds}) and 4")
    args.predictor_kinds = [k.strip() for k in str(args.predictor_kinds).split(",") if k.strip()]
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


def train_overrides(args: argparse.Namespace, method: str, seed: int) -> list[str]:
    """The training config of one run, as ``key=value`` overrides of ``--config``."""
    out = [f"seed={seed}", f"data.train_size={args.train_size}", f"optim.epochs={args.epochs}",
           f"eval.every_epochs={args.epochs}", f"runtime.threads={args.threads}", "runtime.device=cpu",
           "log.tensorboard=false"]
    out += METHODS[method][1]
    if method == "bestup-online":
        out += ["sampler.online.start_epoch=1", "sampler.online.refit_every=1",
                f"sampler.online.num_archs={args.online_archs}", f"sampler.online.folds={args.online_folds}",
                f"sampler.online.calibration_batches={args.online_calib_batches}",
                f"sampler.online.max_batches={args.online_eval_batches}"]
    out += SMOKE_TRAIN if args.smoke else []
    out += ["log.progress=false"] if args.quiet else []
    return out + list(args.set)


def machine() -> dict[str, Any]:
    """The CPU, cores, OS, Python and torch of this process."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "torch": torch.__version__}


def load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


# --------------------------------------------------------------------------- bookkeeping
class PhaseClock:
    """Wall seconds per phase of one run, summed over the invocations that worked on it; saved to
    ``timing.json`` at least every ``every`` seconds while a phase runs (a kill loses at most that)."""

    def __init__(self, path: Path, every: float = 15.0) -> None:
        self.path, self.every = path, every
        self.totals: dict[str, float] = dict(read_json_file(path, "timing file", UserError)) if path.is_file() else {}
        self.phase: str | None = None
        self._t = self._saved = 0.0

    def start(self, phase: str) -> None:
        self.phase = phase
        self._t = self._saved = time.perf_counter()
        self.totals.setdefault(phase, 0.0)

    def tick(self, *_: Any) -> None:
        if self.phase is None:
            return
        now = time.perf_counter()
        self.totals[self.phase] += now - self._t
        self._t = now
        if now - self._saved >= self.every:
            self.save()
            self._saved = now

    def stop(self) -> float:
        """End the phase; its total so far."""
        phase = self.phase
        self.tick()
        self.save()
        self.phase = None
        return self.totals.get(phase or "", 0.0)

    def save(self) -> None:
        atomic_write_json(self.path, self.totals)


class Counted:
    """``evaluate_fn(arch) -> top-1`` that counts its measurements and prints one line every ``every``."""

    def __init__(self, evaluate_fn: Callable[[Arch], float], what: str, every: int = 10) -> None:
        self.evaluate_fn, self.what, self.every = evaluate_fn, what, every
        self.calls = 0
        self.t0 = time.perf_counter()

    def __call__(self, arch: Arch) -> float:
        top1 = self.evaluate_fn(arch)
        self.calls += 1
        STATS["measured"] += 1
        if self.calls % self.every == 0:
            log(f"      {self.calls} subnets measured on {self.what} ({time.perf_counter() - self.t0:.0f} s)")
        return top1


def fixed_archs(out: Path, space: SearchSpace, n: int, num_classes: int) -> list[Arch]:
    """The ``n`` subnets every run measures: min and max, then round-robin over 10 FLOPs bins
    (:func:`~attentivenas.accuracy.spread_genes`, seed ``ARCH_SEED``); kept in ``OUT/archs.json``."""
    path = out / "archs.json"
    if path.is_file():
        data = read_json_file(path, "fixed subnets", UserError)
        archs = [space.arch_from_dict(a["arch"]) for a in data["archs"]]
    else:
        cost = CostModel(space, num_classes)
        genes = spread_genes(space, n, np.random.default_rng(ARCH_SEED), cost, bins=10)
        archs = [space.decode(g) for g in genes]
        flops, params = cost.flops_and_params(genes)
        atomic_write_json(path, {"space": space.name, "num_classes": num_classes, "seed": ARCH_SEED, "bins": 10,
                                 "archs": [{"arch": a.to_dict(), "mflops": float(f), "params_m": float(p) / 1e6}
                                           for a, f, p in zip(archs, flops, params, strict=True)]})
    keys = {a.key() for a in archs}
    if len(archs) != n or len(keys) != n or space.min_arch().key() not in keys or space.max_arch().key() not in keys:
        raise UserError(f"{path}: expected {n} distinct subnets with the min and max ones")
    return archs


def mflops_range(space: SearchSpace, num_classes: int) -> tuple[float, float]:
    """MFLOPs of the smallest and the largest subnet (the hypervolume's bounds, as the search's)."""
    cost = CostModel(space, num_classes)
    f = cost.flops(np.stack([space.encode(space.min_arch()), space.encode(space.max_arch())]))
    return float(f[0]), float(f[1])


_DATA: dict[str, DataBundle] = {}


def eval_data(cfg: TrainConfig) -> DataBundle:
    """The data the measurements read, built once per process: the same for every run (the data config
    is; the calibration images are augmented with seed ``EVAL_SEED`` whatever the run's seed)."""
    key = dumps_json(cfg.data.to_dict())
    if key not in _DATA:
        _DATA.clear()
        _DATA[key] = build_data(cfg.data, EVAL_SEED)
    return _DATA[key]


def best_under(mflops: Sequence[float], top1: Sequence[float], budget: float) -> float | None:
    under = [a for f, a in zip(mflops, top1, strict=True) if f <= budget]
    return max(under) if under else None


# --------------------------------------------------------------------------- one run
def run_one(args: argparse.Namespace, out: Path, method: str, seed: int, where: str, command: str) -> None:
    """Train, measure, search and test one (method, seed); skipped when its ``result.json`` exists."""
    run_dir = out / "runs" / f"{method}-s{seed}"
    result_path = run_dir / "result.json"
    if result_path.is_file():
        STATS["skipped"] += 1
        log(f"{where} {method} seed {seed}: already done ({result_path})")
        return
    load_start = load_average()
    run_dir.mkdir(parents=True, exist_ok=True)
    clock = PhaseClock(run_dir / "timing.json")
    cfg: TrainConfig = load_config(args.config, train_overrides(args, method, seed))
    log(f"{where} {method} seed {seed}: training {cfg.data.train_size} images x {cfg.optim.epochs} epochs "
        f"({cfg.space} space) -> {run_dir}")

    def on_step(step: int, _: Any) -> None:
        STATS["steps"] += 1
        clock.tick()

    clock.start("train")
    trained = train(cfg, run_dir, resume="auto", on_step=on_step)
    train_s = clock.stop()
    if trained.status != "completed" or trained.model is None:
        raise UserError(f"training of {run_dir} ended as '{trained.status}'; run the same command again to resume it")
    ev = trained.final_eval
    check = f"; min / max subnet {ev['min_top1']:.2f} / {ev['max_top1']:.2f}% (hold-out)" if "min_top1" in ev else ""
    log(f"      trained: {trained.global_step} steps, {train_s:.0f} s in all{check}")
    net = trained.model.cpu().eval()
    space, num_classes = net.space, net.num_classes
    archs = fixed_archs(out, space, args.archs, num_classes)
    lo, hi = mflops_range(space, num_classes)
    budgets = [round(lo + f * (hi - lo), 4) for f in BUDGET_FRACTIONS]
    bundle = eval_data(cfg)
    common = {"calib_batches": args.calib_batches, "calib_batch_size": cfg.data.batch_size,
              "batch_size": cfg.data.eval_batch_size, "device": "cpu", "seed": EVAL_SEED, "channels_last": True}
    holdout = SubnetEvaluator(net, bundle, split="holdout", max_images=args.eval_images, **common)
    n_holdout = len(holdout.val_loader.dataset)  # type: ignore[arg-type]

    # (a) the fixed subnets
    clock.start("measure")
    fixed_cache = run_dir / "fixed_archs.jsonl"
    fixed_m = MeasuredAccuracy(space, Counted(holdout, f"{n_holdout} hold-out images"), fixed_cache, num_classes,
                               log=lambda m: log(f"      {m}"))
    fixed_m.measure(archs, what=f"of the fixed set ({len(archs)}) on {n_holdout} hold-out images")
    fixed = fixed_m.cache.subset(archs)
    measure_s = clock.stop()
    fixed_top1 = [float(fixed.get(a).accuracy) for a in archs]  # type: ignore[union-attr]
    fixed_mflops = [float(fixed.get(a).mflops) for a in archs]  # type: ignore[union-attr]

    # (b) NSGA-II on a predictor of those measurements, the best candidates re-measured
    clock.start("search")
    search_dir = run_dir / "search"
    predictor, report = fit_best(fixed, args.predictor_kinds, folds=args.folds, seed=seed, feature_set="knobs+cost")
    predictor.save(search_dir / "predictor.json")
    best = report["kinds"][report["best"]]
    log(f"      search predictor: {report['best']} (Kendall tau {best['kendall_tau']:.3f} on held-out subnets); "
        f"NSGA-II {args.pop_size} x {args.generations}, budgets {', '.join(f'{b:g}' for b in budgets)} MFLOPs")
    measured_cache = search_dir / "measured.jsonl"
    if not measured_cache.exists():  # the fixed subnets' measurements count for the measured front too
        atomic_write_bytes(measured_cache, fixed_cache.read_bytes())
    search_cfg = SearchConfig(objectives=["mflops"], budgets=BudgetsConfig(points=budgets),
                              accuracy=AccuracyConfig(source="predicted+remeasure", remeasure_top=args.remeasure_top),
                              evolution=EvolutionConfig(pop_size=args.pop_size, generations=args.generations), seed=seed)
    result = run_search(space, search_cfg, predictor.predict_genes,
                        evaluate_fn=Counted(holdout, f"{n_holdout} hold-out images (search)"),
                        measured_cache=measured_cache, num_classes=num_classes, progress=False,
                        state_path=search_dir / "search_state.npz", log=lambda m: log(f"      {m}"))
    write_pareto_json(search_dir / "pareto.json", result.pareto)  # the search's own files, less its plot
    write_pareto_csv(search_dir / "pareto.csv", result.pareto)
    atomic_write_json(search_dir / "summary.json", result.summary())
    search_s = clock.stop()

    # the searched models, and the min and max subnets, on the test split
    clock.start("test")
    test = SubnetEvaluator(net, bundle, split="test", max_images=args.test_images, **common)
    n_test = len(test.val_loader.dataset)  # type: ignore[arg-type]
    winners = [w for w in result.budget_winners if isinstance(w.get("arch"), dict)]
    to_test = [space.arch_from_dict(e["arch"]) for e in (*winners, *(result.pareto if args.test_front else ()))]
    to_test += [space.min_arch(), space.max_arch()]
    test_m = MeasuredAccuracy(space, Counted(test, f"{n_test} test images"), run_dir / "test_measured.jsonl",
                              num_classes, log=lambda m: log(f"      {m}"))
    test_m.measure(to_test, what=f"on {n_test} test images (budget winners{', front' if args.test_front else ''}, "
                                 "min, max)")

    def test_top1(arch: dict[str, Any] | Arch) -> float | None:
        a = arch if isinstance(arch, Arch) else space.arch_from_dict(arch)
        rec = test_m.cache.get(a)
        return None if rec is None else float(rec.accuracy)

    test_s = clock.stop()

    front_mflops = [float(e["mflops"]) for e in result.pareto]
    front_top1 = [float(e["accuracy"]) for e in result.pareto]
    front_test = [test_top1(e["arch"]) for e in result.pareto]
    hv_test = front_hypervolume(front_test, [front_mflops], [(lo, hi)]) if args.test_front else None
    bounds = [(lo, hi)]
    res = {
        "method": method, "label": METHODS[method][0], "seed": seed, "overrides": train_overrides(args, method, seed),
        "space": space.name, "num_classes": num_classes, "holdout_images": n_holdout, "test_images": n_test,
        "hv_bounds_mflops": [lo, hi], "budgets_mflops": budgets,
        "train": {"status": trained.status, "steps": trained.global_step, "epochs": trained.epoch,
                  "train_size": cfg.data.train_size, "batch_size": cfg.data.batch_size, "lr": cfg.optim.lr,
                  "final_eval": dict(trained.final_eval)},
        "fixed": {
            "n": len(archs),
            "hypervolume": front_hypervolume(fixed_top1, [fixed_mflops], bounds),
            "min_top1": float(fixed.get(space.min_arch()).accuracy),  # type: ignore[union-attr]
            "max_top1": float(fixed.get(space.max_arch()).accuracy),  # type: ignore[union-attr]
            "budget_top1": [best_under(fixed_mflops, fixed_top1, b) for b in budgets],
            "mflops": fixed_mflops, "top1": fixed_top1,
        },
        "search": {
            "hypervolume": front_hypervolume(front_top1, [front_mflops], bounds),
            "hypervolume_test": hv_test,
            "search_hypervolume": result.hypervolume, "hypervolume_reference": result.hypervolume_reference,
            "predictor": {"kind": report["best"], "kendall_tau": best["kendall_tau"],
                          "spearman_rho": best["spearman_rho"], "rmse": best["rmse"]},
            "n_evaluations": result.n_evaluations, "n_measured": result.n_measured,
            "pareto": [{"mflops": e["mflops"], "params_m": e["params_m"], "top1": e["accuracy"],
                        "test_top1": test_top1(e["arch"]), "arch": e["arch"]} for e in result.pareto],
            "budget_winners": [{"budget": w["budget"], "mflops": w.get("mflops"), "top1": w.get("accuracy"),
                                "test_top1": test_top1(w["arch"]) if isinstance(w.get("arch"), dict) else None,
                                "arch": w.get("arch")} for w in result.budget_winners],
        },
        "test": {"min_top1": test_top1(space.min_arch()), "max_top1": test_top1(space.max_arch())},
        "timing": {"train_s": train_s, "measure_s": measure_s, "search_s": search_s, "test_s": test_s,
                   "total_s": train_s + measure_s + search_s + test_s},
        "threads": args.threads, "load_average": {"start": load_start, "end": load_average()},
        "machine": machine(), "command": command, "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    atomic_write_json(result_path, res)
    STATS["finished"] += 1
    log(f"      done in {res['timing']['total_s']:.0f} s: hypervolume fixed {100 * res['fixed']['hypervolume']:.2f}, "
        f"searched {100 * res['search']['hypervolume']:.2f} (x100); min / max {res['fixed']['min_top1']:.2f} / "
        f"{res['fixed']['max_top1']:.2f}% hold-out -> {result_path}")


# --------------------------------------------------------------------------- aggregation
def load_results(out: Path) -> list[dict[str, Any]]:
    return [read_json_file(p, "run result", UserError) for p in sorted(out.glob("runs/*/result.json"))]


def run_metrics(r: dict[str, Any]) -> dict[str, float | None]:
    """One run's numbers, in percent (hypervolumes x 100)."""
    m: dict[str, float | None] = {
        "hv_fixed": 100 * r["fixed"]["hypervolume"], "hv_front": 100 * r["search"]["hypervolume"],
        "hv_front_test": None if r["search"]["hypervolume_test"] is None else 100 * r["search"]["hypervolume_test"],
        "min_top1": r["fixed"]["min_top1"], "max_top1": r["fixed"]["max_top1"],
        "min_test_top1": r["test"]["min_top1"], "max_test_top1": r["test"]["max_top1"],
        "wall_s": r["timing"]["total_s"], "train_s": r["timing"]["train_s"],
    }
    for i, w in enumerate(r["search"]["budget_winners"]):
        m[f"budget{i}_top1"], m[f"budget{i}_test_top1"] = w.get("top1"), w.get("test_top1")
    for i, v in enumerate(r["fixed"]["budget_top1"]):
        m[f"budget{i}_fixed_top1"] = v
    return m


def mean_std(values: Sequence[float | None]) -> dict[str, Any]:
    v = [float(x) for x in values if x is not None]
    if not v:
        return {"mean": None, "std": None, "n": 0, "values": list(values)}
    return {"mean": float(np.mean(v)), "std": float(np.std(v, ddof=1)) if len(v) > 1 else None, "n": len(v),
            "values": list(values)}


def paired(a: dict[int, float | None], b: dict[int, float | None]) -> dict[str, Any] | None:
    """Per-seed differences a - b over the seeds both have: mean, std, 95% t interval, seeds above 0."""
    seeds = sorted(s for s in a if s in b and a[s] is not None and b[s] is not None)
    if not seeds:
        return None
    d = np.array([float(a[s]) - float(b[s]) for s in seeds])  # type: ignore[arg-type]
    out: dict[str, Any] = {"seeds": seeds, "diffs": d.tolist(), "n": len(d), "mean": float(d.mean()),
                           "std": None, "ci95": None, "t_crit": None, "positive": int((d > 0).sum())}
    if len(d) > 1:
        from scipy import stats  # heavy: only the report needs it

        sd = float(d.std(ddof=1))
        t = float(stats.t.ppf(0.975, len(d) - 1))
        half = t * sd / math.sqrt(len(d))
        out.update(std=sd, t_crit=t, ci95=[out["mean"] - half, out["mean"] + half])
    return out


def aggregate(results: list[dict[str, Any]], plan: dict[str, Any] | None) -> dict[str, Any]:
    """Per method: mean and std over seeds of every metric; per attentive method: paired differences to uniform."""
    methods = [m for m in METHODS if any(r["method"] == m for r in results)]
    per_run = {(r["method"], r["seed"]): run_metrics(r) for r in results}
    names = sorted({k for m in per_run.values() for k in m})
    summary: dict[str, Any] = {"settings": plan, "methods": {}, "paired_vs_uniform": {}, "runs": []}
    if results:
        summary["budgets_mflops"] = results[0]["budgets_mflops"]
        summary["hv_bounds_mflops"] = results[0]["hv_bounds_mflops"]
        summary["holdout_images"], summary["test_images"] = results[0]["holdout_images"], results[0]["test_images"]
        summary["train"] = {k: results[0]["train"].get(k) for k in ("train_size", "batch_size", "lr", "epochs")}
    for m in methods:
        runs = sorted((r for r in results if r["method"] == m), key=lambda r: r["seed"])
        summary["methods"][m] = {"label": METHODS[m][0], "seeds": [r["seed"] for r in runs],
                                 "metrics": {k: mean_std([per_run[(m, r["seed"])].get(k) for r in runs])
                                             for k in names}}
    for m in methods:
        if m == BASELINE or BASELINE not in methods:
            continue
        summary["paired_vs_uniform"][m] = {
            k: paired({s: v.get(k) for (mm, s), v in per_run.items() if mm == m},
                      {s: v.get(k) for (mm, s), v in per_run.items() if mm == BASELINE})
            for k in names if not k.endswith("_s")}
    for r in sorted(results, key=lambda r: (list(METHODS).index(r["method"]), r["seed"])):
        summary["runs"].append({"method": r["method"], "seed": r["seed"], **r["timing"], "threads": r.get("threads"),
                                "load_average": r.get("load_average"), "finished": r.get("finished"),
                                "command": r.get("command")})
    summary["wall_s_total"] = float(sum(r["timing"]["total_s"] for r in results))
    summary["machine"] = results[0]["machine"] if results else machine()
    return summary


def plot_fronts(results: list[dict[str, Any]], path: Path) -> Path:
    """One panel per method: each seed's searched front (hold-out top-1 vs MFLOPs), uniform's in grey."""
    import matplotlib  # heavy: only the report plots

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = [m for m in METHODS if any(r["method"] == m for r in results)] or [BASELINE]
    cols = 2 if len(methods) > 1 else 1
    rows = math.ceil(len(methods) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.6 * rows), dpi=110, sharex=True, sharey=True,
                             squeeze=False)
    styles = ["-", "--", ":", "-."]

    def front(r: dict[str, Any]) -> tuple[list[float], list[float]]:
        pts = sorted((e["mflops"], e["top1"]) for e in r["search"]["pareto"])
        return [p[0] for p in pts], [p[1] for p in pts]

    for ax, m in zip(axes.flat, methods, strict=False):
        if m != BASELINE:
            for k, r in enumerate(r for r in results if r["method"] == BASELINE):
                xs, ys = front(r)
                ax.plot(xs, ys, drawstyle="steps-post", color="0.7", lw=1, ls=styles[k % 4],
                        label="uniform" if k == 0 else None)
        for k, r in enumerate(sorted((r for r in results if r["method"] == m), key=lambda r: r["seed"])):
            xs, ys = front(r)
            ax.plot(xs, ys, drawstyle="steps-post", marker="o", ms=3, lw=1.3, ls=styles[k % 4], color="tab:blue",
                    label=f"seed {r['seed']}")
        for b in (results[0]["budgets_mflops"] if results else []):
            ax.axvline(b, ls=":", color="0.5", lw=0.8)
        ax.set_title(METHODS[m][0], fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    for ax in list(axes.flat)[len(methods):]:
        ax.set_visible(False)
    fig.supxlabel("MFLOPs (dotted: the 3 budgets)", fontsize=9)
    fig.supylabel("hold-out top-1 (%)", fontsize=9)
    fig.suptitle("Searched Pareto fronts (re-measured on the hold-out)", fontsize=11)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


# --------------------------------------------------------------------------- markdown
CONCLUSION_BEGIN = "<!-- conclusion: written by hand; kept when this page is regenerated -->"
CONCLUSION_END = "<!-- end of conclusion -->"
PLACEHOLDER = "_To be written: what the numbers above say about the paper's claim._"
#: (metric, what it is) of the sentences comparing each attentive method with uniform
COMPARED = (("hv_front", "hypervolume of the searched front"), ("hv_fixed", "hypervolume of the fixed subnets"),
            ("hv_front_test", "hypervolume of the searched front on the test split"))


def fmt(stat: dict[str, Any] | None, digits: int = 2) -> str:
    """``mean ± std`` of a :func:`mean_std` (``mean`` alone for one value, ``-`` for none)."""
    if not stat or stat.get("mean") is None:
        return "-"
    sd = stat.get("std")
    return f"{stat['mean']:.{digits}f}" + (f" ± {sd:.{digits}f}" if sd is not None else "")


def fmt_diff(d: dict[str, Any] | None) -> str:
    if not d:
        return "-"
    return f"{d['mean']:+.2f}" + (f" ± {d['std']:.2f}" if d["std"] is not None else "")


def fmt_seconds(s: float) -> str:
    return f"{s / 60:.1f} min" if s >= 90 else f"{s:.0f} s"


def comparison_lines(summary: dict[str, Any]) -> list[str]:
    """Each attentive method minus uniform, paired by seed, as sentences computed from the numbers."""
    lines = []
    for m, diffs in summary["paired_vs_uniform"].items():
        for key, what in COMPARED:
            p = diffs.get(key)
            if not p:
                continue
            head = f"- {METHODS[m][0]} minus uniform, {what}: {p['mean']:+.2f}"
            if p["std"] is None:
                lines.append(f"{head} points (HV x 100) from {p['n']} seed: no spread, hence no interval.")
                continue
            lo, hi = p["ci95"]
            verdict = ("above 0: agrees with the claim" if lo > 0 else "below 0: contradicts the claim" if hi < 0
                       else "contains 0: these seeds cannot tell")
            lines.append(f"{head} ± {p['std']:.2f} points (HV x 100; mean ± std of the per-seed differences, "
                         f"{p['n']} seeds); 95% interval [{lo:+.2f}, {hi:+.2f}], {verdict}; higher than uniform "
                         f"in {p['positive']} of {p['n']} seeds.")
    if not lines:
        return ["- (no attentive method shares a seed with uniform yet)"]
    with_t = [p for d in summary["paired_vs_uniform"].values() for p in d.values() if p and p["t_crit"]]
    if with_t:
        n, t = max((p["n"], p["t_crit"]) for p in with_t)
        lines.append(f"- How sure {n} seeds let us be: the 95% interval of a mean of {n} paired differences is "
                     f"± {t:.2f} x std / sqrt({n}) = ± {t / math.sqrt(n):.2f} x their seed-to-seed std (t with {n - 1} "
                     "degrees of freedom): the mean difference must exceed that to be told apart from 0.")
    return lines


def markdown_tables(summary: dict[str, Any]) -> str:
    """The tables of a summary: per method the mean ± std over seeds, then the paired differences."""
    budgets = summary.get("budgets_mflops", [])
    methods = summary["methods"]
    test_hv = any(s["metrics"].get("hv_front_test", {}).get("mean") is not None for s in methods.values())
    head = ["method", "seeds", "HV fixed subnets", "HV searched front", *(["HV front, test"] if test_hv else []),
            "min subnet", "max subnet", "min, test", "max, test"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in methods.values():
        k = s["metrics"]
        cells = [s["label"], ",".join(map(str, s["seeds"])), fmt(k["hv_fixed"]), fmt(k["hv_front"]),
                 *([fmt(k.get("hv_front_test"))] if test_hv else []), fmt(k["min_top1"]), fmt(k["max_top1"]),
                 fmt(k["min_test_top1"]), fmt(k["max_test_top1"])]
        lines.append("| " + " | ".join(cells) + " |")
    head = ["best subnet under", *[f"{b:.2f} MFLOPs: {w}" for b in budgets for w in ("hold-out", "test")],
            *[f"fixed subnets, {b:.2f}" for b in budgets]]
    lines += ["", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in methods.values():
        k = s["metrics"]
        cells = [s["label"], *[fmt(k.get(f"budget{i}_{w}")) for i in range(len(budgets)) for w in ("top1", "test_top1")],
                 *[fmt(k.get(f"budget{i}_fixed_top1")) for i in range(len(budgets))]]
        lines.append("| " + " | ".join(cells) + " |")
    if summary["paired_vs_uniform"]:
        keys = ["hv_front", "hv_fixed", *(["hv_front_test"] if test_hv else []), "min_top1", "max_top1",
                *[f"budget{i}_{w}" for i in range(len(budgets)) for w in ("top1", "test_top1")]]
        head = ["minus uniform, paired by seed", "HV searched front", "HV fixed subnets",
                *(["HV front, test"] if test_hv else []), "min subnet", "max subnet",
                *[f"{b:.2f} MFLOPs: {w}" for b in budgets for w in ("hold-out", "test")]]
        lines += ["", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for m, d in summary["paired_vs_uniform"].items():
            lines.append("| " + " | ".join([METHODS[m][0], *[fmt_diff(d.get(k)) for k in keys]]) + " |")
    return "\n".join(lines) + "\n"


def timing_table(summary: dict[str, Any]) -> str:
    lines = ["| run | train | fixed subnets | search | test | total | threads | load average, start → end |",
             "|---|---|---|---|---|---|---|---|"]
    for r in summary["runs"]:
        la = r.get("load_average") or {}
        load = " → ".join(f"{x[0]:.1f}" if x else "?" for x in (la.get("start"), la.get("end")))
        lines.append(f"| {r['method']} s{r['seed']} | {fmt_seconds(r['train_s'])} | {fmt_seconds(r['measure_s'])} | "
                     f"{fmt_seconds(r['search_s'])} | {fmt_seconds(r['test_s'])} | {fmt_seconds(r['total_s'])} | "
                     f"{r.get('threads')} | {load} |")
    return "\n".join(lines) + "\n"


def kept_conclusion(path: Path) -> str:
    """The hand-written conclusion of an existing page (between the markers), or a placeholder."""
    if path.is_file():
        text = path.read_text()
        if CONCLUSION_BEGIN in text and CONCLUSION_END in text:
            return text.split(CONCLUSION_BEGIN, 1)[1].split(CONCLUSION_END, 1)[0].strip("\n")
    return PLACEHOLDER


def shown(path: Path) -> str:
    """A path as the page shows it: relative to the repository when inside it."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def results_page(summary: dict[str, Any], out: Path, png: str, docs: Path, conclusion: str) -> str:
    """``docs/results.md``: the claim, what was run, tables, plot, computed comparison, the conclusion
    (kept), commands, machine and wall time."""
    s = summary.get("settings") or {}
    mach = summary["machine"]
    budgets = summary.get("budgets_mflops", [])
    lo, hi = summary.get("hv_bounds_mflops", [float("nan"), float("nan")])
    commands = list(dict.fromkeys(r["command"] for r in summary["runs"] if r.get("command")))
    commands.append(f"python {SCRIPT} --report --out {shown(out)} --docs {shown(docs)}")
    loads = [x[0] for r in summary["runs"] for x in ((r.get("load_average") or {}).get("start"),
                                                     (r.get("load_average") or {}).get("end")) if x]
    load = (f"1-minute load average {min(loads):.1f} to {max(loads):.1f} at the starts and ends of the runs"
            if loads else "load not recorded")
    seeds = sorted({r["seed"] for r in summary["runs"]})
    train = summary.get("train", {})
    extra = "".join(f", `{x}`" for x in s.get("set", []))
    tested = "the best subnet under each budget, the min and max subnets" + (
        " and every subnet of the front" if s.get("test_front") else "")
    return f"""# Results: attentive sampling vs uniform sampling on Fashion-MNIST

<!-- Written by `python {SCRIPT} --report --docs {shown(docs)}` from {shown(out)}/runs/*/result.json.
     Only the conclusion section is kept when the page is written again. -->

The claim tested (AttentiveNAS, Wang et al., CVPR 2021): sampling the sandwich rule's middle
subnets attentively, BestUp-k (the best of k candidates at a FLOPs target) or WorstUp-k (the worst),
gives a better accuracy / FLOPs Pareto front than uniform sampling; their recipe trains with
BestUp-3 ranked by the mini-batch loss. BestUp-3 ranked by a predictor fitted during training
(`sampler.estimator=online`) is this package's addition.

## What was run

{len(summary['runs'])} runs: {'; '.join(v['label'] for v in summary['methods'].values())}; seeds {', '.join(map(str, seeds))}.
One budget for all: `{Path(s.get('config', '?')).name}` (tiny space, {lo:.2f}-{hi:.2f} MFLOPs) with
{s.get('train_size')} training images (class-stratified, the same for every seed), {s.get('epochs')} epochs,
batch {train.get('batch_size')}, LR {train.get('lr')} per 256 images{extra}. Per run, every subnet BN-recalibrated on
{s.get('calib_batches')} batches of training images:

* (a) the same {s.get('archs')} fixed subnets (spread over the FLOPs range, min and max included;
  `{shown(out)}/archs.json`) measured on {summary.get('holdout_images')} hold-out images;
* (b) NSGA-II (population {s.get('pop_size')}, {s.get('generations')} generations) on a predictor fitted to (a)
  ({', '.join(s.get('predictor_kinds', []))}; the best by {s.get('folds')}-fold Kendall tau), its
  {s.get('remeasure_top')} best candidates and the best 3 under each budget re-measured on the same hold-out
  images; the front is built from every measured subnet, those of (a) included, so it is never below (a)'s;
* on {summary.get('test_images')} test images: {tested}. Budgets: {', '.join(f'{b:.2f}' for b in budgets)} MFLOPs
  (25, 50 and 75% of the range).

Hypervolume (HV, x 100) of the non-dominated (error, MFLOPs) points, with error = (100 - top-1) / 100,
MFLOPs scaled {lo:.3f} -> 0 and {hi:.3f} -> 1 and the reference point (1, 1): the search's own
measure (`attentivenas.search.front_hypervolume`). Accuracies are top-1 in %, on the hold-out
unless marked test; each cell is the mean ± std over seeds.

## Tables

{markdown_tables(summary)}
## Fronts

![searched fronts per method]({png})

## Computed comparison with uniform

{chr(10).join(comparison_lines(summary))}

## Conclusion

{CONCLUSION_BEGIN}
{conclusion}
{CONCLUSION_END}

## How it was run

```
{chr(10).join(commands)}
```

Machine: {mach.get('cpu')}, {mach.get('cores')} cores, {mach.get('platform')}, Python {mach.get('python')},
torch {mach.get('torch')}; {load}.

Wall time: {fmt_seconds(summary['wall_s_total'])} for the {len(summary['runs'])} runs (the phases of each run,
summed over the invocations that worked on it):

{timing_table(summary)}
Raw results: `{shown(out)}/runs/<method>-s<seed>/result.json`; their aggregate: `{shown(out)}/summary.json`.
"""


def write_report(out: Path, docs: str | None) -> dict[str, Any]:
    """Aggregate ``OUT/runs/*/result.json`` into ``OUT/summary.json|md``, ``OUT/fronts.png`` (and ``docs``)."""
    results = load_results(out)
    if not results:
        raise UserError(f"no results in {out}/runs/*/result.json yet")
    plan_path = out / "plan.json"
    plan = read_json_file(plan_path, "results plan", UserError).get("settings") if plan_path.is_file() else None
    summary = aggregate(results, plan)
    atomic_write_json(out / "summary.json", summary)
    atomic_write_text(out / "summary.md", markdown_tables(summary) + "\n" + "\n".join(comparison_lines(summary)) + "\n")
    plot_fronts(results, out / "fronts.png")
    log(f"report: {len(results)} runs -> {out / 'summary.json'}, {out / 'summary.md'}, {out / 'fronts.png'}")
    if docs is not None:
        page = Path(docs)
        png = page.with_name(f"{page.stem}_fronts.png")
        plot_fronts(results, png)
        atomic_write_text(page, results_page(summary, out, png.name, page, kept_conclusion(page)))
        log(f"report: {page} and {png}")
    return summary


# --------------------------------------------------------------------------- main
def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    for key in STATS:
        STATS[key] = 0
    threads = torch.get_num_threads()
    try:
        args = parse_args(argv)
        torch.set_num_threads(args.threads)
        out = Path(args.out)
        with OutputLock(out, "results folder"):
            remove_torn_writes(out, depth=3)  # the temporary files of writes a kill interrupted
            if not args.report:
                check_plan(out, settings(args))
                runs = [(m, s) for s in args.seeds for m in args.methods]
                t0 = time.perf_counter()
                log(f"{len(runs)} runs ({', '.join(args.methods)} x seeds {','.join(map(str, args.seeds))}) -> {out}")
                for i, (m, s) in enumerate(runs, start=1):
                    run_one(args, out, m, s, f"[{i}/{len(runs)}]", f"python {SCRIPT} {shlex.join(argv)}".rstrip())
                log(f"runs done in {time.perf_counter() - t0:.0f} s (this invocation)")
            write_report(out, args.docs)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        torch.set_num_threads(threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
