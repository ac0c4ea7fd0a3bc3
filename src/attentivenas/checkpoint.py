"""Compatibility alias: checkpoints (ours and the authors') moved to :mod:`attentivenas.nn.checkpoint`."""

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
