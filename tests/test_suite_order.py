"""`make test`'s order (tests/conftest.py): the longest files are named and collected first."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import LONG_FILES


def test_every_long_file_exists_once() -> None:
    here = Path(__file__).parent
    assert len(set(LONG_FILES)) == len(LONG_FILES)
    assert [name for name in LONG_FILES if not (here / name).is_file()] == []


def test_the_session_collects_the_long_files_first(request: pytest.FixtureRequest) -> None:
    rank = {name: i for i, name in enumerate(LONG_FILES)}
    ranks = [rank.get(item.path.name, len(rank)) for item in request.session.items]
    assert ranks == sorted(ranks)
