"""The settings of a latency table's measurement: :class:`LatencyTableConfig`
(``attentivenas latency build-table``, :func:`attentivenas.latency.build_table`).

What a value may be depends on the runtime and the device (a CPU clock only on the CPU, worker
processes only for the runtimes that load programs), so the builder checks the values and names
the one that cannot be used; this section holds their types, defaults and upper bounds (bounded
work: no count asks for hours of measuring or a table that ``latency refit`` cannot refit).
"""

from __future__ import annotations

import math
import re
from typing import Literal

from pydantic import Field, model_validator

from ..errors import ConfigError
from .base import Section
from .measure import SEED_LIMIT

#: the most whole subnets a table may store (calibration + held-out): ``latency refit``'s leave-one-out
#: fit is quadratic in them (100 subnets 2.2 s, 200 9 s, 1,000 more than 4 minutes on a 2-core CPU)
MAX_REFIT_SUBNETS = 300
#: the most untimed and timed runs per measurement (``latency measure``, ``build-table``, per op)
MAX_WARMUP = 10_000
MAX_REPEATS = 10_000
#: the largest batch any latency measurement takes (a smaller one when the subnet's activations do not fit:
#: :func:`attentivenas.latency.measure.max_batch`)
MAX_BATCH = 1024
#: the most images one ``latency measure`` runs, ``(warmup + repeats) * batch``: the flags' maxima
#: together would run 20 million forwards (days); this keeps a measurement bounded
MAX_MEASURE_IMAGES = 100_000


def check_measure_counts(warmup: int, repeats: int, batch: int) -> None:
    """Refuse (one line naming the flag and its range) run counts and a batch that would not finish."""
    for flag, value, low, high in (("--warmup", warmup, 0, MAX_WARMUP), ("--repeats", repeats, 1, MAX_REPEATS),
                                   ("--batch", batch, 1, MAX_BATCH)):
        if not low <= value <= high:
            raise ConfigError(f"{flag} {value} is out of range: use {low}..{high}")
    images = (warmup + repeats) * batch
    if images > MAX_MEASURE_IMAGES:
        raise ConfigError(f"--warmup {warmup} + --repeats {repeats} at --batch {batch} run {images:,} images; at most "
                          f"{MAX_MEASURE_IMAGES:,} (fewer repeats or a smaller batch)")


#: a latency budget relative to the space: ``pNN`` (a percentile of the space's predicted latency)
_PERCENTILE = re.compile(r"^p(\d+(?:\.\d+)?)$")


def parse_latency_budget(value: object) -> tuple[str, float]:
    """``("percentile", q)`` for ``"pNN"`` (0 <= q <= 100: a percentile of the space's latency, as its
    latency table predicts it; ``p0`` the fastest subnet, ``p100`` the slowest) or ``("ms", x)`` for a
    positive number of milliseconds (``"12.5"``, ``"12.5ms"``); a :class:`ConfigError` otherwise."""
    text = str(value).strip().lower()
    m = _PERCENTILE.match(text)
    if m is not None:
        q = float(m.group(1))
        if q > 100:
            raise ConfigError(f"latency budget {value!r}: a percentile is p0..p100")
        return "percentile", q
    try:
        ms = float(text.removesuffix("ms"))
    except ValueError:
        raise ConfigError(f"latency budget {value!r} is neither pNN (a percentile of the space's latency, e.g. p50) "
                          "nor a time in ms") from None
    if not (math.isfinite(ms) and ms > 0):
        raise ConfigError(f"latency budget {value!r} must be a positive time in ms")
    return "ms", ms


class LatencyTableConfig(Section):
    """How a latency table is measured: runtime, device, ops and subnets timed, timing and fitting."""

    runtime: str = "torch"  # torch (eager), onnxruntime, executorch or openvino
    precision: Literal["fp32", "int8"] = "fp32"  # int8: ops and subnets post-training quantized (not torch)
    device: str | None = "cpu"  # cpu, cuda or cuda:N; null or auto: cuda when present
    batch: int = Field(1, le=MAX_BATCH)  # also bounded by the space's max subnet's activations
    threads: int | None = 1  # CPU threads; null: torch's
    num_classes: int = Field(1000, ge=1, le=100_000)  # classifier outputs
    # op signatures of N seeded random archs plus the min and max archs; null: every signature of the space
    archs: int | None = Field(None, le=100_000)
    max_signatures: int = 20000  # a whole-space table of more op signatures is refused (use archs)
    warmup: int = Field(5, le=MAX_WARMUP)  # untimed runs per op
    repeats: int = Field(20, le=MAX_REPEATS)  # timed runs per op (their median)
    passes: int = Field(1, le=100)  # passes over all ops and subnets
    clock: str = "wall"  # wall, or cpu (thread CPU time; threads 1)
    calibration_archs: int = Field(4, ge=0, le=MAX_REFIT_SUBNETS)  # seeded random whole subnets the overhead (and the scaled model) is fitted on
    model: str = "auto"  # sum, scaled or auto (the lower leave-one-out error)
    holdout_archs: int = Field(10, ge=0, le=MAX_REFIT_SUBNETS)  # seeded random whole subnets measured to report the table's error
    seed: int = Field(0, ge=0, lt=SEED_LIMIT)  # seed of the sampled archs
    jobs: int = Field(1, le=256)  # processes that export the programs (onnxruntime, executorch)
    drift_correction: bool = True  # the min subnet timed between measurements rescales them (docs/search.md)

    @model_validator(mode="after")
    def _refittable(self) -> LatencyTableConfig:
        stored = self.calibration_archs + self.holdout_archs
        if stored > MAX_REFIT_SUBNETS:
            raise ValueError(f"calibration_archs + holdout_archs = {stored} whole subnets; a table stores at most "
                             f"{MAX_REFIT_SUBNETS} (its refit is quadratic in them)")
        return self
