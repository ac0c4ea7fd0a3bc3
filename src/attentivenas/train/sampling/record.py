"""What attentive sampling picked: a bounded record of the sampler's choices in ``metrics.jsonl``.

Every ``interval`` steps (:func:`record_interval`: at least ``sampler.record_every``, and so many
that a run writes at most ``sampler.record_max`` records), a step whose middle subnets were chosen
among ``k > 1`` scored candidates logs one record of kind :data:`KIND`::

    {"kind": "sampler", "global_step": 120, "time": ..., "method": "bestup", "k": 3,
     "estimator": "loss", "groups": [{"target": [1.5, 1.75], "mflops": [1.52, 1.61, 1.70],
                                      "scores": [-0.41, -0.38, -0.52], "picked": 1,
                                      "genes": [[...], [...], [...]]}, ...]}

one group per middle subnet: the FLOPs target bin, the candidates' MFLOPs, their scores (higher is
better: ``-loss`` on the batch, or the predicted accuracy), the index of the trained one and the
candidates' genes (the report re-measures them). Uniform steps (``sampler.method=uniform``, or an
online predictor not fitted yet) have nothing chosen and log nothing. ``attentivenas
sampling-report RUN/`` reads these records (:func:`read_choices`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ...errors import UserError
from .sampler import ArchSampler

KIND = "sampler"


def record_interval(total_steps: int, every: int, cap: int) -> int:
    """Steps between two records: ``every``, widened so that ``total_steps`` give at most ``cap``
    records; 0 (no record) when either is 0."""
    if every <= 0 or cap <= 0:
        return 0
    return max(int(every), math.ceil(max(int(total_steps), 1) / int(cap)))


def _score(v: float) -> float | None:
    return round(float(v), 6) if math.isfinite(float(v)) else None


def choice_record(sampler: ArchSampler, global_step: int, interval: int, estimator: str) -> dict[str, Any] | None:
    """The record of the step just taken (``global_step``, counted after the step) when it is due and
    the sampler chose among ``k > 1`` scored candidates; None otherwise."""
    last = sampler.last_choice
    if interval <= 0 or global_step % interval != 0 or last is None:
        return None
    groups, scores, picked = last
    if groups.k < 2:
        return None
    out = []
    for g in range(len(groups)):
        genes = groups.genes[g]
        out.append({"target": None if groups.targets[g] is None else [float(x) for x in groups.targets[g]],  # type: ignore[union-attr]
                    "mflops": [round(m, 4) for m in sampler.mflops(genes)],
                    "scores": [_score(v) for v in scores[g]], "picked": int(picked[g]),
                    "genes": [[int(x) for x in row] for row in genes]})
    return {"method": sampler.method, "k": groups.k, "estimator": estimator, "groups": out}


def read_choices(metrics: str | Path) -> list[dict[str, Any]]:
    """The sampler records of a ``metrics.jsonl``, oldest first (a torn last line is skipped)."""
    path = Path(metrics)
    if not path.is_file():
        raise UserError(f"{path}: no metrics file (a training run's folder holds metrics.jsonl)")
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and rec.get("kind") == KIND:
            records.append(rec)
    return records
