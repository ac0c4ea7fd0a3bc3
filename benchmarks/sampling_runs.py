"""The running half of ``benchmarks/reproduce_sampling.py``: train one (method, seed), measure its fixed
subnets, search, test; resumable, its result written atomically to ``OUT/runs/<method>-s<seed>/result.json``.

:func:`run_one` is the sequence of one run; :func:`stage2` is its stage-2 part: measure the fixed
spread subnets and fit a predictor to them (:func:`~attentivenas.search.fit_with_settings`), then the
library's stage-2 sequence (:func:`~attentivenas.search.run_stage2`: search on the predictions,
re-measure the best candidates, write the search's files). The experiment's constants (methods, budgets, seeds, the full and smoke defaults) and each
run's training overrides are here too; the CLI (options, the plan every run shares) is
``reproduce_sampling.py``, the tables and plots ``sampling_report.py``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from attentivenas.accuracy import SubnetEvaluator, spread_genes
from attentivenas.config import (
    AccuracyConfig,
    BudgetsConfig,
    EvolutionConfig,
    MeasureSettings,
    PredictorFitSettings,
    SearchConfig,
    TrainConfig,
    load_config,
)
from attentivenas.costs import CostModel
from attentivenas.data import DataBundle, build_data
from attentivenas.devices import device_name, resolve_device
from attentivenas.errors import UserError
from attentivenas.io import OutputLock, atomic_write_bytes, atomic_write_json, dumps_json, read_json_file
from attentivenas.search import MeasuredAccuracy, fit_with_settings, front_hypervolume, run_stage2
from attentivenas.space import Arch, SearchSpace
from attentivenas.train import train
from timing import load_average, machine

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
PROBE_N = 8  #: the ranking probe: this many fixed subnets at evenly spaced ranks of MFLOPs, tested in every run
ARCH_SEED = 0  # the fixed subnets
EVAL_SEED = 0  # the calibration images
FULL: dict[str, Any] = {
    "config": str(ROOT / "configs" / "fashion_mnist.yaml"), "out": str(ROOT / "benchmarks" / "results" / "sampling-54k"),
    "methods": ",".join(METHODS), "seeds": "0,1,2", "train_size": 54_000, "epochs": 8, "archs": 60,
    "eval_images": None,  # every hold-out image after those the online predictor measures on (holdout_skip) "calib_batches": 8, "test_images": None, "pop_size": 40, "generations": 25,
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
               "eval.calib_batches=2", "eval.max_batches=1", "sampler.prior_samples=2000",
               "sampler.online.kinds=[ridge]", "log.progress=false"]
#: counts of this process (the test reads them): steps trained, subnets measured, runs skipped as done
STATS: dict[str, int] = {"steps": 0, "measured": 0, "skipped": 0, "finished": 0}

def log(text: str) -> None:
    print(text, flush=True)


def shown(path: Path) -> str:
    """A path as the page shows it: relative to the repository when inside it."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def train_overrides(args: argparse.Namespace, method: str, seed: int) -> list[str]:
    """The training config of one run, as ``key=value`` overrides of ``--config``."""
    out = [f"seed={seed}", f"data.train_size={args.train_size}", f"optim.epochs={args.epochs}",
           f"eval.every_epochs={args.epochs}", f"runtime.threads={args.threads}", f"runtime.device={args.device}",
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


def probe_archs(out: Path, space: SearchSpace, archs: list[Arch], mflops: list[float], num_classes: int) -> list[int]:
    """The ranking probe: the indices of :data:`PROBE_N` of the fixed subnets ``archs`` (of ``mflops``)
    at evenly spaced ranks of MFLOPs (min and max included), measured on the test split by every run.
    Kept in ``OUT/probe_archs.json``, a Pareto-set file: ``attentivenas finetune --pareto
    OUT/probe_archs.json --init scratch --distill none`` trains them alone, and the report ranks each
    run's inherited top-1 against that."""
    order = sorted(range(len(archs)), key=lambda i: (mflops[i], i))
    picks = [order[int(r)] for r in np.round(np.linspace(0, len(order) - 1, min(PROBE_N, len(order))))]
    path = out / "probe_archs.json"
    if not path.is_file():
        atomic_write_json(path, {"space": space.name, "num_classes": num_classes, "archs": [
            {"name": f"p{k}", "mflops": mflops[i], "arch": archs[i].to_dict()} for k, i in enumerate(picks)]})
    return picks


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


def holdout_skip(args: argparse.Namespace, cfg: TrainConfig) -> int:
    """Hold-out images the report leaves to the online predictor: ``sampler.estimator=online`` measures
    its subnets on the first ``--online-eval-batches`` x ``data.eval_batch_size`` hold-out images
    (:mod:`attentivenas.train.online`), so every run, whatever its method, measures after them."""
    return int(args.online_eval_batches) * int(cfg.data.eval_batch_size)


def evaluator(net: Any, bundle: DataBundle, args: argparse.Namespace, cfg: TrainConfig, split: str,
              max_images: int | None, device: torch.device | None = None, skip: int = 0) -> SubnetEvaluator:
    """How every run measures a subnet on ``split`` (``max_images`` of it, all for None, after its first
    ``skip``): BN recalibrated on ``--calib-batches`` training batches (seed ``EVAL_SEED``, kept on the
    device), on the CPU in channels-last memory, or on ``--device cuda`` in its default memory format
    (as training there)."""
    dev = device or torch.device("cpu")
    settings = MeasureSettings(split=split, max_images=max_images, calib_batches=args.calib_batches,
                               calib_batch_size=cfg.data.batch_size, batch_size=cfg.data.eval_batch_size,
                               calib_seed=EVAL_SEED)
    ev = SubnetEvaluator(net, bundle, settings, device=dev, channels_last=True if dev.type == "cpu" else "auto")
    if skip:
        full = bundle.val if split == "holdout" else bundle.test
        total = len(full)  # type: ignore[arg-type]
        end = total if max_images is None else min(total, skip + max_images)
        if end <= skip:
            raise UserError(f"the {split} split has {total} images, none after the first {skip} (the online "
                            "predictor's)")
        ev.val_loader = DataLoader(Subset(full, range(skip, end)), batch_size=cfg.data.eval_batch_size, shuffle=False)
    return ev


def best_under(mflops: Sequence[float], top1: Sequence[float], budget: float) -> float | None:
    under = [a for f, a in zip(mflops, top1, strict=True) if f <= budget]
    return max(under) if under else None


# --------------------------------------------------------------------------- stage 2
@dataclass(frozen=True)
class Stage2:
    """What :func:`stage2` hands back to the run: the fixed subnets' measurements (the cache subset,
    their top-1 and MFLOPs in the order of the fixed set), the search's result, the predictor's
    cross-validation report, and the wall seconds of the two phases (summed over invocations)."""

    fixed: Any
    fixed_top1: list[float]
    fixed_mflops: list[float]
    result: Any
    report: dict[str, Any]
    measure_s: float
    search_s: float


def stage2(args: argparse.Namespace, run_dir: Path, space: SearchSpace, num_classes: int, archs: list[Arch],
           holdout: SubnetEvaluator, n_holdout: int, budgets: list[float], seed: int, clock: PhaseClock) -> Stage2:
    """Stage 2 of one run, on its hold-out evaluator: (a) measure the fixed subnets (cached in
    ``fixed_archs.jsonl``); (b) fit a predictor to them (the best of ``--predictor-kinds`` by
    cross-validation, :func:`~attentivenas.search.fit_with_settings`) and hand it to the library's
    stage-2 sequence (:func:`~attentivenas.search.run_stage2`, ``predicted+remeasure``): NSGA-II on
    its predictions, the best candidates and the budget winners re-measured, the search's files in
    ``search/``. Resumable through its caches (``search/measured.jsonl`` starts as a copy of the fixed
    subnets' measurements) and the evolution's ``search/search_state.npz``."""
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

    # (b) the library's stage-2 sequence on a predictor of those measurements: NSGA-II on its
    # predictions, the best candidates re-measured, the search's files (pareto.png and config.yaml too)
    clock.start("search")
    search_dir = run_dir / "search"
    fit = PredictorFitSettings(num_archs=len(archs), kinds=args.predictor_kinds, folds=args.folds,
                               feature_set="knobs+cost")
    predictor, report = fit_with_settings(fixed, fit, seed)
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
    result = run_stage2(search_cfg, search_dir, space, predictor=predictor,
                        evaluator=Counted(holdout, f"{n_holdout} hold-out images (search)"), num_classes=num_classes,
                        measured_path=measured_cache, state_path=search_dir / "search_state.npz", progress=False,
                        log=lambda m: log(f"      {m}"))
    search_s = clock.stop()
    return Stage2(fixed, fixed_top1, fixed_mflops, result, report, measure_s, search_s)


# --------------------------------------------------------------------------- one run
def run_dir_of(out: Path, method: str, seed: int) -> Path:
    """The folder of one (method, seed)."""
    return out / "runs" / f"{method}-s{seed}"


def run_one(args: argparse.Namespace, out: Path, method: str, seed: int, where: str, command: str) -> None:
    """Train, measure, search and test one (method, seed); skipped when its ``result.json`` exists.
    The run folder is locked for the whole run (a worker process of ``--jobs`` holds it alone)."""
    run_dir = run_dir_of(out, method, seed)
    result_path = run_dir / "result.json"
    if result_path.is_file():
        STATS["skipped"] += 1
        log(f"{where} {method} seed {seed}: already done ({result_path})")
        return
    with OutputLock(run_dir, "run folder"):
        if result_path.is_file():  # another process finished it meanwhile
            STATS["skipped"] += 1
            log(f"{where} {method} seed {seed}: already done ({result_path})")
            return
        _run_one(args, out, method, seed, where, command, run_dir, result_path)


def _run_one(args: argparse.Namespace, out: Path, method: str, seed: int, where: str, command: str, run_dir: Path,
             result_path: Path) -> None:
    """:func:`run_one` inside its run folder's lock."""
    load_start = load_average()
    device = resolve_device(args.device)
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
    net = trained.model.to(device).eval()
    space, num_classes = net.space, net.num_classes
    archs = fixed_archs(out, space, args.archs, num_classes)
    lo, hi = mflops_range(space, num_classes)
    budgets = [round(lo + f * (hi - lo), 4) for f in BUDGET_FRACTIONS]
    bundle = eval_data(cfg)
    skip = holdout_skip(args, cfg)
    holdout = evaluator(net, bundle, args, cfg, "holdout", args.eval_images, device, skip)
    n_holdout = len(holdout.val_loader.dataset)  # type: ignore[arg-type]

    st2 = stage2(args, run_dir, space, num_classes, archs, holdout, n_holdout, budgets, seed, clock)
    fixed, fixed_top1, fixed_mflops, result, report = st2.fixed, st2.fixed_top1, st2.fixed_mflops, st2.result, st2.report
    measure_s, search_s = st2.measure_s, st2.search_s
    best = report["kinds"][report["best"]]

    # the searched models, and the min and max subnets, on the test split
    clock.start("test")
    test = evaluator(net, bundle, args, cfg, "test", args.test_images, device)
    n_test = len(test.val_loader.dataset)  # type: ignore[arg-type]
    winners = [w for w in result.budget_winners if isinstance(w.get("arch"), dict)]
    to_test = [space.arch_from_dict(e["arch"]) for e in (*winners, *(result.pareto if args.test_front else ()))]
    to_test += [space.min_arch(), space.max_arch()]
    probes = probe_archs(out, space, archs, fixed_mflops, num_classes)
    to_test += [archs[i] for i in probes]
    test_m = MeasuredAccuracy(space, Counted(test, f"{n_test} test images"), run_dir / "test_measured.jsonl",
                              num_classes, log=lambda m: log(f"      {m}"))
    test_m.measure(to_test, what=f"on {n_test} test images (budget winners{', front' if args.test_front else ''}, "
                                 f"min, max, {len(probes)} probe subnets)")

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
        "holdout_first": skip,  # hold-out images before these are the online predictor's (holdout_skip)
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
        "probe": [{"name": f"p{k}", "mflops": fixed_mflops[i], "arch": archs[i].to_dict(),
                   "test_top1": test_top1(archs[i])} for k, i in enumerate(probes)],
        "timing": {"train_s": train_s, "measure_s": measure_s, "search_s": search_s, "test_s": test_s,
                   "total_s": train_s + measure_s + search_s + test_s},
        "threads": args.threads, "device": str(device), "device_name": device_name(device),
        "data_on_device": device.type == "cuda" if cfg.data.on_device == "auto" else bool(cfg.data.on_device),
        "load_average": {"start": load_start, "end": load_average()},
        "machine": machine(), "command": command, "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    atomic_write_json(result_path, res)
    STATS["finished"] += 1
    log(f"      done in {res['timing']['total_s']:.0f} s: hypervolume fixed {100 * res['fixed']['hypervolume']:.2f}, "
        f"searched {100 * res['search']['hypervolume']:.2f} (x100); min / max {res['fixed']['min_top1']:.2f} / "
        f"{res['fixed']['max_top1']:.2f}% hold-out -> {result_path}")

