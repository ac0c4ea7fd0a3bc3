"""One reader of Pareto files (``space.pareto_file.read_pareto_file``): ``resolve_arch``'s ``PARETO.json:N``,
``export --pareto`` / ``finetune --pareto`` (``read_pareto_archs``) and the search's ``read_pareto_json`` read
the same files the same way and refuse the same files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from attentivenas.errors import ArchError, UserError
from attentivenas.export.formats import ExportError
from attentivenas.export.pareto import read_pareto_archs
from attentivenas.search import read_pareto_json
from attentivenas.space import get_space, resolve_arch
from attentivenas.space.pareto_file import MAX_PARETO_ENTRIES, read_pareto_file

SPACE = get_space("tiny")


@pytest.mark.parametrize("wrapped", [False, True])
def test_every_reader_reads_a_pareto_file_alike(tmp_path: Path, wrapped: bool) -> None:
    lo, hi = SPACE.min_arch(), SPACE.max_arch()
    entries = [{"arch": lo.to_dict(), "accuracy": 90.0}, {"arch": hi.to_dict(), "accuracy": 95.0}]
    path = tmp_path / "pareto.json"
    path.write_text(json.dumps({"pareto": entries} if wrapped else entries))
    assert read_pareto_file(path) == entries
    assert read_pareto_json(path) == entries
    assert read_pareto_archs(path, SPACE) == [lo, hi]
    assert [resolve_arch(f"{path}:{i}", SPACE) for i in (0, 1)] == [lo, hi]
    assert resolve_arch(f"{path}:best", SPACE) == hi


def test_every_reader_refuses_the_same_files_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "pareto.json"
    path.write_text(json.dumps({"arch": SPACE.min_arch().to_dict()}))  # one arch, not a set
    for read, error in ((read_pareto_json, UserError), (lambda p: read_pareto_archs(p, SPACE), ExportError),
                        (lambda p: resolve_arch(f"{p}:0", SPACE), ArchError)):
        with pytest.raises(error, match="not a Pareto file") as err:
            read(path)
        assert "\n" not in str(err.value) and str(path) in str(err.value)
    path.write_text(json.dumps([{"arch": SPACE.min_arch().to_dict()}] * (MAX_PARETO_ENTRIES + 1)))
    for read in (read_pareto_json, lambda p: read_pareto_archs(p, SPACE), lambda p: resolve_arch(f"{p}:0", SPACE)):
        with pytest.raises(UserError, match=f"at most {MAX_PARETO_ENTRIES:,}"):
            read(path)
