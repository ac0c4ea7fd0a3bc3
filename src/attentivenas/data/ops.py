"""Transform chains that name the op that failed: :class:`Chain` (a picklable ``Compose``) and
:class:`LabelledOp`; both raise :class:`TransformFailure`, which the datasets report per image."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any


class TransformFailure(Exception):
    """An op of a transform chain raised: ``op`` names it, ``cause`` is what it raised."""

    def __init__(self, op: str, cause: BaseException) -> None:
        super().__init__(f"{op}: {type(cause).__name__}: {cause}")
        self.op = op
        self.cause = cause


def op_label(op: Callable) -> str:
    """A short name of a transform op for error messages (its own ``label`` where it has one)."""
    return str(getattr(op, "label", None) or getattr(op, "__name__", None) or type(op).__name__)


class Chain:
    """Apply transforms in turn (a picklable ``Compose``); an op that raises is named in a
    :class:`TransformFailure`."""

    def __init__(self, ops: Sequence[Callable]) -> None:
        self.ops = list(ops)

    def __call__(self, x: Any) -> Any:
        for op in self.ops:
            try:
                x = op(x)
            except TransformFailure:
                raise
            except Exception as exc:  # any op's failure: named, then reported per image by the dataset
                raise TransformFailure(op_label(op), exc) from exc
        return x

    def __repr__(self) -> str:
        return f"Chain({', '.join(op_label(op) for op in self.ops)})"


class LabelledOp:
    """One augmentation op (e.g. timm's ``AugmentOp``) that names itself when it raises."""

    def __init__(self, op: Callable, label: str) -> None:
        self.op = op
        self.label = label

    def __call__(self, img: Any) -> Any:
        try:
            return self.op(img)
        except Exception as exc:
            raise TransformFailure(self.label, exc) from exc

    def __repr__(self) -> str:
        return self.label
