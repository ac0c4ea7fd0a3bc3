"""Keeping export outputs whole: a file's sha256, the lock an export holds on its output, and the
cleaning of what killed exports left behind."""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..io import OutputLock, remove_torn_writes
from ..runtimes.programs import remove_orphan_temp_dirs


def file_sha256(path: str | Path) -> str:
    """The sha256 (hex) of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def export_lock(path: str | Path, folder: bool) -> OutputLock:
    """The lock an export into ``path`` holds: a folder's own (``DIR/.attentivenas.lock``, for a Pareto
    set's folder), or for a file or a bundle folder one beside it (``.<name>.lock`` in its parent, so a
    bundle holds only its files). Held by one process at a time; re-entrant within one."""
    p = Path(path)
    if folder:
        return OutputLock(p, "export folder")
    return OutputLock(p.parent, "export output", name=f".{p.name}.lock")


def clean_export_folder(folder: str | Path) -> None:
    """Remove what killed exports left in ``folder`` (their temporary files and folders) and the
    temporary folders of killed exports in the system's temporary folder. Call it holding the lock."""
    remove_torn_writes(folder, depth=1)
    if Path(folder).is_dir():
        remove_orphan_temp_dirs(folder)
    remove_orphan_temp_dirs()


