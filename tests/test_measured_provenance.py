"""Cached measurements are tied to what measured them (issue 29, item 1): ``search`` reuses its
``measured.jsonl`` and ``predictor build`` resumes its file only when they were measured on the same
checkpoint weights, data, split and measurement settings."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

import attentivenas.accuracy.evaluate as evaluate_mod
from attentivenas.accuracy import ArchDataset, SubnetEvaluator, open_shared_cache, weights_fingerprint
from attentivenas.accuracy.measure import _drop_stale_part, part_file
from attentivenas.config import MeasureSettings
from attentivenas.nn import Supernet, save_supernet
from attentivenas.search import MeasuredAccuracy
from attentivenas.space import TINY_SPACE

from .cli_helpers import run_cli

COMMON = ["--data", "digits", "--calib-batches", "1", "--device", "cpu"]
SEARCH = ["--accuracy", "measured", "--pop-size", "6", "--generations", "2", "--json"]


def _ckpt(folder: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    return save_supernet(folder / f"tiny{seed}.pt", Supernet(TINY_SPACE, 10))


@pytest.fixture
def ckpts(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two checkpoints in a folder of their own per test: searches share their measurements in
    ``CKPT_DIR/measured/``, which would carry measurements from one test to the next."""
    folder = tmp_path_factory.mktemp("ckpts")
    return _ckpt(folder, 0), _ckpt(folder, 1)


