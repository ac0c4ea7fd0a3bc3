"""The one timer of every A-against-B benchmark: sides timed in interleaved rounds on a noisy machine.

A round runs every side once. Round ``r`` starts ``r`` sides further along (:func:`rotation`), so
no side always runs first and the slow drift of a shared machine falls on all sides alike. A side
is a function that runs once and returns its measure (seconds, a row of figures...;
:func:`timed` makes one from a plain function and a clock). Two sides are compared per round
(:func:`ratios`: side A's measure over side B's in the same round), and the figure is the median
of those per-round ratios with a seeded bootstrap interval of that median (:func:`median_interval`,
:func:`compare`). :func:`header` is the machine and load line a benchmark prints once, before its
table (never in its JSON output).

Imported by the scripts of ``benchmarks/`` (``sys.path`` holds the script's folder when it runs).
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from attentivenas.devices import device_name

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)
BOOTSTRAP_RESAMPLES = 2000
LEVEL = 0.95


# --------------------------------------------------------------------------- rounds
def rotation(names: Sequence[K], round_index: int) -> list[K]:
    """The order of round ``round_index``: ``names`` started ``round_index`` places further along."""
    k = round_index % len(names) if names else 0
    return list(names[k:]) + list(names[:k])


def timed(fn: Callable[[], object], clock: Callable[[], float] = time.perf_counter) -> Callable[[], float]:
    """``fn`` as a side: runs it once and returns the seconds it took by ``clock``."""

    def side() -> float:
        t0 = clock()
        fn()
        return clock() - t0

    return side


def interleaved_rounds(sides: Mapping[K, Callable[[], T]], rounds: int, warmup: int = 0) -> dict[K, list[T]]:
    """Each side's measure per round, in round order. ``warmup`` untimed rounds (rotating too) come
    first; then round ``r`` runs every side once in the order :func:`rotation` (names, r)."""
    if rounds < 1 or warmup < 0:
        raise ValueError(f"rounds must be >= 1 and warmup >= 0, got {rounds} and {warmup}")
    names = list(sides)
    for w in range(warmup):
        for name in rotation(names, w):
            sides[name]()
    out: dict[K, list[T]] = {name: [] for name in names}
    for r in range(rounds):
        for name in rotation(names, r):
            out[name].append(sides[name]())
    return out


def ratios(a: Sequence[float], b: Sequence[float]) -> list[float]:
    """Per round, ``a``'s measure over ``b``'s (paired by round)."""
    return [float(x) / float(y) for x, y in zip(a, b, strict=True)]


# --------------------------------------------------------------------------- figures
@dataclass(frozen=True)
class Interval:
    """The median of some values and a bootstrap interval of that median (``level``: its coverage)."""

    median: float
    low: float
    high: float
    level: float = LEVEL


def median_interval(values: Sequence[float], seed: int = 0, resamples: int = BOOTSTRAP_RESAMPLES,
                    level: float = LEVEL) -> Interval:
    """The median of ``values`` and its bootstrap interval: ``resamples`` resamples with replacement
    (``numpy`` generator seeded with ``seed``), the central ``level`` of their medians."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        raise ValueError("median_interval of no values")
    rng = np.random.default_rng(seed)
    resampled = np.median(rng.choice(v, (resamples, len(v))), axis=1)
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(resampled, [tail, 100 - tail])
    return Interval(float(np.median(v)), float(low), float(high), level)


@dataclass(frozen=True)
class Comparison:
    """Side A against side B over the rounds: the per-round ratios A / B, their median with its
    bootstrap interval (``low``-``high``), and their range (``smallest``-``largest``)."""

    ratios: tuple[float, ...]
    median: float
    low: float
    high: float
    smallest: float
    largest: float

    def as_dict(self, prefix: str = "") -> dict[str, Any]:
        """The figures as JSON fields (``prefix`` before each name), the ratios as a list."""
        return {f"{prefix}ratios": list(self.ratios), f"{prefix}median": self.median, f"{prefix}low": self.low,
                f"{prefix}high": self.high, f"{prefix}smallest": self.smallest, f"{prefix}largest": self.largest}

    def text(self, digits: int = 3) -> str:
        """``median (low-high)``: the median ratio and its interval."""
        return f"{self.median:.{digits}f} ({self.low:.{digits}f}-{self.high:.{digits}f})"


def compare(a: Sequence[float], b: Sequence[float], seed: int = 0) -> Comparison:
    """:class:`Comparison` of the measures ``a`` against ``b`` (one each per round)."""
    r = ratios(a, b)
    iv = median_interval(r, seed)
    return Comparison(tuple(r), iv.median, iv.low, iv.high, min(r), max(r))


# --------------------------------------------------------------------------- machine and load
def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; else what ``platform`` knows)."""
    return device_name("cpu")


def machine() -> dict[str, Any]:
    """The CPU, cores, OS, Python and torch of this process."""
    import torch  # heavy: imported when asked

    return {"cpu": cpu_model(), "cores": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "torch": torch.__version__}


def load_average() -> list[float] | None:
    """The 1, 5 and 15-minute load averages (rounded to 0.01), or None where the OS has none."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def header(info: Mapping[str, Any] | None = None, load: Sequence[float] | None = None) -> str:
    """The machine and load line: CPU model, cores, torch version, load averages (1, 5, 15 min)."""
    m = machine() if info is None else info
    la = load_average() if load is None else list(load)
    shown = " / ".join(f"{x:.2f}" for x in la) if la else "unknown"
    return f"machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']}; load average (1, 5, 15 min) {shown}"


def print_header() -> None:
    """Print :func:`header` (a benchmark calls it once, before its table)."""
    print(header(), flush=True)
