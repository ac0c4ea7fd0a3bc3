"""Progress bars of long loops (tqdm), off when not wanted or when there is nothing to do."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress_bar(items: Sequence[T], desc: str, enabled: bool = True) -> Iterable[T]:
    """``items`` with a progress bar named ``desc`` (none when not ``enabled`` or ``items`` is empty)."""
    return tqdm(items, desc=desc, disable=not enabled or not items, leave=False)


def progress_iter(items: Iterable[T], total: int, desc: str, enabled: bool = True) -> Iterable[T]:
    """An iterator of ``total`` items (e.g. results arriving from workers) with a progress bar."""
    return tqdm(items, total=total, desc=desc, disable=not enabled or total == 0, leave=False)


def tqdm_bar(total: int, desc: str, enabled: bool = True) -> tqdm:
    """A bar of ``total`` steps advanced with ``update(1)`` (count, rate and ETA on stderr; a no-op bar
    when not ``enabled`` or ``total`` is 0); ``close()`` it at the end."""
    return tqdm(total=total, desc=desc, disable=not enabled or total == 0, leave=False)