@pytest.fixture(scope="module")
def first_search(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Checkpoint A's search with the common settings, once for the searches below (each goes on from a
    copy of the checkpoints' folder and of the search's, as after a search of its own): its result and the
    keys of the archs it measured."""
    folder = tmp_path_factory.mktemp("first")
    _ckpt(folder / "ckpts", 0), _ckpt(folder / "ckpts", 1)
    seen: list[str] = []
    with pytest.MonkeyPatch.context() as mp:
        _count_calls(mp, seen)
        r = _search(folder / "ckpts" / "tiny0.pt", folder / "s")
    return {"folder": folder, "result": r, "calls": seen}


@pytest.fixture
def searched(first_search: dict[str, Any], tmp_path: Path) -> tuple[Path, Path, Path]:
    """Checkpoints A and B and A's first search (``DIR/s``), copied into this test's folder."""
    assert first_search["result"].code == 0, first_search["result"].err
    assert first_search["calls"]  # it measured
    shutil.copytree(first_search["folder"] / "ckpts", tmp_path / "ckpts")
    shutil.copytree(first_search["folder"] / "s", tmp_path / "s")
    return tmp_path / "ckpts" / "tiny0.pt", tmp_path / "ckpts" / "tiny1.pt", tmp_path / "s"


def _kept(folder: Path, name: str) -> Path:
    """The one file of ``name`` kept aside (``NAME.stale-<provenance hash>``)."""
    (kept,) = folder.glob(f"{name}.stale-*")
    return kept


@pytest.fixture
def calls(monkeypatch) -> list[str]:
    """The keys of the archs measured (every SubnetEvaluator measurement goes through evaluate_arch)."""
    seen: list[str] = []
    _count_calls(monkeypatch, seen)
    return seen


def _count_calls(monkeypatch: pytest.MonkeyPatch, seen: list[str]) -> None:
    real = evaluate_mod.evaluate_arch

    def counting(supernet, arch, *args, **kw):
        seen.append(arch.key())
        return real(supernet, arch, *args, **kw)

    monkeypatch.setattr(evaluate_mod, "evaluate_arch", counting)


def _search(ckpt: Path, out: Path, *extra: str):
    return run_cli("search", "--checkpoint", str(ckpt), *COMMON, *SEARCH, "--out", str(out), *extra)


def _header(path: Path) -> dict:
    return json.loads(path.read_text().splitlines()[0])


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()[1:] if line.strip()]


# --------------------------------------------------------------------------- search
def test_a_search_on_another_checkpoint_measures_again(searched, tmp_path: Path, calls: list[str]) -> None:
    """The issue's case: checkpoint A's measured.jsonl copied into a search of checkpoint B."""
    _, b, out_a = searched  # A's search (its code asserted by the fixture)
    measured_a = out_a / "measured.jsonl"
    assert _header(measured_a)["measured_with"]["weights"]
    # A's file, with accuracies no subnet of B reaches: reused, they would show in B's front
    lines = measured_a.read_text().splitlines()
    doctored = [lines[0]] + [json.dumps({**json.loads(x), "accuracy": 99.5}) for x in lines[1:]]
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "measured.jsonl").write_text("\n".join(doctored) + "\n")
    calls.clear()
    r = _search(b, tmp_path / "b")
    assert r.code == 0, r.err
    said = [line for line in r.err.splitlines() if "measured.jsonl" in line]
    assert len(said) == 1 and "another checkpoint (weights differ)" in said[0] and "measuring again" in said[0]
    assert calls  # measured again
    pareto = json.loads((tmp_path / "b" / "pareto.json").read_text())
    assert all(e["accuracy"] != 99.5 for e in pareto)
    assert _kept(tmp_path / "b", "measured.jsonl").read_text() == "\n".join(doctored) + "\n"  # kept aside
    assert all(rec["accuracy"] != 99.5 for rec in _records(tmp_path / "b" / "measured.jsonl"))
    # the same front as a fresh search of B
    r = _search(b, tmp_path / "fresh")
    assert r.code == 0, r.err
    assert json.loads((tmp_path / "fresh" / "pareto.json").read_text()) == pareto


def test_a_search_again_with_the_same_settings_measures_nothing(searched, calls: list[str]) -> None:
    a, _, out = searched  # A's search: its code and its measurements asserted by the fixture
    first = json.loads((out / "pareto.json").read_text())
    (out / "search_state.npz").unlink()  # no resumed state: every accuracy is asked again
    calls.clear()
    r = _search(a, out)
    assert r.code == 0, r.err
    assert calls == [] and "measured.jsonl" not in r.err and not list(out.glob("measured.jsonl.stale*"))
    assert json.loads((out / "pareto.json").read_text()) == first


@pytest.mark.parametrize(("extra", "field"), [
    (["--split", "test"], "split"),
    (["--calib-batches", "2"], "calib_batches"),
    (["accuracy.max_images=50"], "max_images"),
])
def test_a_search_with_other_measurement_settings_measures_again(searched, calls: list[str], extra: list[str],
                                                                  field: str) -> None:
    a, _, out = searched  # A's search (its code asserted by the fixture)
    (out / "search_state.npz").unlink()
    calls.clear()
    r = _search(a, out, *extra)
    assert r.code == 0, r.err
    said = [line for line in r.err.splitlines() if "measured.jsonl" in line]
    assert len(said) == 1 and f"another {field} (" in said[0] and "weights" not in said[0], r.err
    assert calls and _kept(out, "measured.jsonl").is_file()
    assert _header(out / "measured.jsonl")["measured_with"][field] != _header(_kept(out, "measured.jsonl"))[
        "measured_with"][field]


# --------------------------------------------------------------------------- library
def _evaluator(net: Supernet, **settings) -> SubnetEvaluator:
    return SubnetEvaluator.for_supernet(net, {}, "digits", MeasureSettings(calib_batches=1, **settings), "cpu",
                                        warn=lambda m: None)


def test_measured_accuracy_reuses_only_a_file_of_the_same_provenance(tmp_path: Path, calls: list[str]) -> None:
    torch.manual_seed(0)
    net = Supernet(TINY_SPACE, 10).eval()
    path = tmp_path / "measured.jsonl"
    archs = [TINY_SPACE.min_arch(), TINY_SPACE.max_arch()]
    MeasuredAccuracy(TINY_SPACE, _evaluator(net), path, 10).measure(archs)
    assert len(calls) == 2
    said: list[str] = []
    again = MeasuredAccuracy(TINY_SPACE, _evaluator(net), path, 10, warn=said.append)
    assert len(again.cache) == 2 and not said
    again.measure(archs)
    assert len(calls) == 2  # reused
    other = MeasuredAccuracy(TINY_SPACE, _evaluator(net, max_images=30), path, 10, warn=said.append)
    assert len(other.cache) == 0 and len(said) == 1 and "another max_images (none; now 30)" in said[0]
    # the evaluation batch size does not change accuracy: not a reason to measure again
    said.clear()
    same = MeasuredAccuracy(TINY_SPACE, _evaluator(net, max_images=30, batch_size=7), path, 10, warn=said.append)
    assert not said and same.measured_with == other.measured_with


def test_a_header_only_file_is_started_over_without_a_word(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = Supernet(TINY_SPACE, 10).eval()
    path = tmp_path / "measured.jsonl"
    path.write_text(json.dumps({"format": "attentivenas-arch-dataset", "version": 1, "space": TINY_SPACE.to_dict(),
                                "num_classes": 10}) + "\n")
    said: list[str] = []
    ev = _evaluator(net)
    cache, appender, measured_with = open_shared_cache(path, TINY_SPACE, 10, ev, "refuse", said.append)
    assert len(cache) == 0 and not said and appender is not None
    assert _header(path)["measured_with"] == measured_with
    assert measured_with["weights"] == weights_fingerprint(net)


def test_a_part_file_of_other_measurements_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "measured.jsonl"
    pp = part_file(path, 0)
    mine = {"weights": "x", "split": "holdout"}
    pp.write_text(json.dumps({"format": "attentivenas-arch-dataset", "measured_with": mine}) + "\n")
    _drop_stale_part(pp, mine, fresh=False)
    assert pp.is_file()
    _drop_stale_part(pp, {**mine, "weights": "y"}, fresh=False)
    assert not pp.exists()
    pp.write_text(json.dumps({"format": "attentivenas-arch-dataset", "measured_with": mine}) + "\n")
    _drop_stale_part(pp, mine, fresh=True)
    assert not pp.exists()


# --------------------------------------------------------------------------- predictor build
def _build(ckpt: Path, out: Path, *extra: str):
    return run_cli("predictor", "build", "--checkpoint", str(ckpt), "--out", str(out), "--num-archs", "4",
                   *COMMON, "--json", *extra)


def test_predictor_build_refuses_a_file_of_another_checkpoint_and_fresh_starts_it_over(ckpts, tmp_path: Path,
                                                                                      calls: list[str]) -> None:
    a, b = ckpts
    data = tmp_path / "archs.jsonl"
    assert _build(a, data).code == 0
    before = data.read_text()
    calls.clear()
    r = _build(a, data)  # the same checkpoint and settings: resumed, nothing measured
    assert r.code == 0 and calls == [] and data.read_text() == before
    for other, words in ((b, "another checkpoint (weights differ)"), (a, "another calib_batches (1; now 2)")):
        extra = ["--calib-batches", "2"] if other == a else []
        r = _build(other, data, *extra)
        lines = [line for line in r.err.splitlines() if not line.startswith("warning: --split holdout")]
        assert r.code == 2 and len(lines) == 1, r.err
        assert str(data) in lines[0] and words in lines[0] and "--fresh" in lines[0]
        assert data.read_text() == before and calls == []
    r = _build(b, data, "--fresh")
    assert r.code == 0, r.err
    assert _kept(tmp_path, "archs.jsonl").read_text() == before and len(calls) == 4
    assert _header(data)["measured_with"]["weights"] != json.loads(before.splitlines()[0])["measured_with"]["weights"]
    assert len(ArchDataset.load(data)) == 4


def test_predictor_build_refuses_an_older_file_without_provenance(ckpts, tmp_path: Path) -> None:
    a, _ = ckpts
    data = tmp_path / "archs.jsonl"
    assert _build(a, data).code == 0
    lines = data.read_text().splitlines()
    header = json.loads(lines[0])
    del header["measured_with"]
    data.write_text("\n".join([json.dumps(header), *lines[1:]]) + "\n")
    r = _build(a, data)
    assert r.code == 2 and "does not record what measured it" in r.err and "--fresh" in r.err
    # predictor fit reads it as before
    r = run_cli("predictor", "fit", "--dataset", str(data), "--out", str(tmp_path / "p.json"), "--kinds", "ridge",
                "--folds", "2", "--json")
    assert r.code == 0, r.err


def test_quickstart_files_of_another_checkpoint_are_moved_aside(tmp_path: Path) -> None:
    """The quick start's search folder: a measured.jsonl of other measurements is replaced by the
    predictor's data (as a fresh run would copy it)."""
    from attentivenas.accuracy import checked_text, provenance_of

    torch.manual_seed(0)
    ev = _evaluator(Supernet(TINY_SPACE, 10).eval())
    path = tmp_path / "measured.jsonl"
    shutil.copyfile(Path(__file__), path)  # any text: no header, records
    said: list[str] = []
    assert checked_text(path, provenance_of(ev), "remeasure", said.append) == ""
    assert not path.exists() and _kept(tmp_path, "measured.jsonl").is_file() and len(said) == 1
