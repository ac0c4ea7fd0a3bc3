"""Files: atomic writes (temp file in the same folder, fsync, rename: never a half file), strict JSON
and reading the JSON files users hand us.

One JSON convention everywhere: non-finite floats (NaN, inf) are written as ``null``
(:func:`json_safe`), numpy scalars and arrays as plain numbers and lists, so every file we write is
strict JSON that any reader accepts. :class:`OutputLock` keeps one process per output folder.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import yaml

try:  # POSIX; elsewhere (Windows) output folders are not locked
    import fcntl
except ImportError:  # pragma: no cover - optional: not on every platform
    fcntl = None  # type: ignore[assignment]

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


def check_output(path: str | Path, kind: str = "file", flag: str = "--out") -> Path:
    """Refuse, in one :class:`UserError` line and before any work, an output ``path`` that cannot be
    written: a folder where a file is asked for (``kind="file"``) or a file where a folder is
    (``kind="dir"``), a path under a file, or one whose nearest existing folder refuses new files
    (read-only, forbidden, ``/proc``; probed with a temporary file that is removed at once)."""
    path = Path(path)
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise UserError(f"{flag} {path} is under {parent}, which is a file, not a folder")
    if kind == "file" and path.is_dir():
        raise UserError(f"{flag} {path} is a folder; give a file name (e.g. {path / 'out.json'})")
    if kind == "dir" and path.exists() and not path.is_dir():
        raise UserError(f"{flag} {path} exists and is not a folder; choose another path")
    base = next((p for p in (path, *path.parents) if p.is_dir()), Path.cwd())
    try:
        fd, probe = tempfile.mkstemp(prefix=".attentivenas-probe.", dir=base)
    except OSError as exc:
        raise UserError(f"cannot write {flag} {path}: {base} refuses new files ({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(probe)
    return path


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


# --------------------------------------------------------------------------- reading what users hand us
MAX_FILE_BYTES = 1 << 30  #: JSON files (predictors with large forests run to tens of MB)
MAX_YAML_BYTES = 16 << 20  #: configs and space files are small
MAX_DEPTH = 64  #: nesting of objects and lists (ours need fewer than 10 levels)
MAX_YAML_ALIASES = 256  #: YAML anchors re-used (``*alias``)
MAX_YAML_VALUES = 100_000  #: values once aliases are expanded: an alias bomb multiplies them


def check_depth(obj: Any, limit: int = MAX_DEPTH) -> None:
    """Raise ``ValueError`` when lists and dicts nest deeper than ``limit`` (checked without recursion)."""
    stack = [(obj, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            if depth > limit:
                raise ValueError(f"it nests deeper than {limit} levels")
            children = node.values() if isinstance(node, dict) else node
            stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))


def loads_json(text: str, limit: int = MAX_DEPTH) -> Any:
    """``json.loads`` with a depth limit (deeply nested text raises ``ValueError``, not a crash)."""
    try:
        obj = json.loads(text)
    except RecursionError:
        raise ValueError(f"it nests deeper than {limit} levels") from None
    check_depth(obj, limit)
    return obj


def read_text_file(p: Path, what: str, error: type[Exception], max_bytes: int = MAX_FILE_BYTES) -> str:
    """The text of a user's file, refused past ``max_bytes``; problems are one ``error`` line naming it."""
    if p.is_dir():
        raise error(f"{what} {p} is a folder; give the file itself")
    if not p.is_file():
        raise error(f"{what} not found: {p}")
    size = p.stat().st_size
    if size > max_bytes:
        raise error(f"{what} {p} is {size / 2**20:.0f} MiB; files of over {max_bytes / 2**20:.0f} MiB are refused")
    try:
        return p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{what} {p} cannot be read: {exc}") from None


def read_json_file(path: str | Path, what: str, error: type[Exception] = ValueError,
                   max_bytes: int = MAX_FILE_BYTES) -> Any:
    """Parse a JSON file a user handed us; a missing, oversized, too deeply nested or malformed file
    raises ``error`` with one line naming ``what`` and the path (pass a
    :class:`~attentivenas.errors.UserError` subclass)."""
    p = Path(path)
    text = read_text_file(p, what, error, max_bytes)
    try:
        return loads_json(text)
    except (json.JSONDecodeError, ValueError) as exc:
        raise error(f"{what} {p} is not valid JSON: {exc}") from None


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader with a bound on alias uses and on nesting, refusing duplicate keys
    (PyYAML keeps the last one silently, so a repeated setting would hide the first)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._aliases = 0
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_YAML_ALIASES:
                raise ValueError(f"it uses aliases more than {MAX_YAML_ALIASES} times")
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise ValueError(f"it nests deeper than {MAX_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                if isinstance(key, (str, int, float, bool)) or key is None:
                    if key in seen:
                        raise ValueError(f"key {key!r} appears twice in one mapping (line {key_node.start_mark.line + 1})")
                    seen.add(key)
        return super().construct_mapping(node, deep)


def _expanded_size(obj: Any) -> int:
    """Number of values ``obj`` holds once shared (aliased) parts are counted every time they occur."""
    memo: dict[int, int] = {}

    def size(node: Any) -> int:
        if not isinstance(node, (dict, list)):
            return 1
        key = id(node)
        if key not in memo:
            memo[key] = 1 + sum(size(c) for c in (node.values() if isinstance(node, dict) else node))
        return memo[key]

    return size(obj)


def loads_yaml(text: str) -> Any:
    """``yaml.safe_load`` with bounds on aliases, depth and expanded size (``ValueError`` past them)."""
    loader = _BoundedLoader(text)
    try:
        data = loader.get_single_data()
    finally:
        loader.dispose()
    if _expanded_size(data) > MAX_YAML_VALUES:
        raise ValueError(f"it expands to more than {MAX_YAML_VALUES} values (an alias bomb?)")
    return data


def read_yaml_file(path: str | Path, what: str, error: type[Exception] = ValueError,
                   max_bytes: int = MAX_YAML_BYTES) -> Any:
    """Parse a YAML file a user handed us (safe loader: plain data only, bounded aliases, size and
    depth); every problem raises ``error`` with one line naming ``what`` and the path."""
    p = Path(path)
    text = read_text_file(p, what, error, max_bytes)
    try:
        return loads_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise error(f"{what} {p} is not valid YAML{where}") from None
    except ValueError as exc:
        raise error(f"{what} {p} is refused: {exc}") from None


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
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.lseek(fd, 0, os.SEEK_SET)
            holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            where = self.folder if self.path.name == LOCK_NAME else self.folder / self.path.name[1:-len(".lock")]
            raise UserError(f"{self.what} {where} is in use by another attentivenas process (pid {holder}); "
                            "wait for it to finish or choose another one") from None
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
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
