"""benchmarks/sampling_probe.py: the standalone top-1 of the ranking probe's subnets read from
finetune's files, each run's ranking against them, and the refusals of damaged or disagreeing files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from attentivenas.errors import UserError

from .bench_helpers import load_benchmark

probe = load_benchmark("sampling_probe")


def _arch(i: int) -> dict[str, object]:
    return {"resolution": 24 + i, "width": [i, 1]}


def _write(path: Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def _result(i: int, top1: float) -> dict[str, object]:
    return {"arch": _arch(i), "after": {"holdout": {"top1": 1.0}, "test": {"top1": top1}}}


def test_standalone_top1_from_folders_and_an_index(tmp_path: Path) -> None:
    assert probe.standalone_top1(tmp_path) == {}  # nothing trained alone yet
    _write(tmp_path / "probe" / "p0" / "result.json", _result(0, 80.0))
    _write(tmp_path / "probe" / "index.json", [{"folder": "subnet_000", **_result(1, 85.0)},
                                               {"folder": "subnet_001", **_result(0, 80.0)}])  # p0 again, agreeing
    got = probe.standalone_top1(tmp_path)
    assert got == {probe.arch_key(_arch(0)): 80.0, probe.arch_key(_arch(1)): 85.0}
    # the key does not depend on the order the fields were written in
    assert probe.arch_key({"width": [0, 1], "resolution": 24}) == probe.arch_key(_arch(0))


@pytest.mark.parametrize(("obj", "message"), [
    ({"arch": _arch(0), "after": {"test": None}}, "subnet p0: the fine-tuning record has no top-1 on the 'test' split"),
    ({"arch": _arch(0), "after": {"test": {"top1": 101}}}, r"subnet p0: 'top1' must be a number in \[0, 100\]"),
    ({"after": {"test": {"top1": 50}}}, "expected a finetune record with 'arch' and 'after'"),
    ([1, 2], "expected a finetune record"),
])
def test_damaged_records_are_refused_in_one_line(tmp_path: Path, obj: object, message: str) -> None:
    _write(tmp_path / "probe" / "p0" / "result.json", obj)
    with pytest.raises(UserError, match=message):
        probe.standalone_top1(tmp_path)


def test_two_records_of_one_subnet_must_agree(tmp_path: Path) -> None:
    _write(tmp_path / "probe" / "p0" / "result.json", _result(0, 80.0))
    _write(tmp_path / "probe" / "p0b" / "result.json", _result(0, 81.0))
    with pytest.raises(UserError, match="the same subnet as .*p0/result.json with other results"):
        probe.standalone_top1(tmp_path)


def test_run_ranking_uses_the_subnets_trained_alone_and_needs_three() -> None:
    rows = [{"name": f"p{i}", "mflops": 1.0 + i, "arch": _arch(i), "test_top1": t}
            for i, t in enumerate([70.0, 72.0, 71.0, 90.0])]
    standalone = {probe.arch_key(_arch(i)): t for i, t in enumerate([80.0, 81.0, 82.0])}  # p3 not trained yet
    rep = probe.run_ranking({"probe": rows}, standalone)
    assert rep["n"] == 3 and [s["name"] for s in rep["subnets"]] == ["p0", "p1", "p2"]
    assert rep["kendall_tau"] == pytest.approx(1 / 3) and rep["mean_gap"] == pytest.approx(-10.0)
    assert probe.rank_metrics(rep)["rank_gap"] == pytest.approx(-10.0)
    assert probe.run_ranking({"probe": rows[:2]}, standalone) is None
    assert probe.run_ranking({}, standalone) is None  # a run from before the probe existed
    assert probe.rank_metrics(None) == {k: None for k in probe.RANK_METRICS}
    table = probe.probe_table({"ranking": {"runs": [{"method": "uniform", "seed": 0, **rep}]}}, {"uniform": "Uniform"})
    assert "| p1 | 2.00 | 81.00 | 72.00 (-9.00) |" in table and "| Uniform | 1 | 3 | +0.33 |" in table
