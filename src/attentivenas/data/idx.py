"""IDX files (the MNIST family's format), read safely: gzip or raw, header checked, sizes bounded.

An IDX file is a big-endian header (two zero bytes, a type byte, the number of dimensions, then one
uint32 per dimension) followed by the values. Only unsigned bytes (type 0x08) are read here: the
images and labels of MNIST and Fashion-MNIST. A file is hostile until checked: the header must
match the type and rank asked for, every dimension is bounded, and no more bytes are decompressed
than the header announces (a gzip bomb stops there).
"""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..errors import ConfigError

UBYTE = 0x08
MAX_ITEMS = 10_000_000  # images or labels in one file
MAX_SIDE = 4096  # pixels per image side
CHUNK = 1 << 20  # bytes decompressed per read: memory grows with the data present, not the header's claim


def _open(path: Path):
    with open(path, "rb") as probe:
        gz = probe.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gz else open(path, "rb")


def _read_body(f: BinaryIO, count: int, header: int, where: str) -> bytes:
    """The ``count`` value bytes after the header, their size checked before anything that size is allocated.

    A raw file's size is known up front: one that is not ``header + count`` bytes is refused unread. A
    gzip stream's is not: it is decompressed in :data:`CHUNK` pieces, never more than ``count + 1``
    bytes. Either mismatch is a :class:`ConfigError` naming the file (``where``).
    """
    if isinstance(f, gzip.GzipFile):
        body = bytearray()
        while len(body) <= count:
            piece = f.read(min(CHUNK, count + 1 - len(body)))
            if not piece:
                break
            body += piece
        held = f"{count}+" if len(body) > count else str(len(body))
        if len(body) == count:
            return bytes(body)
    else:
        size = os.fstat(f.fileno()).st_size - header
        if size == count:
            return f.read(count)
        held = str(max(size, 0))
    raise ConfigError(f"{where} holds {held} bytes of values; its header announces {count}")


def read_idx(path: str | Path, ndim: int, what: str = "IDX file") -> np.ndarray:
    """The uint8 array of an IDX file of ``ndim`` dimensions (1: labels, 3: images).

    Anything else (another type, rank or size, a truncated or oversized body, a damaged gzip
    stream) is one :class:`ConfigError` line naming the file.
    """
    p = Path(path)
    try:
        with _open(p) as f:
            head = f.read(4)
            if len(head) != 4 or head[:2] != b"\x00\x00" or head[2] != UBYTE or head[3] != ndim:
                raise ConfigError(f"{what} {p} is not an IDX file of unsigned bytes with {ndim} dimension(s)")
            dims = struct.unpack(f">{ndim}I", f.read(4 * ndim))
            if dims[0] > MAX_ITEMS or any(d > MAX_SIDE or d < 1 for d in dims[1:]):
                raise ConfigError(f"{what} {p} announces implausible dimensions {dims}")
            count = int(np.prod(dims, dtype=np.int64))  # announced size: dims x 1 byte (uint8)
            body = _read_body(f, count, 4 + 4 * ndim, f"{what} {p}")
    except (OSError, EOFError, struct.error, gzip.BadGzipFile) as exc:
        raise ConfigError(f"{what} {p} cannot be read ({type(exc).__name__}: {exc})") from None
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)
