"""The authors' AttentiveNAS training step against ours, side by side on the CPU, each in its own process.

(a) The authors' ``train_epoch`` (``train_attentive_nas.py`` of facebookresearch/AttentiveNAS, which
is CC-BY-NC: nothing of it is copied here, it is imported at run time from ``--authors DIR``) run on
a one-batch loader; (b) our sandwich step exactly as ``benchmarks/bench_step.py`` builds it (its
``build_step``). Both get the same random 224x224 images with 1000 classes and the same torch
threads; the authors' side runs in fp32 (their code has no AMP on CPU), ours with its device defaults
(channels-last and freed memory kept for reuse on CPU; ``--ours-overrides`` passes config overrides,
e.g. runtime.channels_last=false). Each side runs in a process of its own, so each has its own malloc
settings: the authors' process keeps glibc's defaults, as their code runs, unless
``--authors-reuse-freed-memory`` gives it ours (to show how much of the difference is the allocator).
Each timed round runs one step per side, alternating which goes first (the shared interleaved-rounds
timer of ``benchmarks/timing.py``), after one warm-up step each; the other side's process waits
meanwhile. The ratio is that of the sides' median GFLOP/s, and beside it the median of the per-round
ratios with its 95% bootstrap interval.

Get the authors' checkout and run (nothing is downloaded by the benchmark itself)::

    git clone https://github.com/facebookresearch/AttentiveNAS /tmp/authors_attentivenas
    python benchmarks/bench_vs_authors.py --authors /tmp/authors_attentivenas --batch 16 --rounds 5 --threads 2
    python benchmarks/bench_vs_authors.py --authors /tmp/authors_attentivenas --json \\
        --ours-overrides runtime.channels_last=false

How the authors' step is driven: their args come from their ``configs/train_attentive_nas_models.yml``
(loaded with their ``utils.config.setup``) with distributed off, ``gpu`` None, a huge ``print_freq``,
the asked batch, BestUp-3 (``bestup``, 3 trials), 4 subnets, in-place distillation with their
``KLLossSoft``, their label-smoothed CE (0.1), clip by value 1.0, their ``build_optimizer`` (SGD,
Nesterov, momentum 0.9) and no lr scheduler. ``torch.Tensor.cuda`` returns the tensor itself while
their step runs (restored afterwards), and their supernet sits in a small module whose ``.module`` is
the supernet (as their DDP wrapper gives it). Their arch sampler needs a FLOPs map file we do not
have; a stand-in draws the target FLOPs (25-MFLOPs bins) as the FLOPs of a uniform arch of OUR space
(the distribution of our step's empirical prior), and each candidate as the first uniform arch of our
space (``SearchSpace.sample_genes``, seeded) found in that bin, as our prior's candidates are. Its time
is inside the authors' timed step but small (vectorised FLOPs look-ups); their own sampler's is not.

Same space: their model is built from their yml's ``supernet_config``, which parses to our
``attentivenas`` space, and their ``compute_active_subnet_flops`` is checked against our cost model on
the max, min and a few random archs before timing (a mismatch stops the benchmark).

Resolution: their supernet's forward resizes its input (bicubic) to the active subnet's resolution,
so every subnet runs at its arch's resolution (192-288), as ours does. The resolution actually run is
read at their first conv's input and the FLOPs are counted at it.

``gflop`` per step, both sides by our cost model (the MFLOPs table behind ``StepResult.gflop``):
2 x multiply-adds x batch, x3 for a forward with gradients (forward + backward), x1 for a no-grad
forward (the scored candidates). For the authors' step every forward of their model is logged (the
active subnet from ``get_active_subnet_settings()``, whether grad is enabled, the resolution run).

``--json`` prints one object per timed step per side, then a summary object::

    {"side": "authors"|"ours", "round": ..., "step_s": ..., "gflop": ..., "gflop_per_s": ..., "batch": ...,
     "threads": ..., "channels_last": ..., "amp": ..., "forwards": ..., "trained_resolutions": [...]}

(the authors' rows also carry ``resolutions``, of every forward, scored candidates included).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import importlib.util
import json
import multiprocessing as mp
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from attentivenas.costs import TableCost, count_flops
from attentivenas.errors import SpaceError
from attentivenas.host_memory import in_effect, reuse_freed_memory
from attentivenas.space import Arch, SearchSpace, get_space
from timing import compare, interleaved_rounds, print_header

HERE = Path(__file__).resolve().parent

AUTHORS_CONFIG = Path("configs") / "train_attentive_nas_models.yml"
FLOPS_BIN = 25  # MFLOPs: their discretize_step in the recipe (and our prior's bin width)
CHUNK, MAX_CHUNKS = 1024, 64  # uniform archs drawn per try, tries before taking the nearest one
NUM_CLASSES = 1000


# ----------------------------------------------------------------------------- loading
def authors_dir_problem(root: Path) -> str | None:
    """Why ``root`` is not a usable checkout of the authors' repository (None: it is)."""
    if not root.is_dir():
        return f"--authors {root}: no such directory (a checkout of https://github.com/facebookresearch/AttentiveNAS)"
    missing = [n for n in ("train_attentive_nas.py", "models", str(AUTHORS_CONFIG)) if not (root / n).exists()]
    if missing:
        return f"--authors {root}: not an AttentiveNAS checkout (missing {', '.join(missing)})"
    return None


