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

A classifier's outputs mean the classes it was trained on: :func:`bundle_class_names` gives a data set's
class names in label order, training and fine-tuning checkpoints record them (``class_names``), and
:func:`check_head` refuses data whose count or names differ from a checkpoint's classifier
(``finetune``'s ``--new-head`` re-initialises it instead: :func:`with_new_head`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from ..data import DataBundle
from ..data.facts import KNOWN_CLASS_NAMES, class_names_of
from ..errors import CheckpointError, UserError
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


def bundle_class_names(bundle: DataBundle) -> list[str] | None:
    """The class names of a data bundle in label order (:func:`~attentivenas.data.facts.class_names_of` on
    its test split); None when unknown."""
    return class_names_of(bundle.test, bundle.num_classes, bundle.name)


def checkpoint_class_names(meta: dict[str, Any]) -> list[str] | None:
    """The class names a checkpoint's classifier was trained on: recorded (``class_names``), else those of
    the built-in data set its training config names; None when unknown (the authors' checkpoints)."""
    names = meta.get("class_names")
    if isinstance(names, list) and names and all(isinstance(n, str) for n in names):
        return list(names)
    cfg = meta.get("config") if isinstance(meta.get("config"), dict) else {}
    data = (cfg or {}).get("data") if isinstance((cfg or {}).get("data"), dict) else {}
    name = (data or {}).get("name")
    return list(KNOWN_CLASS_NAMES[name]) if name in KNOWN_CLASS_NAMES else None


def check_head(where: str, head_classes: int, head_names: list[str] | None, data_classes: int,
               data_names: list[str] | None) -> str | None:
    """Refuse (:class:`UserError`, one line) data whose labels do not mean the outputs of the classifier of
    checkpoint ``where``: another class count, or other class names (or the same in another order).
    Returns a note when the names could not be compared (the count was), else None."""
    fix = "pass --new-head to re-initialise the classifier for the data's classes (it then learns from the labels)"
    if head_names is not None and data_names is not None:
        if head_names == data_names:
            return None  # the labels mean the outputs they were trained as (a larger head keeps its extra outputs)
        if len(head_names) == len(data_names) == head_classes:
            i = next(j for j, (a, b) in enumerate(zip(data_names, head_names, strict=True)) if a != b)
            order = "; the same names in another order" if sorted(head_names) == sorted(data_names) else ""
            raise UserError(f"the data's classes differ from those of the classifier of {where}: label {i} is "
                            f"{data_names[i]!r} in the data, {head_names[i]!r} in the checkpoint{order}; {fix}, "
                            "or give data with the checkpoint's classes")
    if data_classes != head_classes:
        raise UserError(f"the data has {data_classes} classes but the classifier of {where} has {head_classes}: "
                        f"fine-tuning would train its outputs on other labels; {fix}, or give data with the "
                        f"checkpoint's {head_classes} classes")
    if head_names is not None and data_names is not None:  # same count, other names (head larger than recorded)
        raise UserError(f"the data's classes ({len(data_names)}) are not the {len(head_names)} classes the "
                        f"classifier of {where} was trained on; {fix}")
    return (f"{where} records no class names (the authors' checkpoints do not); only the class count "
            f"({head_classes}) was compared" if head_names is None else
            f"the data's class names are not known; only the class count ({head_classes}) was compared")


@torch.no_grad()
def with_new_head(net: Supernet, num_classes: int) -> Supernet:
    """A copy of ``net`` with a fresh classifier of ``num_classes`` outputs (PyTorch's default init, from
    the global RNG: the caller seeds it); every other tensor is ``net``'s."""
    bn = next(m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))
    fresh = Supernet(net.space, num_classes, bn_momentum=bn.momentum, bn_eps=bn.eps)
    state = fresh.state_dict()
    state.update({k: v for k, v in net.state_dict().items() if not k.startswith(CLASSIFIER_PREFIX)})
    fresh.load_state_dict(state, strict=True)
    return fresh.to(next(net.parameters()).device).eval()
