"""Measured accuracy for the search: each arch evaluated once (BN-recalibrated supernet on the
validation split), cached in memory and, optionally, in a dataset JSONL on disk (which is also
predictor data)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..accuracy import ArchDataset, ArchRecord, JsonlAppender, dataset_header
from ..costs import CostModel
from ..space import Arch, SearchSpace


class MeasuredAccuracy:
    """Accuracy by evaluating archs one by one with ``evaluate_fn(arch) -> top-1 (%)``, each arch
    once; with ``cache_path`` the results also go to (and come from) a dataset JSONL."""

    def __init__(self, space: SearchSpace, evaluate_fn: Callable[[Arch], float], cache_path: str | Path | None = None,
                 num_classes: int = 1000) -> None:
        self.space, self.evaluate_fn = space, evaluate_fn
        self._cost = CostModel(space, num_classes)
        self._appender = None
        self.cache = ArchDataset(space, num_classes=num_classes)
        if cache_path is not None:
            p = Path(cache_path)
            if p.exists():
                self.cache = ArchDataset.load(p, space, num_classes)
            self._appender = JsonlAppender(p, dataset_header(space, num_classes))
        self.calls = 0

    def __call__(self, genes: np.ndarray) -> np.ndarray:
        out = []
        for g in np.atleast_2d(genes):
            arch = self.space.decode(g)
            rec = self.cache.get(arch)
            if rec is None:
                rec = self._measure(arch, g)
            out.append(rec.accuracy)
        return np.array(out, dtype=np.float64)

    def _measure(self, arch: Arch, genes: np.ndarray) -> ArchRecord:
        self.calls += 1
        f, p = self._cost.flops_and_params(genes[None, :])
        rec = ArchRecord(arch, float(self.evaluate_fn(arch)), float(f[0]), float(p[0]) / 1e6)
        self.cache.add(rec)
        if self._appender is not None:
            self._appender.append(rec.to_dict())
        return rec
