"""The published models (A0-A6 and AlphaNet's two A5) evaluated on a checkpoint, beside the papers' top-1.

``attentivenas evaluate --published`` prints this table: per model its resolution, MFLOPs, params,
our BN-recalibrated top-1 / top-5 on the chosen split, the published top-1 and the difference. The
published numbers are those of the checkpoint's kind: AlphaNet's README for an AlphaNet checkpoint
(AttentiveNAS's A5 arch has none there: its published top-1 and difference are None), else the
AttentiveNAS paper's (AlphaNet's two A5 archs with AlphaNet's numbers).
"""

from __future__ import annotations

from typing import Any

from ..config import checkpoint_kind
from ..errors import ArchError, UserError
from ..space import NAMED_ARCHS, Arch, SearchSpace, named_arch
from ..space.presets import ALPHANET_TOP1, PUBLISHED_TOP1
from .evaluate import SubnetEvaluator

#: checkpoint kind -> (where its published top-1 comes from, the numbers)
PUBLISHED_BY_KIND: dict[str, tuple[str, dict[str, float]]] = {
    "alphanet": ("AlphaNet", ALPHANET_TOP1),
    "attentivenas": ("AttentiveNAS", PUBLISHED_TOP1),
    "ours": ("AttentiveNAS", PUBLISHED_TOP1),
}


def published_reference(kind: str) -> tuple[str, dict[str, float]]:
    """(``AttentiveNAS`` | ``AlphaNet``, model -> published top-1) compared with a checkpoint of ``kind``."""
    return PUBLISHED_BY_KIND.get(kind, PUBLISHED_BY_KIND["ours"])


def published_archs(space: SearchSpace) -> dict[str, Arch]:
    """The published models as archs of ``space``; a space that cannot hold them (``tiny``, a custom
    one) is one :class:`UserError` line, before anything is measured."""
    try:
        return {name: named_arch(name, space) for name in NAMED_ARCHS}
    except ArchError:
        raise UserError(f"--published evaluates the authors' ImageNet models (A0-A6, AlphaNet's A5), archs of the "
                        f"attentivenas and alphanet spaces; this checkpoint's space '{space.name}' cannot hold them; "
                        "evaluate its own subnets with --arch (min, max, a JSON arch)") from None


def published_table(evaluator: SubnetEvaluator) -> list[dict[str, Any]]:
    """Evaluate every published model on the evaluator's supernet (BN recalibrated on its shared
    calibration batches, measured on its split) and return one row each, beside the top-1 published
    for the checkpoint's kind (None where that release published none)."""
    _source, published = published_reference(checkpoint_kind(evaluator.meta))
    rows = []
    for name, arch in published_archs(evaluator.supernet.space).items():
        res = evaluator.evaluate(arch)
        top1 = published.get(name)
        rows.append({"model": name, "resolution": arch.resolution, "mflops": res["mflops"], "params_m": res["params_m"],
                     "top1": res["top1"], "top5": res["top5"], "published_top1": top1,
                     "diff": None if top1 is None else res["top1"] - top1, "samples": res["samples"]})
    return rows
