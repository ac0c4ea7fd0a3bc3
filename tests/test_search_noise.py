"""Issue 38 item 5 and issue 42 item 5: the noise of a measured top-1 is shown (Wilson 95% intervals on
the images measured, one line when the pick is within noise of a cheaper subnet), measurements are
shared between searches of one checkpoint and split, and caches never delete a measurement; the
same subnet written twice (``3.0`` and ``3``) is one subnet in measured and probe files."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch

import attentivenas.accuracy.evaluate as evaluate_mod
from attentivenas.accuracy import (
    ArchDataset,
    checked_text,
    images_to_resolve,
    split_label,
    wilson_interval,
)
from attentivenas.accuracy.provenance import kept_path
from attentivenas.accuracy.ranking import arch_key, finetune_records
from attentivenas.errors import ConfigError, UserError
from attentivenas.nn import Supernet, save_supernet
from attentivenas.search import SearchResult
from attentivenas.search.noise import annotate_noise
from attentivenas.space import TINY_SPACE

from .cli_helpers import run_cli

SPACE = TINY_SPACE


# --------------------------------------------------------------------------- intervals
def test_wilson_interval_and_images_to_resolve() -> None:
    lo, hi = wilson_interval(50.0, 100)
    assert lo == pytest.approx(40.38, abs=0.01) and hi == pytest.approx(59.62, abs=0.01)
    lo, hi = wilson_interval(100.0, 60)
    assert hi == 100.0 and lo == pytest.approx(93.98, abs=0.01)  # never a width of zero at 100%
    assert wilson_interval(90.0, 10_000)[1] - wilson_interval(90.0, 10_000)[0] < 1.2
    n = images_to_resolve(77.0, 76.8)
    assert n is not None and n > 100_000 and images_to_resolve(90.0, 80.0) < 200
    assert images_to_resolve(80.0, 80.0) is None
    assert (split_label("holdout"), split_label("test"), split_label("val-report")) == \
        ("hold-out", "test", "test (report half)")


def _entry(mflops: float, top1: float, report: float | None = None) -> dict:
    e = {"arch": {"resolution": 1}, "mflops": mflops, "params_m": mflops / 2, "latency_ms": None,
         "accuracy": top1, "accuracy_source": "measured"}
    if report is not None:
        e.update(report_top1=report, report_split="test")
    return e


def test_a_pick_within_noise_of_a_cheaper_subnet_is_said_in_one_line() -> None:
    result = SearchResult([_entry(0.6, 90.0, 89.0), _entry(1.0, 90.5, 88.0), _entry(1.4, 91.0, 90.0)])
    noise = annotate_noise(result, "mflops", 300, "holdout", 200, "test")
    (line,) = noise["within_noise"]
    assert "\n" not in line and "hold-out top-1 91.00% at 1.4 MFLOPs" in line and "90.00% at 0.6 MFLOPs" in line
    assert "Wilson 95%" in line and "300 hold-out images" in line and "data.val_fraction" in line
    assert f"about {images_to_resolve(91.0, 90.0):,} images would resolve a 1.00-point difference" in line
    assert "test top-1 90.00% against 89.00%" in line
    lo, hi = result.pareto[0]["accuracy_ci95"]
    assert lo < 90.0 < hi and result.pareto[0]["report_top1_ci95"] == list(wilson_interval(89.0, 200))
    assert result.extra["noise"]["images"] == 300 and result.extra["noise"]["report_images"] == 200


def test_a_pick_resolved_by_enough_images_says_nothing() -> None:
    result = SearchResult([_entry(0.6, 80.0), _entry(1.4, 91.0)])
    assert annotate_noise(result, "mflops", 5_000, "test")["within_noise"] == []
    predicted = SearchResult([{**_entry(0.6, 90.0), "accuracy_source": "predicted"}, _entry(1.4, 90.1)])
    assert annotate_noise(predicted, "mflops", 100, "holdout")["within_noise"] == []  # nothing measured to compare
    assert "accuracy_ci95" not in predicted.pareto[0]


def test_the_budget_winner_is_the_pick_and_a_capped_split_says_so() -> None:
    result = SearchResult([_entry(0.6, 95.0), _entry(1.0, 95.3), _entry(1.4, 99.0)],
                          budget_winners=[{"metric": "mflops", "budget": 1.2, **_entry(1.0, 95.3)}])
    (line,) = annotate_noise(result, "mflops", 100, "holdout", split_images=900)["within_noise"]
    assert "95.30% at 1 MFLOPs" in line and "95.00% at 0.6 MFLOPs" in line and "accuracy.max_images" in line


# --------------------------------------------------------------------------- caches keep every measurement
def _dataset_text(provenance: dict, top1: float) -> str:
    header = {"format": "attentivenas-arch-dataset", "version": 1, "space": SPACE.to_dict(), "num_classes": 10,
              "measured_with": provenance}
    rec = {"arch": SPACE.min_arch().to_dict(), "accuracy": top1}
    return json.dumps(header) + "\n" + json.dumps(rec) + "\n"


def test_switching_settings_back_and_forth_deletes_no_measurement(tmp_path: Path) -> None:
    path = tmp_path / "measured.jsonl"
    a, b = {"weights": "w", "split": "holdout"}, {"weights": "w", "split": "test"}
    path.write_text(_dataset_text(a, 50.0))
    said: list[str] = []
    assert checked_text(path, b, "remeasure", said.append) == ""  # another split: measured again ...
    assert kept_path(path, a).read_text() == _dataset_text(a, 50.0)  # ... and the old file kept by its provenance
    path.write_text(_dataset_text(b, 60.0))
    assert checked_text(path, a, "remeasure", said.append) == _dataset_text(a, 50.0)  # switched back: reused
    assert path.read_text() == _dataset_text(a, 50.0) and kept_path(path, b).read_text() == _dataset_text(b, 60.0)
    assert checked_text(path, b, "remeasure", said.append) == _dataset_text(b, 60.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["measured.jsonl", kept_path(path, a).name])
    assert any("reusing 1 measurements" in s for s in said)


def test_starting_fresh_twice_keeps_both_files(tmp_path: Path) -> None:
    path = tmp_path / "archs.jsonl"
    a = {"weights": "w"}
    for top1 in (10.0, 20.0):
        path.write_text(_dataset_text(a, top1))
        assert checked_text(path, a, "fresh") == "" and not path.exists()
    kept = sorted(p.read_text() for p in tmp_path.iterdir())
    assert kept == sorted([_dataset_text(a, 10.0), _dataset_text(a, 20.0)])


# --------------------------------------------------------------------------- duplicates on the validated arch
def _float_arch() -> dict:
    d = SPACE.min_arch().to_dict()
    return {**d, "resolution": float(d["resolution"]), "width": [float(v) for v in d["width"]]}


def test_a_measured_file_with_one_subnet_twice_counts_it_once_or_is_refused(tmp_path: Path) -> None:
    header = json.dumps({"format": "attentivenas-arch-dataset", "version": 1, "space": SPACE.to_dict(),
                         "num_classes": 10})
    same = [json.dumps({"arch": SPACE.min_arch().to_dict(), "accuracy": 40.0}),
            json.dumps({"arch": _float_arch(), "accuracy": 40.0})]
    with pytest.warns(UserWarning, match="1 repeated record"):
        assert len(ArchDataset.loads("\n".join([header, *same]) + "\n", SPACE)) == 1
    other = [same[0], json.dumps({"arch": _float_arch(), "accuracy": 41.0})]
    with pytest.raises(ConfigError, match="line 3: the same subnet as line 2 with another accuracy"):
        ArchDataset.loads("\n".join([header, *other]) + "\n", SPACE)


def test_a_probe_subnet_written_as_3_and_3_0_counts_once(tmp_path: Path) -> None:
    assert arch_key(_float_arch()) == arch_key(SPACE.min_arch().to_dict())
    for name, arch in (("a", SPACE.min_arch().to_dict()), ("b", _float_arch())):
        (tmp_path / "probe" / name).mkdir(parents=True)
        (tmp_path / "probe" / name / "result.json").write_text(json.dumps({"arch": arch, "after": {"test": {"top1": 70}}}))
    assert len(finetune_records(tmp_path / "probe")) == 1
    (tmp_path / "probe" / "c").mkdir()
    (tmp_path / "probe" / "c" / "result.json").write_text(json.dumps({"arch": _float_arch(),
                                                                    "after": {"test": {"top1": 71}}}))
    with pytest.raises(UserError, match="the same subnet as .* with other results"):
        finetune_records(tmp_path / "probe")


# --------------------------------------------------------------------------- the printed front, shared measurements
@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    return save_supernet(tmp_path_factory.mktemp("ckpt") / "tiny.pt", Supernet(SPACE, 10))


def test_the_printed_front_shows_both_splits_with_intervals_and_searches_share_measurements(
        ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    real = evaluate_mod.evaluate_arch

    def counting(supernet, arch, *args, **kw):
        seen.append(arch.key())
        return real(supernet, arch, *args, **kw)

    monkeypatch.setattr(evaluate_mod, "evaluate_arch", counting)
    args = ["search", "--checkpoint", str(ckpt), "--data", "digits", "--calib-batches", "1", "--device", "cpu",
            "--accuracy", "measured", "--pop-size", "4", "--generations", "1", "--report-split", "test",
            "--threads", "1"]
    r = run_cli(*args, "--out", str(tmp_path / "a"))
    assert r.code == 0, r.err
    assert "hold-out top-1" in r.out and "test top-1" in r.out and "Wilson 95% intervals" in r.out
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["noise"]["images"] > 0 and summary["noise"]["report_images"] > 0
    front = json.loads((tmp_path / "a" / "pareto.json").read_text())
    assert all(len(e["accuracy_ci95"]) == 2 and len(e["report_top1_ci95"]) == 2 for e in front)
    assert (tmp_path / "a" / "measured_test.jsonl").is_file()  # the report split's measurements are cached
    first = len(seen)
    assert first and list((ckpt.parent / "measured").glob("*.jsonl"))
    r = run_cli(*args, "--out", str(tmp_path / "b"))  # another search of the same checkpoint and splits
    assert r.code == 0, r.err
    assert len(seen) == first  # nothing measured again
    assert json.loads((tmp_path / "b" / "pareto.json").read_text()) == front
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert len(ArchDataset.load(tmp_path / "b" / "measured.jsonl")) == len(
            ArchDataset.load(tmp_path / "a" / "measured.jsonl"))


def test_the_quick_start_table_gives_each_top1_its_interval(tmp_path: Path) -> None:
    from attentivenas.pipeline import PipelineResult, format_summary

    models = [{"file": "subnet_00.pt2", "mflops": 0.6, "params_m": 0.3, "val_top1": 90.0, "test_top1": 88.0,
               "accuracy_source": "measured", "format": "torch-export"}]
    noise = {"images": 300, "test_images": 500, "within_noise": ["the pick ... is within noise of a cheaper subnet"]}
    text = format_summary(PipelineResult(tmp_path, tmp_path / "last.pt", tmp_path / "p.json", {"best": "rf"}, [], 0.5,
                                         models, noise=noise))
    lo, hi = wilson_interval(90.0, 300)
    tlo, thi = wilson_interval(88.0, 500)
    row = next(line for line in text.splitlines() if line.startswith("subnet_00.pt2"))
    assert f"[{lo:.1f}, {hi:.1f}]" in row and f"[{tlo:.1f}, {thi:.1f}]" in row
    assert "Wilson intervals, binomial on 300 hold-out and 500 test images" in text
    assert "noise: the pick ... is within noise of a cheaper subnet" in text
