"""Latency tables a user can finish: resume, the space and classes from a checkpoint, progress under
--json, the space's latency range and budgets relative to it, tables that cannot drive a search
refused before any work, bounded measurements and tables with negative times refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from attentivenas import accuracy as P
from attentivenas.config import LatencyTableConfig
from attentivenas.config.latency import parse_latency_budget
from attentivenas.costs import CostModel
from attentivenas.errors import ConfigError, UserError
from attentivenas.latency import LatencyTable, build_table
from attentivenas.latency import measure as M
from attentivenas.latency.partial import PassStore, partial_path
from attentivenas.nn import Supernet, save_supernet
from attentivenas.space import TINY_SPACE

from .cli_helpers import run_cli
from .synthetic import synthetic_latency_table

FAST = dict(num_classes=10, warmup=0, repeats=1, calibration_archs=0, holdout_archs=0, drift_correction=False)


def _counting(monkeypatch: pytest.MonkeyPatch, stop_after: int | None = None) -> list[int]:
    """``time_runner`` counted (and interrupted with KeyboardInterrupt after ``stop_after`` calls)."""
    calls: list[int] = []
    real = M.time_runner

    def fake(runner, warmup=10, repeats=50, rounds=1, clock="wall"):  # noqa: ANN001, ANN202
        if stop_after is not None and len(calls) >= stop_after:
            raise KeyboardInterrupt
        calls.append(1)
        return real(runner, warmup, repeats, rounds, clock)

    monkeypatch.setattr(M, "time_runner", fake)
    return calls


@pytest.mark.parametrize("drift", [False, True])
def test_an_interrupted_build_resumes_from_what_it_measured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            drift: bool) -> None:
    archs = [TINY_SPACE.min_arch()]
    cfg = LatencyTableConfig(**{**FAST, "drift_correction": drift, "passes": 2})
    part = partial_path(tmp_path / "t.json")
    with monkeypatch.context() as m:
        _counting(m, stop_after=12)
        with pytest.raises(KeyboardInterrupt):
            build_table(TINY_SPACE, cfg, archs, holdout=[], progress=False, partial=part)
    stored = json.loads(part.read_text())
    saved = sum(len(p) for p in stored["passes"])
    assert 0 < saved <= 12 and (not drift or stored["points"])
    notes: list[str] = []
    calls = _counting(monkeypatch)
    table = build_table(TINY_SPACE, cfg, archs, holdout=[], progress=False, partial=part, log=notes.append)
    n_items = len(table.entries)
    if drift:  # what was not kept, plus the reference's points
        assert 2 * n_items - saved < len(calls) < 2 * n_items
    else:  # only what was not kept is timed again
        assert len(calls) == 2 * n_items - saved
    assert len(notes) == 1 and f"{saved} of {2 * n_items} measurements reused" in notes[0]
    assert not part.exists()  # removed once the table is written
    assert all(v > 0 for v in table.entries.values())


def test_a_partial_file_of_other_settings_is_not_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archs = [TINY_SPACE.min_arch()]
    part = tmp_path / "t.json.partial.json"
    with monkeypatch.context() as m:
        _counting(m, stop_after=5)
        with pytest.raises(KeyboardInterrupt):
            build_table(TINY_SPACE, LatencyTableConfig(**FAST), archs, holdout=[], progress=False, partial=part)
    assert part.exists()
    calls = _counting(monkeypatch)
    notes: list[str] = []
    other = LatencyTableConfig(**{**FAST, "repeats": 2})
    table = build_table(TINY_SPACE, other, archs, holdout=[], progress=False, partial=part, log=notes.append)
    assert len(calls) == len(table.entries) and not notes
    # a corrupt file is ignored, not an error
    part.write_text("{not json")
    assert PassStore.open(part, {"a": 1}, 1).reused == 0


def test_cli_build_table_from_a_checkpoint_with_progress_and_range_under_json(tmp_path: Path) -> None:
    torch.manual_seed(0)
    ckpt = save_supernet(tmp_path / "ck.pt", Supernet(TINY_SPACE, 7))
    out = tmp_path / "t.json"
    r = run_cli("latency", "build-table", "--checkpoint", str(ckpt), "--warmup", "0", "--repeats", "1",
                "--calibration-archs", "2", "--holdout-archs", "0", "--no-drift-correction", "--out", str(out), "--json")
    assert r.code == 0, r.err
    info = json.loads(r.out)  # exactly one JSON object on stdout
    table = LatencyTable.load(out)
    assert info["space"] == "tiny" and info["num_classes"] == table.num_classes == 7
    assert "timing 429 ops + 2 subnets (torch)" in r.err and "/431" in r.err  # the bar: op count (and ETA)
    span = info["latency_range_ms"]
    assert info["drives_search"] and 0 < span["min_ms"] <= span["p50_ms"] <= span["max_ms"]
    assert span["min_ms"] <= span["min_subnet_ms"] and span["max_subnet_ms"] <= span["max_ms"]
    assert table.meta["space_range"]["p50_ms"] == pytest.approx(span["p50_ms"], abs=1e-4)
    assert table.budget_ms(TINY_SPACE, "p50") == pytest.approx(span["p50_ms"], abs=1e-4)
    assert not partial_path(out).exists()
    r = run_cli("latency", "build-table", "--checkpoint", str(ckpt), "--num-classes", "10", "--out",
                str(tmp_path / "u.json"))
    assert r.code == 2 and "--num-classes 10 differs" in r.err and "7 classes" in r.err and r.err.count("\n") == 1


def test_cli_build_table_of_sampled_archs_says_it_cannot_drive_a_search(tmp_path: Path) -> None:
    r = run_cli("latency", "build-table", "--space", "tiny", "--archs", "1", "--num-classes", "10", "--warmup", "0",
                "--repeats", "1", "--calibration-archs", "0", "--holdout-archs", "0", "--out", str(tmp_path / "t.json"))
    assert r.code == 0, r.err
    assert "cannot drive a search" in r.out and "latency of space" not in r.out
    r = run_cli("latency", "build-table", "--help")
    assert "cannot drive a search" in " ".join(r.out.split())


def test_check_covers_names_the_command_that_fixes_the_table() -> None:
    table = synthetic_latency_table()
    table.check_covers(TINY_SPACE, 10)
    del table.entries[sorted(table.entries)[0]]
    table.meta["archs"] = 20
    with pytest.raises(UserError) as exc:
        table.check_covers(TINY_SPACE, 10, checkpoint="ck.pt", path="t.json")
    msg = str(exc.value)
    assert "lacks 1 of the 429 ops" in msg and "--archs 20" in msg and "cannot drive a search" in msg
    assert "`attentivenas latency build-table --checkpoint ck.pt --runtime torch --batch 1 --threads 1 --out t.json`" in msg
    with pytest.raises(UserError, match="built for 10 classes, the supernet has 1000.*--num-classes 1000"):
        synthetic_latency_table().check_covers(TINY_SPACE, 1000)


@pytest.fixture(scope="module")
def predictor_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cost = CostModel(TINY_SPACE)
    ds = P.ArchDataset(TINY_SPACE, num_classes=10)
    for g in P.spread_genes(TINY_SPACE, 30, np.random.default_rng(0), cost):
        f, p = cost.flops_and_params(g[None])
        ds.add(P.ArchRecord(TINY_SPACE.decode(g), float(50 + 5 * np.log(f[0])), float(f[0]), float(p[0]) / 1e6))
    return P.fit_predictor(ds, "ridge").save(tmp_path_factory.mktemp("pred") / "pred.json")


def test_search_refuses_a_partial_table_before_any_work(predictor_file: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import attentivenas.search.runner as runner

    table = synthetic_latency_table()
    del table.entries[sorted(table.entries)[3]]
    path = table.save(tmp_path / "partial.json")
    started: list[int] = []
    monkeypatch.setattr(runner, "run_stage2", lambda *a, **k: started.append(1))
    r = run_cli("search", "--predictor", str(predictor_file), "--objectives", "mflops,latency", "--latency-table",
                str(path), "--out", str(tmp_path / "o"))
    assert r.code == 2 and r.err.count("\n") == 1 and not started
    assert "cannot drive a search" in r.err and "attentivenas latency build-table --space tiny --num-classes 10" in r.err


def test_search_takes_a_budget_relative_to_the_space(predictor_file: Path, tmp_path: Path) -> None:
    table = synthetic_latency_table()
    path = table.save(tmp_path / "t.json")
    out = tmp_path / "o"
    r = run_cli("search", "--predictor", str(predictor_file), "--latency-table", str(path), "--max-latency", "p25",
                "--pop-size", "12", "--generations", "2", "--out", str(out), "--json")
    assert r.code == 0, r.err
    limit = table.budget_ms(TINY_SPACE, "p25")
    assert table.space_range(TINY_SPACE)["min_ms"] < limit < table.space_range(TINY_SPACE)["p50_ms"]
    pareto = json.loads((out / "pareto.json").read_text())
    assert pareto and all(e["latency_ms"] <= limit + 1e-9 for e in pareto)
    r = run_cli("search", "--predictor", str(predictor_file), "--latency-table", str(path), "--max-latency", "p50",
                "--max-latency-ms", "3", "--out", str(tmp_path / "b"))
    assert r.code == 2 and "not both" in r.err and r.err.count("\n") == 1
    r = run_cli("search", "--predictor", str(predictor_file), "--max-latency", "median", "--out", str(tmp_path / "c"))
    assert r.code == 2 and "pNN" in r.err and r.err.count("\n") == 1


def test_latency_budget_parsing() -> None:
    assert parse_latency_budget("p50") == ("percentile", 50.0)
    assert parse_latency_budget("P90") == ("percentile", 90.0)
    assert parse_latency_budget("12.5ms") == ("ms", 12.5) == parse_latency_budget(12.5)
    for bad in ("p101", "-3", "0", "nan", "fast"):
        with pytest.raises(ConfigError):
            parse_latency_budget(bad)


@pytest.mark.parametrize(("flags", "words"), [
    (["--repeats", "1000000000"], ["--repeats 1000000000", "1..10000"]),
    (["--warmup", "1000000000"], ["--warmup 1000000000", "0..10000"]),
    (["--batch", "100000000"], ["--batch 100000000", "1..1024"]),
    (["--repeats", "10000", "--batch", "100"], ["images", "at most 100,000"]),
])
def test_latency_measure_is_bounded_before_any_work(flags: list[str], words: list[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _counting(monkeypatch)
    r = run_cli("latency", "measure", "--arch", "min", "--space", "tiny", *flags)
    assert r.code == 2 and r.err.count("\n") == 1 and "Traceback" not in r.err and not calls, r
    assert all(w in r.err for w in words), r.err


def test_batch_bound_follows_the_subnets_memory() -> None:
    from attentivenas.space import ATTENTIVENAS_SPACE

    big = M.max_batch(ATTENTIVENAS_SPACE, ATTENTIVENAS_SPACE.max_arch())
    assert 1 <= big < M.max_batch(TINY_SPACE, TINY_SPACE.max_arch()) == 1024
    with pytest.raises(UserError, match=rf"--batch {big + 1} is out of range: use 1..{big}"):
        M.check_batch(ATTENTIVENAS_SPACE, ATTENTIVENAS_SPACE.max_arch(), big + 1)
    r = run_cli("latency", "build-table", "--space", "attentivenas", "--batch", str(big + 1), "--out", "/tmp/x.json")
    assert r.code == 2 and f"1..{big}" in r.err and r.err.count("\n") == 1


@pytest.mark.parametrize(("key", "value"), [("overhead_ms", -1e9), ("per_block_ms", -1e6)])
def test_a_table_with_negative_times_is_refused_on_load(tmp_path: Path, key: str, value: float) -> None:
    data = synthetic_latency_table().to_dict()
    data[key] = value
    path = tmp_path / "t.json"
    path.write_text(json.dumps(data))
    r = run_cli("latency", "measure", "--arch", "min", "--space", "tiny", "--table", str(path), "--repeats", "1")
    assert r.code == 2 and r.err.count("\n") == 1 and "a time must be positive" in r.err, r.err
    assert "max subnet" in r.err
    data[key] = -0.01  # a fitted overhead may be negative: smaller than the ops it corrects
    assert LatencyTable.from_dict(data).overhead_ms <= 0
    data["meta"] = {"fits": {"sum": {"overhead_ms": -1e9, "per_block_ms": 0.0}}}  # a fit it could switch to
    with pytest.raises(UserError, match="fitted 'sum'"):
        LatencyTable.from_dict(data)
