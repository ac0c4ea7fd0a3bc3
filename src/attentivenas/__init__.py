"""attentivenas: two-stage NAS with attentive sampling (AttentiveNAS, CVPR 2021)."""

from __future__ import annotations

from typing import Any

from .space import ATTENTIVENAS_SPACE, TINY_SPACE, Arch, SearchSpace, get_space, named_arch, resolve_arch

__version__ = "0.1.0"
__all__ = ["Arch", "SearchSpace", "ATTENTIVENAS_SPACE", "TINY_SPACE", "get_space", "named_arch", "resolve_arch",
           "load_pretrained"]


def __getattr__(name: str) -> Any:
    """``attentivenas.load_pretrained``, imported on first use so ``import attentivenas`` stays free of torch."""
    if name == "load_pretrained":
        from .export.pretrained import load_pretrained  # heavy (torch): loaded on first use

        return load_pretrained
    raise AttributeError(f"module 'attentivenas' has no attribute {name!r}")
