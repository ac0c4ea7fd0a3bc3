"""The published models (A0-A6 and AlphaNet's two A5) evaluated on a checkpoint, beside the papers' top-1.

``attentivenas evaluate --published`` prints this table: per model its resolution, MFLOPs, params,
our BN-recalibrated top-1 / top-5 on the chosen split, the published top-1 and the difference.
"""

from __future__ import annotations

from typing import Any

from ..space import NAMED_ARCHS, PUBLISHED_TOP1, named_arch
from .evaluate import SubnetEvaluator


def published_table(evaluator: SubnetEvaluator) -> list[dict[str, Any]]:
    """Evaluate every published model on the evaluator's supernet (BN recalibrated on its shared
    calibration batches, measured on its split) and return one row each."""
    rows = []
    for name in NAMED_ARCHS:
        arch = named_arch(name, evaluator.supernet.space)
        res = evaluator.evaluate(arch)
        published = PUBLISHED_TOP1[name]
        rows.append({"model": name, "resolution": arch.resolution, "mflops": res["mflops"], "params_m": res["params_m"],
                     "top1": res["top1"], "top5": res["top5"], "published_top1": published,
                     "diff": res["top1"] - published, "samples": res["samples"]})
    return rows
