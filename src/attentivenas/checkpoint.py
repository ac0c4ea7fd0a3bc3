"""Deprecated alias: checkpoints (ours and the authors') moved to :mod:`attentivenas.nn.checkpoint`.

Importing this module warns (``DeprecationWarning``); attentivenas 0.2.0 removes it; import from
``attentivenas.nn.checkpoint`` (or ``attentivenas.nn``) instead.
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

warnings.warn("attentivenas.checkpoint is deprecated: import from attentivenas.nn.checkpoint instead "
              "(attentivenas 0.2.0 removes this alias)", DeprecationWarning, stacklevel=2)
