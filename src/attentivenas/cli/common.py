"""Shared helpers and option texts of the command line."""

from __future__ import annotations

import sys
from typing import Any

from ..io import dumps_json

SPACE_HELP = "Search space: a preset (attentivenas, alphanet, tiny) or a YAML file with a supernet_config block."
ARCH_HELP = "Model name (a0..a6, alphanet-a5, alphanet-a5-base, min, max), arch JSON file, or inline JSON."
DATA_HELP = ("digits, cifar10:PATH, cifar100:PATH or an ImageFolder root PATH (train/ and val/). "
             "Default: the data of the checkpoint's training config.")


def print_json(obj: Any) -> None:
    """Print one (strict) JSON object on stdout and nothing else."""
    sys.stdout.write(dumps_json(obj) + "\n")
    sys.stdout.flush()


def split_list(text: str) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``."""
    return [t.strip() for t in text.split(",") if t.strip()]