def load_build_step() -> Callable[..., tuple[Any, dict]]:
    """``build_step`` of ``benchmarks/bench_step.py`` (imported by path)."""
    spec = importlib.util.spec_from_file_location("bench_step", HERE / "bench_step.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.build_step


def import_authors(root: Path) -> SimpleNamespace:
    """The authors' modules the step needs, imported from their checkout."""
    sys.path.insert(0, str(root))  # foreign checkout: the authors' code imports its modules by their top-level names
    names = {"train": "train_attentive_nas", "factory": "models.model_factory", "loss_ops": "utils.loss_ops",
             "solver": "solver", "config": "utils.config"}
    mods: dict[str, ModuleType] = {k: importlib.import_module(v) for k, v in names.items()}
    for key, mod in mods.items():
        where = Path(getattr(mod, "__file__", "") or "").resolve()
        if root.resolve() not in where.parents:
            raise ImportError(f"{names[key]} was imported from {where}, not from {root}")
    return SimpleNamespace(**mods)


def authors_args(config_mod: ModuleType, root: Path, batch: int, seed: int) -> Any:
    """Their recipe's args (their yml, their loader), set for one CPU process."""
    args = config_mod.setup(str(root / AUTHORS_CONFIG))
    args.distributed = False
    args.multiprocessing_distributed = False
    args.gpu = None
    args.rank = 0
    args.world_size = 1
    args.print_freq = 10**12
    args.batch_size_per_gpu = batch
    args.batch_size = batch
    args.batch_size_total = batch
    args.seed = seed
    args.sampler.method = "bestup"
    args.sampler.num_trials = 3
    args.num_arch_training = 4
    args.sandwich_rule = True
    args.inplace_distill = True
    args.label_smoothing = 0.1
    args.grad_clip_value = 1.0
    args.optimizer.method = "sgd"
    args.optimizer.momentum = 0.9
    args.optimizer.nesterov = True
    args.lr_scheduler.base_lr = float(args.lr_scheduler.base_lr) * max(1, batch // 256)  # as their main_worker
    return args


# ----------------------------------------------------------------------------- the authors' side
@contextlib.contextmanager
def cuda_returns_self() -> Iterator[None]:
    """``torch.Tensor.cuda`` returns the tensor itself inside the block (restored afterwards)."""
    had_own = "cuda" in torch.Tensor.__dict__
    saved = torch.Tensor.__dict__.get("cuda")
    torch.Tensor.cuda = lambda self, *args, **kwargs: self  # type: ignore[method-assign]
    try:
        yield
    finally:
        if had_own:
            torch.Tensor.cuda = saved  # type: ignore[method-assign]
        else:
            del torch.Tensor.cuda


class ForwardLog:
    """Every forward of the authors' supernet: active settings, grad enabled, resolution run."""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self.forwards: list[dict[str, Any]] = []
        self._cache: dict[str, float] = {}

    def reset(self) -> None:
        """Forget the logged forwards (before each step)."""
        self.forwards = []

    def mflops(self, arch: Arch) -> float:
        """MFLOPs (multiply-adds / 1e6) of ``arch`` by our cost model (any resolution it ran at)."""
        key = arch.key()
        if key not in self._cache:
            self._cache[key] = count_flops(self.space, arch, NUM_CLASSES)
        return self._cache[key]

    def arch_run(self, fwd: dict[str, Any]) -> Arch:
        """The active arch of a forward, at the resolution its first conv actually saw."""
        arch = Arch.from_dict(fwd["settings"])
        ran = fwd.get("ran")
        return arch if ran is None or ran == arch.resolution else dataclasses.replace(arch, resolution=int(ran))

    def gflop(self, batch: int) -> float:
        """Our ``StepResult.gflop`` convention: 2 x MACs x batch, x3 with gradients, x1 without."""
        mf = sum((3.0 if f["grad"] else 1.0) * self.mflops(self.arch_run(f)) for f in self.forwards)
        return 2.0 * batch * mf / 1e3

    def resolutions(self, grad_only: bool = False) -> list[int]:
        """The resolution every logged forward (or every one with gradients) ran at."""
        return [int(f["ran"]) for f in self.forwards if f.get("ran") is not None and (f["grad"] or not grad_only)]

    def mismatched(self) -> int:
        """Forwards whose run resolution differs from the active subnet's."""
        return sum(1 for f in self.forwards if f.get("ran") not in (None, f["settings"]["resolution"]))


class ModuleStandIn(nn.Module):
    """Stands in for their DDP wrapper (``model.module`` is the supernet); logs every forward."""

    def __init__(self, net: nn.Module, log: ForwardLog) -> None:
        super().__init__()
        self.module = net
        self.log = log
        net.first_conv.register_forward_pre_hook(self._saw_input)

    def _saw_input(self, _mod: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        if self.log.forwards:
            self.log.forwards[-1]["ran"] = int(inputs[0].shape[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.log.forwards.append({"settings": self.module.get_active_subnet_settings(),
                                  "grad": torch.is_grad_enabled()})
        return self.module(x)


class OurSpaceFlopsSampler:
    """What their ``train_epoch`` asks of their ``ArchSampler``, drawn from our space (seeded):
    target FLOPs = the binned FLOPs of a uniform arch; each candidate = the first uniform arch found
    in the target's bin (after ``MAX_CHUNKS`` draws of ``CHUNK``: the nearest one drawn)."""

    def __init__(self, space: SearchSpace, seed: int) -> None:
        self.space = space
        self.rng = np.random.default_rng(seed)
        self.cost = TableCost(space, "flops", NUM_CLASSES)

    @staticmethod
    def _bin(mflops: np.ndarray) -> np.ndarray:
        return (np.round(mflops / FLOPS_BIN) * FLOPS_BIN).astype(np.int64)

    def sample_one_target_flops(self, flops_uniform: bool = False) -> int:
        """A target (binned MFLOPs): the binned FLOPs of one uniform arch of our space."""
        genes = self.space.sample_genes(self.rng, 1)
        return int(self._bin(self.cost(genes))[0])

    def sample_archs_according_to_flops(self, target_flops: int, n_samples: int = 1, **_: Any) -> list[dict]:
        """``n_samples`` arch dicts (their ``set_active_subnet`` keywords, plus ``flops``) at the target."""
        archs = []
        for _i in range(n_samples):
            best: tuple[float, np.ndarray, float] | None = None  # (distance to target, genes, MFLOPs)
            for _chunk in range(MAX_CHUNKS):
                genes = self.space.sample_genes(self.rng, CHUNK)
                mflops = self.cost(genes)
                hits = np.flatnonzero(self._bin(mflops) == int(target_flops))
                j = int(hits[0]) if len(hits) else int(np.argmin(np.abs(mflops - float(target_flops))))
                dist = 0.0 if len(hits) else float(abs(mflops[j] - float(target_flops)))
                if best is None or dist < best[0]:
                    best = (dist, genes[j], float(mflops[j]))
                if len(hits):
                    break
            assert best is not None
            arch = self.space.decode(best[1]).to_dict()  # their set_active_subnet(**arch) keywords
            arch["flops"] = best[2]  # as their sampler returns it (absorbed by **kwargs)
            archs.append(arch)
        return archs


def check_same_space(net: nn.Module, supernet_config: Any, space: SearchSpace, seed: int, n_random: int = 4) -> list[str]:
    """Problems (none: same space): their ``supernet_config`` parses to ours, and their
    ``compute_active_subnet_flops`` equals our cost model on the max, min and random archs."""
    problems = []
    try:
        theirs = SearchSpace.from_supernet_config(dict(supernet_config), name="authors")
        if not theirs.same_as(space):
            problems.append(f"their supernet_config is not our {space.name!r} space")
    except SpaceError as exc:
        problems.append(f"their supernet_config does not parse: {exc}")
    rng = np.random.default_rng(seed)
    archs = [space.max_arch(), space.min_arch(), *(space.sample(rng) for _ in range(n_random))]
    for arch in archs:
        net.set_active_subnet(**arch.to_dict())
        theirs_mf = float(net.compute_active_subnet_flops())
        ours_mf = count_flops(space, arch, NUM_CLASSES)
        if abs(theirs_mf - ours_mf) > 1e-6 * max(1.0, ours_mf):
            problems.append(f"MFLOPs differ for {arch.key()}: theirs {theirs_mf:.3f}, ours {ours_mf:.3f}")
    return problems


# ----------------------------------------------------------------------------- main
def summarize(rows: list[dict]) -> dict[str, float]:
    """Seconds per step (min/median/max), median GFLOP and median GFLOP/s of one side's rows."""
    secs = [r["step_s"] for r in rows]
    rates = [r["gflop_per_s"] for r in rows]
    return {"step_s_min": min(secs), "step_s_median": statistics.median(secs), "step_s_max": max(secs),
            "gflop_median": statistics.median(r["gflop"] for r in rows),
            "gflop_per_s_median": statistics.median(rates)}


class SideProblem(Exception):
    """Why a side cannot be timed, with the benchmark's exit code (2: a bad ``--authors``)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _authors_side(args: argparse.Namespace) -> Callable[[int], dict[str, Any]]:
    """The authors' step as a function of the round, once their space is checked to be ours."""
    space = get_space("attentivenas")
    if args.authors_reuse_freed_memory:
        reuse_freed_memory(True, "cpu", "--authors-reuse-freed-memory")
    try:
        authors = import_authors(args.authors)
    except ImportError as exc:
        raise SideProblem(f"--authors {args.authors}: cannot import the authors' code: {exc}", 2) from None
    targs = authors_args(authors.config, args.authors, args.batch, args.seed)
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    net = authors.factory.create_model(targs)
    problems = check_same_space(net, targs.supernet_config, space, args.seed)
    if problems:
        raise SideProblem("the authors' supernet is not our space: " + "; ".join(problems), 1)
    log = ForwardLog(space)
    model = ModuleStandIn(net, log)
    optimizer = authors.solver.build_optimizer(targs, model)
    criterion = authors.loss_ops.CrossEntropyLossSmooth(targs.label_smoothing)
    soft_criterion = authors.loss_ops.KLLossSoft()
    arch_sampler = OurSpaceFlopsSampler(space, args.seed)
    images, labels = _batch(args)
    loader = [(images, labels)]

    def run(rnd: int) -> dict[str, Any]:
        log.reset()
        t0 = time.perf_counter()
        with cuda_returns_self():
            authors.train.train_epoch(0, model, loader, optimizer, criterion, targs, arch_sampler=arch_sampler,
                                      soft_criterion=soft_criterion, lr_scheduler=None)
        secs = time.perf_counter() - t0
        gflop = log.gflop(args.batch)
        return {"side": "authors", "round": rnd, "step_s": secs, "gflop": gflop, "gflop_per_s": gflop / secs,
                "batch": args.batch, "threads": torch.get_num_threads(), "channels_last": False, "amp": "none",
                "reuse_freed_memory": in_effect(), "forwards": len(log.forwards), "resolutions": log.resolutions(),
                "trained_resolutions": log.resolutions(grad_only=True), "resolution_mismatches": log.mismatched()}

    return run


def _our_side(args: argparse.Namespace) -> Callable[[int], dict[str, Any]]:
    """Our step, exactly as bench_step.py builds it, as a function of the round."""
    step, info = load_build_step()(args.batch, args.seed, list(args.ours_overrides), torch.device("cpu"))
    images, labels = _batch(args)
    scored = step.num_middle * getattr(step.sampler, "k", 1)  # candidates scored per step

    def run(rnd: int) -> dict[str, Any]:
        t0 = time.perf_counter()
        r = step(images, labels)
        secs = time.perf_counter() - t0
        gflop = r.gflop(args.batch)
        return {"side": "ours", "round": rnd, "step_s": secs, "gflop": gflop, "gflop_per_s": gflop / secs,
                "batch": args.batch, "threads": torch.get_num_threads(), "channels_last": info["channels_last"],
                "amp": info["amp"], "reuse_freed_memory": info["reuse_freed_memory"],
                "forwards": len(r.archs) + (scored if r.scored_mflops else 0),
                "trained_resolutions": [int(a.resolution) for a in r.archs]}

    return run


def _batch(args: argparse.Namespace) -> tuple[torch.Tensor, torch.Tensor]:
    """The same random images and labels on both sides."""
    gen = torch.Generator().manual_seed(args.seed)
    images = torch.randn(args.batch, 3, 224, 224, generator=gen)
    return images, torch.randint(0, NUM_CLASSES, (args.batch,), generator=gen)


def _side_process(side: str, args: argparse.Namespace, conn: Connection) -> None:
    """One side in its own process: build, warm up, then one step per round number received (None
    ends it); sends back a row per step, or ``{"problem": ..., "exit_code": ...}``."""
    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    try:
        run = (_authors_side if side == "authors" else _our_side)(args)
    except SideProblem as exc:
        conn.send({"problem": str(exc), "exit_code": exc.exit_code})
        return
    run(-1)  # warm-up
    conn.send({"ready": side})
    while (rnd := conn.recv()) is not None:
        conn.send(run(rnd))


def timed_rounds(conns: dict[str, Connection], rounds: int, rows: list[dict[str, Any]],
                 print_rows: bool = False) -> dict[str, list[dict[str, Any]]]:
    """The shared timer's rounds over the side processes: one step per side a round, the side that
    goes first alternating (authors first in even rounds). Each side is sent its round number and
    answers with the row of its step; every row is appended to ``rows`` as it comes (and printed as
    JSON with ``print_rows``). Returns each side's rows in round order."""

    def step(side: str) -> Callable[[], dict[str, Any]]:
        def run() -> dict[str, Any]:
            conns[side].send(sum(1 for r in rows if r["side"] == side))  # its round: the steps it has timed
            row = conns[side].recv()
            rows.append(row)
            if print_rows:
                print(json.dumps(row), flush=True)
            return row

        return run

    return interleaved_rounds({side: step(side) for side in ("authors", "ours")}, rounds)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--authors", type=Path, required=True, help="a checkout of facebookresearch/AttentiveNAS")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=5, help="timed rounds (after one warm-up step per side)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--ours-overrides", nargs="*", default=[], metavar="KEY=VALUE",
                    help="config overrides for our step, e.g. runtime.channels_last=false")
    ap.add_argument("--authors-reuse-freed-memory", action="store_true",
                    help="give the authors' process our allocator setting too (runtime.reuse_freed_memory)")
    args = ap.parse_args(argv)
    problem = authors_dir_problem(args.authors)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    if args.batch < 2:
        print("--batch must be at least 2 (their forward squeezes the pooled features)", file=sys.stderr)
        return 2

    ctx = mp.get_context("spawn")
    conns: dict[str, Connection] = {}
    procs = []
    for side in ("authors", "ours"):  # built one after the other: only one side computes at a time
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_side_process, args=(side, args, child), daemon=True)
        proc.start()
        try:
            first = parent.recv()
        except EOFError:
            print(f"the {side} side's process ended before it was ready (its error is above)", file=sys.stderr)
            return 1
        if "problem" in first:
            print(first["problem"], file=sys.stderr)
            return first["exit_code"]
        conns[side] = parent
        procs.append(proc)
    rows: list[dict[str, Any]] = []
    try:
        by_side = timed_rounds(conns, args.rounds, rows, args.json)
    finally:
        for conn in conns.values():
            with contextlib.suppress(OSError):
                conn.send(None)
        for proc in procs:
            proc.join(timeout=60)

    threads = args.threads
    per_round = compare(*([r["gflop_per_s"] for r in by_side[side]] for side in ("ours", "authors")))
    per_side = {side: summarize(side_rows) for side, side_rows in by_side.items()}
    ratio = per_side["ours"]["gflop_per_s_median"] / per_side["authors"]["gflop_per_s_median"]
    seen = sorted({res for r in rows if r["side"] == "authors" for res in r["resolutions"]})
    mismatches = sum(r.get("resolution_mismatches", 0) for r in rows)
    res_note = ("authors' subnets run at their arch's resolution (their forward resizes bicubic to "
                f"active_resolution); resolutions run: {seen}; FLOPs counted at the resolution run"
                + (f" ({mismatches} forwards ran at another resolution than their arch's)" if mismatches else ""))
    ours_row = next(r for r in rows if r["side"] == "ours")
    ours_info = {k: ours_row[k] for k in ("amp", "channels_last", "reuse_freed_memory")}
    authors_reuse = next(r for r in rows if r["side"] == "authors")["reuse_freed_memory"]
    if args.json:
        print(json.dumps({"summary": True, "batch": args.batch, "threads": threads, "rounds": args.rounds,
                          "authors": per_side["authors"], "ours": per_side["ours"],
                          "ratio_gflop_per_s_ours_over_authors": ratio,
                          "ratio_per_round": {"median": per_round.median, "ci95": [per_round.low, per_round.high],
                                              "ratios": list(per_round.ratios)},
                          "ours_info": ours_info,
                          "authors_reuse_freed_memory": authors_reuse,
                          "space_check": "same space (supernet_config and FLOPs of 6 archs agree)",
                          "resolution_note": res_note}))
        return 0
    print_header()
    print(f"batch {args.batch} threads {threads} rounds {args.rounds}; space check: their supernet_config == "
          "our 'attentivenas', FLOPs agree on 6 archs")
    print(res_note)
    for side, label in (("authors", f"authors fp32 contiguous reuse_freed_memory {authors_reuse}"),
                        ("ours", " ".join(f"{k} {v}" for k, v in ours_info.items()))):
        s = per_side[side]
        print(f"{label}: step s min/median/max {s['step_s_min']:.2f}/{s['step_s_median']:.2f}/"
              f"{s['step_s_max']:.2f}, GFLOP/step median {s['gflop_median']:.1f}, "
              f"GFLOP/s median {s['gflop_per_s_median']:.1f}")
    print(f"ratio ours/authors of median GFLOP/s: {ratio:.2f}; per round: median {per_round.median:.2f}, "
          f"95% interval {per_round.low:.2f}-{per_round.high:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
