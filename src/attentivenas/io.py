"""Files: atomic writes (temp file in the same folder, fsync, rename: never a half file), strict JSON
and reading the JSON files users hand us.

One JSON convention everywhere: non-finite floats (NaN, inf) are written as ``null``
(:func:`json_safe`), numpy scalars and arrays as plain numbers and lists, so every file we write is
strict JSON that any reader accepts. :class:`OutputLock` keeps one process per output folder.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import io
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .errors import UserError

#: Errors of the file system a user can fix (full disk, quota, read-only or forbidden folder).
USER_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})


@contextlib.contextmanager
def user_file_errors(path: str | Path, action: str = "write") -> Iterator[None]:
    """Report a full disk, a quota, a read-only or forbidden path as one :class:`UserError` line naming
    ``path``; other ``OSError`` propagate."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in USER_ERRNOS:
            raise
        raise UserError(f"cannot {action} {path}: {exc.strerror or exc}") from None


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (the old file, if any, stays until the rename)."""
    path = Path(path)
    with user_file_errors(path):
        return _atomic_write_bytes(path, data)


def _atomic_write_bytes(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass
    return path


def remove_torn_writes(folder: str | Path, depth: int = 2) -> list[Path]:
    """Delete the temporary files a killed atomic write left in ``folder`` (and its sub-folders, down
    to ``depth`` levels). Call it while holding the folder's :class:`OutputLock`: no write of ours is
    then under way there. Returns the files removed."""
    removed: list[Path] = []
    root = Path(folder)
    if not root.is_dir():
        return removed
    for level in range(depth + 1):
        for tmp in root.glob("/".join(["*"] * level + [".*.tmp"])):
            if tmp.is_file():
                tmp.unlink(missing_ok=True)
                removed.append(tmp)
    return removed


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def json_safe(obj: Any) -> Any:
    """A copy of ``obj`` that is strict JSON: NaN and inf become ``None``, numpy scalars and arrays
    plain numbers and lists, tuples lists (dicts and lists are walked)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, np.generic):
        return json_safe(obj.item())
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def dumps_json(obj: Any, indent: int | None = None) -> str:
    """``json.dumps`` of :func:`json_safe` (``obj``), strict (no NaN or Infinity tokens)."""
    return json.dumps(json_safe(obj), indent=indent, allow_nan=False)


def atomic_write_json(path: str | Path, obj: Any, indent: int | None = 2) -> Path:
    return atomic_write_text(path, dumps_json(obj, indent) + "\n")


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to memory, then an atomic write."""
    import torch  # heavy: the space and cost layers import this module without needing torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic_write_bytes(path, buf.getvalue())


def read_json_file(path: str | Path, what: str, error: type[Exception] = ValueError) -> Any:
    """Parse a JSON file a user handed us; a missing or malformed file raises ``error`` with one
    line naming ``what`` and the path (pass a :class:`~attentivenas.errors.UserError` subclass)."""
    p = Path(path)
    if not p.is_file():
        raise error(f"{what} not found: {p}")
    try:
        return json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{what} {p} is not valid JSON: {exc}") from None


# --------------------------------------------------------------------------- one run per output folder
LOCK_NAME = ".attentivenas.lock"
_held: dict[str, tuple[int, int]] = {}  # resolved lock path -> (fd, depth) held by this process


class OutputLock:
    """An exclusive lock on an output folder (``DIR/.attentivenas.lock``) for one process at a time.

    It is an OS file lock (``flock``): it dies with the process, so a killed run leaves nothing to
    clean up. Re-entrant within a process (the quick start locks its folder, then trains into it).
    A second process gets :class:`~attentivenas.errors.UserError` naming the holder's pid. Use as a
    context manager, or :meth:`acquire` / :meth:`release`.
    """

    def __init__(self, folder: str | Path, what: str = "output folder", name: str = LOCK_NAME) -> None:
        self.folder = Path(folder)
        self.what = what
        self.path = self.folder / name
        self._key = ""

    def acquire(self) -> OutputLock:
        if self.folder.exists() and not self.folder.is_dir():
            raise UserError(f"{self.what} {self.folder} exists and is not a folder; choose another path")
        self.folder.mkdir(parents=True, exist_ok=True)
        key = str(self.path.resolve())
        if key in _held:
            fd, depth = _held[key]
            _held[key] = (fd, depth + 1)
            self._key = key
            return self
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            where = self.folder if self.path.name == LOCK_NAME else self.folder / self.path.name[1:-len(".lock")]
            raise UserError(f"{self.what} {where} is in use by another attentivenas process (pid {holder}); "
                            "wait for it to finish or choose another one") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        _held[key] = (fd, 1)
        self._key = key
        return self

    def release(self) -> None:
        if not self._key or self._key not in _held:
            return
        fd, depth = _held[self._key]
        if depth > 1:
            _held[self._key] = (fd, depth - 1)
        else:
            del _held[self._key]
            os.close(fd)  # closing the descriptor releases the flock
        self._key = ""

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()
