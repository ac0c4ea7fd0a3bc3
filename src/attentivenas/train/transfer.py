"""Supernet transfer: ``train --config FILE init_from=CKPT`` starts from a trained supernet.

:func:`load_init` copies into a freshly built supernet every tensor of a checkpoint (ours or the
authors') whose name and shape fit, leaves the rest as initialised, and re-initialises the
classifier when the number of classes differs (it keeps the fresh, seeded init). A checkpoint of
another space is refused with one line.

The rule for "another space" is on the weights, not on the space's name: of the configured
supernet's tensors outside the classifier (scalars such as BN's ``num_batches_tracked`` left out),
at least ``min_fit`` (default :data:`MIN_FIT`, 90%) must be in the checkpoint under the same name
with the same shape. A space with the same largest shapes (other resolutions, fewer choices below the
same maxima) therefore transfers in full; one whose blocks differ (the tiny space against
attentivenas: 0% fit) is refused; a space that differs in a few layers transfers what fits and
says how much was new.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError
from ..nn import Supernet, supernet_weights

#: the fraction of the configured supernet's (non-classifier) tensors that must fit the checkpoint
MIN_FIT = 0.9
#: the classifier's tensors (re-initialised when the class count differs)
CLASSIFIER_PREFIX = "classifier."


@dataclass
class TransferReport:
    """What :func:`load_init` kept and what stayed new."""

    path: str
    kind: str  # ours, attentivenas or alphanet
    space: str  # the checkpoint's space name
    kept: int  # tensors of the supernet copied from the checkpoint
    new: int  # tensors of the supernet left as initialised (the classifier's among them when re-initialised)
    skipped: int  # tensors of the checkpoint not used (no such name here, or another shape)
    total: int  # tensors of the supernet
    classes_from: int | None  # the checkpoint's classifier classes
    classes_to: int
    classifier_new: bool  # whether the classifier was re-initialised

    def line(self) -> str:
        """One line for the log: what was kept and what was new."""
        cls = (f"the classifier re-initialised for {self.classes_to} classes (the checkpoint's has "
               f"{self.classes_from})" if self.classifier_new else f"the classifier kept ({self.classes_to} classes)")
        return (f"init_from {self.path} ({self.kind} checkpoint, space '{self.space}'): kept {self.kept} of "
                f"{self.total} tensors, {self.new} new; {cls}; {self.skipped} tensor(s) of the checkpoint unused")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _fits(a: torch.Tensor, b: torch.Tensor) -> bool:
    return tuple(a.shape) == tuple(b.shape)


@torch.no_grad()
def load_init(net: Supernet, path: str | Path, min_fit: float = MIN_FIT, classifier: str = "auto") -> TransferReport:
    """Copy the tensors of the checkpoint at ``path`` that fit ``net`` (same name, same shape) into it.

    The classifier is kept when its shape fits (``classifier="auto"``), else left as ``net``
    initialised it (re-initialised; always with ``classifier="new"``).
    :class:`CheckpointError` (one line) when the checkpoint is of another space: fewer than
    ``min_fit`` of ``net``'s non-classifier tensors fit it (see the module doc).
    """
    state, space, meta = supernet_weights(path)
    own = net.state_dict()
    body = [k for k, v in own.items() if not k.startswith(CLASSIFIER_PREFIX) and v.dim() > 0]
    fit_body = [k for k in body if k in state and _fits(state[k], own[k])]
    if not body or len(fit_body) < min_fit * len(body):
        name = net.space.name
        raise CheckpointError(
            f"init_from {path} is a supernet of another space: {len(fit_body)} of the {len(body)} tensors of space "
            f"'{name}' fit it (it stores space '{space.name}'; at least {min_fit:.0%} must); set space to the "
            "checkpoint's space")
    use = {k: v for k, v in state.items() if k in own and _fits(v, own[k])}
    cls_keys = [k for k in own if k.startswith(CLASSIFIER_PREFIX)]
    classifier_new = classifier == "new" or any(k not in use for k in cls_keys)
    if classifier_new:  # the whole classifier is new (weight and bias together)
        for k in cls_keys:
            use.pop(k, None)
    merged = dict(own)
    merged.update(use)
    net.load_state_dict(merged, strict=True)  # copies into the existing tensors: device and memory format stay
    kept = len(use)
    from_classes = meta.get("num_classes")
    return TransferReport(path=str(path), kind=str(meta["kind"]), space=space.name, kept=kept,
                          new=len(own) - kept, skipped=len(state) - kept, total=len(own),
                          classes_from=int(from_classes) if from_classes is not None else None,
                          classes_to=int(net.num_classes), classifier_new=classifier_new)
