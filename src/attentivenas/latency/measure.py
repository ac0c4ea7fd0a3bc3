"""Measured latency: one model timed on a device in a runtime (warm-up runs, then the median and
spread of timed repeats; runtime, batch, threads and device are part of the result), and whole
subnets of a space measured in round-robin passes (all exported and loaded first, then timed)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..config.latency import MAX_BATCH
from ..costs import peak_activation_bytes, weight_bytes
from ..devices import resolve_device
from ..errors import UserError
from ..nn import Supernet
from ..progress import progress_bar, tqdm_bar
from ..runtimes.records import runtime as get_runtime
from ..runtimes.runners import Runner, prepare
from ..space import Arch, SearchSpace
from .drift import DriftReference, drift_corrected
from .partial import PassStore


@dataclass(frozen=True)
class LatencyResult:
    """Latency of one model: median and 90th percentile in milliseconds, and the setting."""

    median_ms: float
    p90_ms: float
    batch: int
    threads: int
    device: str
    repeats: int = 0
    clock: str = "wall"
    runtime: str = "torch"
    precision: str = "fp32"

    def to_dict(self) -> dict[str, Any]:
        return {
            "runtime": self.runtime,
            "precision": self.precision,
            "clock": self.clock,
            "median_ms": self.median_ms,
            "p90_ms": self.p90_ms,
            "batch": self.batch,
            "threads": self.threads,
            "device": self.device,
            "repeats": self.repeats,
        }


def time_runner(runner: Runner, warmup: int = 10, repeats: int = 50, rounds: int = 1,
                clock: str = "wall") -> np.ndarray:
    """Times (ms) of ``repeats`` timed runs of ``runner`` after ``warmup`` untimed ones; with
    ``rounds > 1`` the round with the lowest median."""
    timer = time.thread_time if clock == "cpu" else time.perf_counter
    best: np.ndarray | None = None
    with runner.session():
        for _ in range(warmup):
            runner.run()
        runner.sync()
        for _ in range(rounds):
            times = np.empty(repeats)
            for i in range(repeats):
                runner.sync()
                t0 = timer()
                runner.run()
                runner.sync()
                times[i] = (timer() - t0) * 1e3
            if best is None or np.median(times) < np.median(best):
                best = times
    return np.asarray(best)


def check_timing(warmup: int, repeats: int, rounds: int, clock: str, runtime: str,
                 dev: torch.device, threads: int | None) -> None:
    """User errors for timing settings that cannot be measured."""
    if clock not in ("wall", "cpu"):
        raise UserError(f"unknown clock {clock!r}; use wall or cpu")
    if repeats < 1 or rounds < 1:
        raise UserError(f"repeats and rounds must be >= 1, got {repeats} and {rounds}")
    if warmup < 0:
        raise UserError(f"warmup must be >= 0, got {warmup}")
    if threads is not None and threads < 1:
        raise UserError(f"threads must be >= 1, got {threads}")
    if clock == "cpu" and (dev.type != "cpu" or threads != 1):
        raise UserError("clock 'cpu' measures one thread on the CPU: use it with device cpu and threads 1")
    if clock == "cpu" and not get_runtime(runtime).cpu_clock:
        raise UserError(f"clock 'cpu' is not available for runtime {runtime!r} (it runs on its own threads); "
                        "use clock wall")


#: the memory a measurement may take (weights + ACTIVATION_COPIES x the subnet's peak activations at its
#: batch): a third of a 24 GB machine, leaving room for the export's and the runtime's own copies
MEASURE_MEMORY_BYTES = 8 * 10**9
ACTIVATION_COPIES = 3


def max_batch(space: SearchSpace, arch: Arch, num_classes: int = 1000) -> int:
    """The largest batch (at most :data:`~attentivenas.config.latency.MAX_BATCH`) at which ``arch``'s
    weights and :data:`ACTIVATION_COPIES` copies of its peak activations fit in :data:`MEASURE_MEMORY_BYTES`."""
    weights = weight_bytes(space, arch, torch.float32, num_classes)
    per_image = ACTIVATION_COPIES * peak_activation_bytes(space, arch, 1, torch.float32, num_classes)
    return int(max(1, min(MAX_BATCH, (MEASURE_MEMORY_BYTES - weights) // max(per_image, 1))))


def check_batch(space: SearchSpace, arch: Arch, batch: int, num_classes: int = 1000, flag: str = "--batch") -> None:
    """Refuse (one line naming ``flag`` and the allowed range) a batch ``arch`` cannot be measured at here."""
    top = max_batch(space, arch, num_classes)
    if not 1 <= batch <= top:
        raise UserError(f"{flag} {batch} is out of range: use 1..{top} (the subnet at resolution {arch.resolution} "
                        f"must fit in {MEASURE_MEMORY_BYTES / 1e9:.0f} GB with its activations)")


def result_of(times: np.ndarray, runner: Runner, batch: int, clock: str, repeats: int,
              precision: str = "fp32") -> LatencyResult:
    """The :class:`LatencyResult` of timed runs (``times``: the kept round; ``repeats``: all runs)."""
    return LatencyResult(
        median_ms=float(np.median(times)),
        p90_ms=float(np.percentile(times, 90)),
        batch=int(batch),
        threads=runner.threads,
        device=runner.device,
        repeats=int(repeats),
        clock=clock,
        runtime=runner.runtime,
        precision=precision,
    )


def measure_latency(
    model: nn.Module,
    input_shape: Sequence[int],
    device: str | torch.device | None = "cpu",
    warmup: int = 10,
    repeats: int = 50,
    threads: int | None = None,
    seed: int = 0,
    rounds: int = 1,
    clock: str = "wall",
    runtime: str = "torch",
    precision: str = "fp32",
) -> LatencyResult:
    """Time ``model`` on a random input of ``input_shape`` (batch first) as ``runtime`` runs it.

    ``runtime``: ``torch`` (eager, on ``device``, under ``torch.inference_mode``), ``onnxruntime``,
    ``executorch`` (XNNPACK) or ``openvino`` (see :mod:`attentivenas.runtimes.runners`: exported at
    this input shape and loaded in the runtime first). Runs ``warmup`` untimed forwards, then
    ``repeats`` timed ones (CUDA synchronised before and after each); the result is their median (and
    90th percentile). With ``rounds > 1`` this is done ``rounds`` times and the round with the lowest
    median is kept (robust to other processes sharing the CPU). ``threads`` sets the runtime's CPU
    threads for the measurement (PyTorch's are restored afterwards); the result states the value used.

    ``clock="wall"`` times wall-clock latency (the default, what a user waits). ``clock="cpu"``
    times the CPU time of the calling thread instead: on a CPU shared with other processes it
    does not count the time the process waits for a core, so it estimates the latency of an idle
    machine. It needs ``threads=1`` on the CPU (other threads would not be counted).

    ``precision="int8"``: the model post-training quantized for ``runtime`` (ExecuTorch, ONNX
    Runtime or OpenVINO; calibrated on seeded random inputs, see :mod:`.runtimes`).
    """
    dev = resolve_device(device)
    check_timing(warmup, repeats, rounds, clock, runtime, dev, threads)
    was_training = model.training
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(*input_shape, generator=gen)
    try:
        runner = prepare(model, x, runtime, dev, threads, precision)
        times = time_runner(runner, warmup, repeats, rounds, clock)
    finally:
        model.train(was_training)
    return result_of(times, runner, int(input_shape[0]), clock, repeats * rounds, precision)


def random_subnet(space: SearchSpace, arch: Arch, num_classes: int = 1000, seed: int = 0,
                  supernet: nn.Module | None = None) -> nn.Module:
    """A static subnet of ``arch`` with seeded random weights (latency does not depend on weights)."""
    if supernet is None:
        torch.manual_seed(seed)
        supernet = Supernet(space, num_classes=num_classes)
    return supernet.extract(arch).eval()


def measure_arch(space: SearchSpace, arch: Arch, device: str | torch.device = "cpu", batch: int = 1,
                 threads: int | None = None, warmup: int = 10, repeats: int = 50, num_classes: int = 1000,
                 supernet: nn.Module | None = None, seed: int = 0, rounds: int = 1,
                 clock: str = "wall", runtime: str = "torch", precision: str = "fp32") -> LatencyResult:
    """Measured latency of the static subnet ``arch`` at its resolution in ``runtime`` and ``precision``."""
    model = random_subnet(space, arch, num_classes, seed, supernet)
    return measure_latency(model, (batch, 3, arch.resolution, arch.resolution), device, warmup, repeats, threads,
                           seed, rounds, clock, runtime, precision)


def arch_runners(space: SearchSpace, archs: Sequence[Arch], device: torch.device, batch: int = 1,
                 threads: int | None = 1, num_classes: int = 1000, supernet: nn.Module | None = None, seed: int = 0,
                 progress: bool = False, runtime: str = "torch", precision: str = "fp32") -> list[Runner]:
    """Every arch's static subnet (seeded random weights) exported and loaded in ``runtime`` (in
    ``precision``), bound to a seeded random input of its resolution (:func:`arch_inputs`)."""
    if supernet is None:
        supernet = seeded_supernet(space, num_classes, seed)
    pairs = list(zip(archs, arch_inputs(archs, batch, seed), strict=True))
    return [prepare(random_subnet(space, a, num_classes, seed, supernet), x, runtime, device, threads, precision)
            for a, x in progress_bar(pairs, f"load subnets ({runtime})", progress and not get_runtime(runtime).eager)]


def seeded_supernet(space: SearchSpace, num_classes: int, seed: int) -> Supernet:
    """The supernet whose random weights the measured subnets take (the same in any process)."""
    torch.manual_seed(seed)
    return Supernet(space, num_classes=num_classes)


def arch_inputs(archs: Sequence[Arch], batch: int, seed: int) -> list[torch.Tensor]:
    """The seeded random inputs whole subnets of ``archs`` are timed on, one per arch in order."""
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, 3, a.resolution, a.resolution, generator=gen) for a in archs]


def time_in_passes(runners: Sequence[Runner | None], warmup: int, repeats: int | Sequence[int], passes: int = 1,
                   clock: str = "wall", seed: int = 0, progress: bool = False, label: str = "latency",
                   reference: DriftReference | None = None, keys: Sequence[str] | None = None,
                   store: PassStore | None = None) -> list[float]:
    """Each runner's time (ms) over ``passes`` passes; a pass times every runner (``warmup`` untimed
    runs, then the median of ``repeats`` timed ones, an int or one per runner) in a seeded random order.

    Timing ops and whole subnets mixed in the same passes spreads the machine's drift (other
    processes, clock changes) over both alike instead of biasing the ones timed last. Without a
    ``reference``, transient load only ever adds time, so the lowest median is kept. With one
    (:func:`drift_reference`), the reference is timed at the start and end of each pass and every
    :attr:`~.drift.DriftReference.every_s` in between, each median is rescaled to the reference's
    typical speed (:mod:`.drift`), and the median over the passes is kept.

    ``store`` (:class:`~.partial.PassStore`, with one key per runner in ``keys``): each time is
    recorded there as soon as it is known (with the reference points either side of it), and what
    it already holds is not timed again (its runner may be ``None``): an interrupted build resumes."""
    if passes < 1:
        raise UserError(f"passes must be >= 1, got {passes}")
    reps = [repeats] * len(runners) if isinstance(repeats, int) else list(repeats)
    if len(reps) != len(runners):
        raise ValueError("one repeat count per runner")
    names = list(keys) if keys is not None else [str(i) for i in range(len(runners))]
    store = store if store is not None else PassStore(None, "", passes)
    if len(names) != len(runners) or store.passes != passes:
        raise ValueError("one key per runner and a store of as many passes")
    rng = np.random.default_rng(seed)
    orders = [rng.permutation(len(runners)).tolist() for _ in range(passes)]  # as without a store: seeded
    todo = sum(not store.has(p, names[i]) for p in range(passes) for i in range(len(runners)))
    bar = tqdm_bar(todo, label, progress)
    try:
        for p in range(passes):
            _time_pass(runners, names, orders[p], p, reps, warmup, clock, reference, store, bar)
    finally:  # interrupted (Ctrl-C, an error): what was timed is kept for the next build
        store.save(force=True)
        bar.close()
    if not runners:
        return []
    raw = np.array([[store.done[p][k][0] for k in names] for p in range(passes)])
    if reference is None:
        return [float(v) for v in raw.min(axis=0)]
    local = np.array([[store.done[p][k][1] for k in names] for p in range(passes)])
    return drift_corrected(raw, local, float(np.median(store.points)))


def _time_pass(runners: Sequence[Runner | None], names: Sequence[str], order: Sequence[int], p: int,
               reps: Sequence[int], warmup: int, clock: str, reference: DriftReference | None, store: PassStore,
               bar: Any) -> None:
    """Pass ``p`` of :func:`time_in_passes`: every runner not in ``store`` timed in ``order`` (and the
    reference between them), each recorded in ``store`` once the reference point after it is timed."""
    pending: list[tuple[str, float]] = []  # timed, waiting for the reference point after them
    before: float | None = None
    try:
        for i in order:
            if store.has(p, names[i]):
                continue
            if reference is not None and (before is None or reference.due()):
                before = _settle(reference, store, p, pending, before)
            raw = float(np.median(time_runner(_loaded(runners[i], names[i]), warmup, reps[i], 1, clock)))
            if reference is None:
                store.record(p, names[i], raw)
            else:
                pending.append((names[i], raw))
            bar.update(1)
    except BaseException:  # interrupted: the items since the last point are kept with that point alone
        for key, raw in pending if before is not None else []:
            store.record(p, key, raw, before)
        raise
    if reference is not None and pending:
        _settle(reference, store, p, pending, before)
    store.save(force=True)


def _settle(reference: DriftReference, store: PassStore, p: int, pending: list[tuple[str, float]],
            before: float | None) -> float:
    """Time a reference point; the ``pending`` items of pass ``p`` (timed since the point ``before``)
    are recorded with the mean of the points either side of them (:func:`.drift.local_reference`)."""
    after = reference.point()
    store.point(after)
    for key, raw in pending:
        store.record(p, key, raw, (after if before is None else (before + after) / 2.0))
    pending.clear()
    return after


def _loaded(runner: Runner | None, key: str) -> Runner:
    if runner is None:
        raise ValueError(f"item {key!r} is not in the store and has no runner")
    return runner


def drift_reference(runner: Runner, clock: str = "wall") -> DriftReference:
    """``runner`` as the drift reference of :func:`time_in_passes`, timed with ``clock``."""
    return DriftReference(runner, lambda r, warmup, repeats: time_runner(r, warmup, repeats, 1, clock))


def measure_archs(space: SearchSpace, archs: Sequence[Arch], device: str | torch.device = "cpu", batch: int = 1,
                  threads: int | None = 1, warmup: int = 5, repeats: int = 20, passes: int = 1,
                  num_classes: int = 1000, supernet: nn.Module | None = None, seed: int = 0,
                  progress: bool = False, clock: str = "wall", runtime: str = "torch",
                  drift_correction: bool = True, precision: str = "fp32") -> list[float]:
    """Measured latency (ms) of many archs in ``runtime`` and ``precision``: every subnet is exported and loaded first,
    then timed in ``passes`` passes (:func:`time_in_passes`; with ``drift_correction``, the space's
    min subnet is the drift reference, as in a latency table)."""
    if passes < 1:
        raise UserError(f"passes must be >= 1, got {passes}")
    dev = resolve_device(device)
    check_timing(warmup, repeats, 1, clock, runtime, dev, threads)
    chosen = [*archs, *([space.min_arch()] if drift_correction else [])]
    runners = arch_runners(space, chosen, dev, batch, threads, num_classes, supernet, seed, progress, runtime,
                           precision)
    reference = drift_reference(runners.pop(), clock) if drift_correction else None
    return time_in_passes(runners, warmup, repeats, passes, clock, seed, progress, "archs", reference)
