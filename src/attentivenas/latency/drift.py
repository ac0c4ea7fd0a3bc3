"""Drift-corrected timing: a fixed reference program timed between the measurements of a pass.

On a shared machine the speed of a core drifts over seconds (another guest on the physical core,
memory bandwidth, clock changes), by 20-60% here, and it moves every program alike: the medians of
ten ONNX Runtime subnets over 12 passes correlated 0.89-0.99 with those of a reference subnet timed
just before and after them. So each measurement is divided by the reference's speed at that moment
(the mean of the reference points either side of it) and multiplied by the reference's typical
(median) time: the times of a table are those of a machine running at its typical speed, and the
median over passes is kept. Measured on that same run, the spread of one subnet across passes fell
from 8.9% to 3.1% (coefficient of variation), and the medians of two halves of the passes agreed
within 1.8% instead of 12.9%.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import numpy as np

from ..runtimes.runners import Runner

#: a reference point runs the reference for at least this long (ms), in at least 3 runs
REFERENCE_POINT_MS = 20.0
#: a new reference point is timed once this much time (s) has passed since the last one
REFERENCE_EVERY_S = 0.5
MAX_REFERENCE_RUNS = 50


class DriftReference:
    """The reference program, timed at points of a pass (:meth:`point`) with ``time_point``
    (``(runner, warmup, repeats) -> times in ms``); its run count is set once so that a point
    lasts about :data:`REFERENCE_POINT_MS`."""

    def __init__(self, runner: Runner, time_point: Callable[[Runner, int, int], np.ndarray],
                 every_s: float = REFERENCE_EVERY_S) -> None:
        self.runner, self._time, self.every_s = runner, time_point, every_s
        first = float(np.median(time_point(runner, 2, 3)))
        self.runs = min(MAX_REFERENCE_RUNS, max(3, math.ceil(REFERENCE_POINT_MS / max(first, 1e-3))))
        self.points: list[float] = []
        self._last = -math.inf

    def due(self) -> bool:
        """Whether a new point is due (:attr:`every_s` since the last one)."""
        return time.perf_counter() - self._last >= self.every_s

    def point(self) -> float:
        """Time the reference now (median ms of :attr:`runs` runs after one warm-up run)."""
        ms = float(np.median(self._time(self.runner, 1, self.runs)))
        self.points.append(ms)
        self._last = time.perf_counter()
        return ms

    def typical_ms(self) -> float:
        """The reference's median time over every point (what corrected times are scaled to)."""
        return float(np.median(self.points))


def local_reference(points: Sequence[tuple[int, float]], n: int) -> np.ndarray:
    """The reference's time at each of ``n`` positions of a pass: the mean of the last point timed
    at or before the position and the first one after it. ``points``: (position, ms) in order,
    the first at position 0 and the last at ``n`` (after the pass)."""
    pos = np.array([p for p, _ in points])
    ms = np.array([m for _, m in points], dtype=np.float64)
    at = np.arange(n)
    before = np.searchsorted(pos, at, side="right") - 1
    after = np.minimum(before + 1, len(pos) - 1)
    return (ms[before] + ms[after]) / 2.0


def drift_corrected(raw: np.ndarray, local: np.ndarray, typical_ms: float) -> list[float]:
    """Each runner's time at the reference's typical speed: ``raw * typical / local`` per pass
    (arrays of passes x runners), the median over the passes."""
    return [float(v) for v in np.median(raw * (typical_ms / local), axis=0)]
