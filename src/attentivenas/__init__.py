"""attentivenas: two-stage NAS with attentive sampling (AttentiveNAS, CVPR 2021)."""

from .space import ATTENTIVENAS_SPACE, TINY_SPACE, Arch, SearchSpace, get_space, named_arch, resolve_arch

__version__ = "0.1.0"
__all__ = ["Arch", "SearchSpace", "ATTENTIVENAS_SPACE", "TINY_SPACE", "get_space", "named_arch", "resolve_arch"]
