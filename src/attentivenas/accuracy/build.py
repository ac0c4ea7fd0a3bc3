"""``predictor build`` as one call: a checkpoint's subnets measured into a dataset JSONL, in one
process, under torchrun, or over local processes started here; each rank measures its share, rank 0
writes the file (the same file for any number of ranks), and a killed build run again measures
nothing twice. A file measured on another checkpoint, data or settings is refused, unless
``settings.fresh`` starts it over (the old file moved aside)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import PredictorBuildSettings
from ..devices import resolve_device
from ..distributed import DistInfo, run_on_ranks
from ..errors import ConfigError
from ..space import get_space
from .evaluate import SubnetEvaluator
from .measure import build_arch_dataset


def build_from_checkpoint(settings: PredictorBuildSettings, ranks: int | None = None, threads: int | None = None,
                          progress: bool = True, warn: Callable[[str], None] | None = None,
                          log: Callable[[str], None] | None = None, timeout_s: int | None = None
                          ) -> dict[str, Any] | None:
    """Measure ``settings.num_archs`` subnets of a checkpoint into ``settings.out``; returns the
    summary (``dataset``, ``archs``, ``top1_min``, ``top1_max``) on rank 0, None on the other ranks."""
    return run_on_ranks(_build, (settings,), ranks, threads, _preference(settings.device), timeout_s,
                        lambda n: ConfigError(f"--ranks {ranks} but the job has {n} processes"),
                        progress=progress, warn=warn, log=log)


def _preference(device: str | None) -> str:
    dev = device or "auto"
    return "cuda" if dev.startswith("cuda") else dev


def _build(info: DistInfo, s: PredictorBuildSettings, progress: bool = False,
           warn: Callable[[str], None] | None = None, log: Callable[[str], None] | None = None
           ) -> dict[str, Any] | None:
    main = info.is_main
    device = info.device if info.distributed else resolve_device(s.device)
    ev = SubnetEvaluator.from_checkpoint(Path(s.checkpoint), get_space(s.space) if s.space else None,
                                         s.data, s.measure, device=device, seed=s.seed,
                                         warn=warn if main else (lambda m: None))
    ds = build_arch_dataset(ev.supernet.space, ev, s.num_archs, seed=s.seed, cache_path=Path(s.out),
                            spread=s.spread, num_classes=ev.supernet.num_classes, progress=progress and main,
                            over_ranks=True, log=log if main else None, stale="fresh" if s.fresh else "refuse")
    if not main:
        return None
    acc = ds.accuracies()
    return {"dataset": str(s.out), "archs": len(acc), "top1_min": float(acc.min()), "top1_max": float(acc.max())}
