"""The settings of a latency table's measurement: :class:`LatencyTableConfig`
(``attentivenas latency build-table``, :func:`attentivenas.latency.build_table`).

What a value may be depends on the runtime and the device (a CPU clock only on the CPU, worker
processes only for the runtimes that load programs), so the builder checks the values and names
the one that cannot be used; this section holds their types, defaults and upper bounds (bounded
work: no count asks for hours of measuring or a table that ``latency refit`` cannot refit).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from .base import Section
from .measure import SEED_LIMIT

#: the most whole subnets a table may store (calibration + held-out): ``latency refit``'s leave-one-out
#: fit is quadratic in them (100 subnets 2.2 s, 200 9 s, 1,000 more than 4 minutes on a 2-core CPU)
MAX_REFIT_SUBNETS = 300


class LatencyTableConfig(Section):
    """How a latency table is measured: runtime, device, ops and subnets timed, timing and fitting."""

    runtime: str = "torch"  # torch (eager), onnxruntime, executorch or openvino
    precision: Literal["fp32", "int8"] = "fp32"  # int8: ops and subnets post-training quantized (not torch)
    device: str | None = "cpu"  # cpu, cuda or cuda:N; null or auto: cuda when present
    batch: int = Field(1, le=4096)
    threads: int | None = 1  # CPU threads; null: torch's
    num_classes: int = Field(1000, ge=1, le=100_000)  # classifier outputs
    # op signatures of N seeded random archs plus the min and max archs; null: every signature of the space
    archs: int | None = Field(None, le=100_000)
    max_signatures: int = 20000  # a whole-space table of more op signatures is refused (use archs)
    warmup: int = Field(5, le=10_000)  # untimed runs per op
    repeats: int = Field(20, le=10_000)  # timed runs per op (their median)
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
