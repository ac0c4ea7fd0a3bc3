"""Deprecated alias: checkpoints (ours and the authors') moved to :mod:`attentivenas.nn.checkpoint`.

Importing this module warns (``DeprecationWarning``); import from ``attentivenas.nn.checkpoint``
(or ``attentivenas.nn``) instead.
"""

import warnings

from .nn.checkpoint import (
    FORMAT,
    VERSION,
    authors_state_dict,
    is_authors,
    is_ours,
    load_supernet,
    read_checkpoint,
    save_supernet,
    supernet_payload,
)

__all__ = ["FORMAT", "VERSION", "authors_state_dict", "is_authors", "is_ours", "load_supernet", "read_checkpoint",
           "save_supernet", "supernet_payload"]

warnings.warn("attentivenas.checkpoint is deprecated: import from attentivenas.nn.checkpoint instead",
              DeprecationWarning, stacklevel=2)
