"""Shared helpers of the command line: error handling and output."""

from __future__ import annotations

import json
import sys
from typing import Any

from ..errors import UserError


def fail(message: str) -> None:
    """Raise a user error (one line on stderr, exit code 2)."""
    raise UserError(message)


def print_json(obj: Any) -> None:
    """Print one JSON object on stdout and nothing else."""
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()
