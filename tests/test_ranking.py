"""The ranking probe: inherited vs standalone top-1 (Kendall tau, Spearman rho, gap) and `attentivenas ranking`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from scipy.stats import kendalltau

from attentivenas.accuracy.ranking import (
    MIN_PROBES,
    ProbeSet,
    ProbeSubnet,
    arch_key,
    finetuned_top1,
    measure_ranking,
    ranking_report,
    read_probe_set,
)
from attentivenas.errors import UserError
from attentivenas.nn import Supernet, save_supernet
from attentivenas.space import TINY_SPACE

from .cli_helpers import run_cli


def test_report_of_a_perfect_and_a_reversed_ranking() -> None:
    same = ranking_report(["a", "b", "c", "d"], [1, 2, 3, 4], [70, 75, 80, 85], [72, 76, 79, 88])
    assert same["kendall_tau"] == pytest.approx(1.0) and same["spearman_rho"] == pytest.approx(1.0)
    assert [r["gap"] for r in same["subnets"]] == [-2.0, -1.0, 1.0, -3.0]
    assert same["mean_gap"] == pytest.approx(-1.25) and same["mean_abs_gap"] == pytest.approx(1.75)
    rev = ranking_report(["a", "b", "c", "d"], [1, 2, 3, 4], [85, 80, 75, 70], [72, 76, 79, 88])
    assert rev["kendall_tau"] == pytest.approx(-1.0) and rev["spearman_rho"] == pytest.approx(-1.0)


def test_report_matches_scipy_with_ties_and_is_undefined_when_constant() -> None:
    x, y = [80, 80, 82, 81, 79, 90], [70, 71, 72, 70, 69, 75]
    r = ranking_report(list("abcdef"), range(6), x, y)
    assert r["kendall_tau"] == pytest.approx(kendalltau(x, y).statistic)
    assert 0.0 <= r["kendall_p"] <= 1.0
    flat = ranking_report(list("abc"), [1, 2, 3], [50, 50, 50], [60, 70, 80])
    assert flat["kendall_tau"] is None and flat["spearman_rho"] is None and flat["mean_gap"] == pytest.approx(-20)


def _probe_file(tmp_path: Path, records, split: str | None = "holdout", name: str = "probe.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps({"split": split, "subnets": records} if split else records))
    return path


def _records(n: int = 4) -> list[dict]:
    archs = [TINY_SPACE.min_arch(), TINY_SPACE.max_arch()]
    return [{"name": f"p{i}", "arch": archs[i % 2].to_dict(), "top1": 60.0 + 5 * i} for i in range(n)]


def test_probe_files_json_and_json_lines(tmp_path: Path) -> None:
    probes = read_probe_set(_probe_file(tmp_path, _records()), TINY_SPACE)
    assert probes.split == "holdout" and [p.standalone_top1 for p in probes.subnets] == [60, 65, 70, 75]
    lines = tmp_path / "probe.jsonl"
    lines.write_text("\n".join(json.dumps(r) for r in _records()) + "\n")
    assert read_probe_set(lines, TINY_SPACE).subnets == probes.subnets


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda rs: rs[:MIN_PROBES - 1], "a probe set has 3 to"),
    (lambda rs: [*rs[:3], {**rs[3], "top1": 101}], "'top1' must be a number in [0, 100]"),
    (lambda rs: [*rs[:3], {**rs[3], "top1": True}], "'top1' must be a number"),
    (lambda rs: [*rs[:3], {"name": "x", "top1": 50}], "expected an object with 'arch' and 'top1'"),
    (lambda rs: [*rs[:3], {**rs[3], "arch": {**rs[3]["arch"], "resolution": 224}}], "subnet 3: arch field 'resolution'"),
])
def test_bad_probe_files_are_one_line_user_errors(tmp_path: Path, mutate, message: str) -> None:
    with pytest.raises(UserError, match=None) as info:
        read_probe_set(_probe_file(tmp_path, mutate(_records())), TINY_SPACE)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_missing_or_malformed_probe_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not found|No such|does not exist"):
        read_probe_set(tmp_path / "none.json", TINY_SPACE)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(UserError, match="neither JSON nor JSON lines"):
        read_probe_set(bad, TINY_SPACE)


def test_measure_ranking_calls_the_evaluator_per_subnet() -> None:
    archs = [TINY_SPACE.min_arch(), TINY_SPACE.max_arch(), TINY_SPACE.min_arch()]
    probes = ProbeSet(tuple(ProbeSubnet(f"p{i}", a, 50.0 + i) for i, a in enumerate(archs)))
    seen = []
    report = measure_ranking(probes, lambda a: 40.0 + len(seen), TINY_SPACE, 10,
                             progress=lambda i, n, p, v: seen.append((i, n, p.name, v)))
    assert [s[:3] for s in seen] == [(1, 3, "p0"), (2, 3, "p1"), (3, 3, "p2")]
    assert report["n"] == 3 and report["subnets"][1]["mflops"] > report["subnets"][0]["mflops"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ranking") / "tiny.pt"
    save_supernet(path, Supernet(TINY_SPACE, 10))
    return path


def test_cli_ranking_json_and_split_mismatch(checkpoint: Path, tmp_path: Path) -> None:
    probe = _probe_file(tmp_path, _records(), split="test")
    common = ["--checkpoint", str(checkpoint), "--probe", str(probe), "--data", "digits", "--calib-batches", "1",
              "--calib-batch-size", "16", "--max-images", "40", "--device", "cpu"]
    r = run_cli("ranking", *common, "--json")
    assert r.code == 0, r.err
    out = json.loads(r.out)
    assert out["split"] == "test" and out["n"] == 4 and len(out["subnets"]) == 4
    inherited = [s["inherited_top1"] for s in out["subnets"]]
    assert inherited[0] == inherited[2] and inherited[1] == inherited[3]  # the same arch measures the same
    r = run_cli("ranking", *common, "--split", "holdout")
    assert r.code == 2 and "measured on the 'test' split" in r.err and len(r.err.strip().splitlines()) == 1


def test_a_finetune_index_is_a_probe_file(tmp_path: Path) -> None:
    archs = [TINY_SPACE.min_arch(), TINY_SPACE.max_arch(), TINY_SPACE.min_arch()]
    index = [{"folder": f"subnet_{i:03d}", "arch": a.to_dict(), "mflops": 1.0,
              "before": {"holdout": {"top1": 50.0}, "test": {"top1": 51.0}},
              "after": {"holdout": {"top1": 70.0 + i}, "test": {"top1": 80.0 + i}}} for i, a in enumerate(archs)]
    path = tmp_path / "index.json"
    path.write_text(json.dumps(index))
    probes = read_probe_set(path, TINY_SPACE)
    assert probes.split == "test" and [p.standalone_top1 for p in probes.subnets] == [80.0, 81.0, 82.0]
    assert [p.name for p in probes.subnets] == ["subnet_000", "subnet_001", "subnet_002"]
    holdout = read_probe_set(path, TINY_SPACE, "holdout")
    assert holdout.split == "holdout" and holdout.subnets[0].standalone_top1 == 70.0
    with pytest.raises(UserError, match="no top-1 on the 'val-search' split"):
        read_probe_set(path, TINY_SPACE, "val-search")


def _finetune_result(arch: dict, test_top1: float) -> dict:
    return {"arch": arch, "mflops": 1.0, "before": {"test": {"top1": 10.0}}, "after": {"test": {"top1": test_top1}}}


def test_a_folder_of_finetune_runs_is_a_probe_set(tmp_path: Path) -> None:
    """One finetune --arch run per subnet folder (a probe trained over several sessions), a --pareto
    index beside them: each subnet once, named by its folder."""
    import numpy as np

    archs = [TINY_SPACE.min_arch(), TINY_SPACE.max_arch(), TINY_SPACE.sample(np.random.default_rng(1))]
    for name, a, top1 in (("p0", archs[0], 80.0), ("p1", archs[1], 85.0)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "result.json").write_text(json.dumps(_finetune_result(a.to_dict(), top1)))
    with pytest.raises(UserError, match="2 subnets; a probe set has 3"):
        read_probe_set(tmp_path, TINY_SPACE)
    # ... while a probe being trained is read without a minimum, by arch
    assert finetuned_top1(tmp_path) == {arch_key(archs[0].to_dict()): 80.0, arch_key(archs[1].to_dict()): 85.0}
    with pytest.raises(UserError, match="subnet p0: the fine-tuning record has no top-1 on the 'holdout' split"):
        finetuned_top1(tmp_path, "holdout")
    index = [{"folder": "subnet_000", **_finetune_result(archs[2].to_dict(), 83.0)},
             {"folder": "subnet_001", **_finetune_result(archs[0].to_dict(), 80.0)}]  # p0 again: counted once
    (tmp_path / "index.json").write_text(json.dumps(index))
    probes = read_probe_set(tmp_path, TINY_SPACE, "test")
    assert sorted((p.name, p.standalone_top1) for p in probes.subnets) == [
        ("p1", 85.0), ("subnet_000", 83.0), ("subnet_001", 80.0)]
    assert probes.split == "test"
    # the same subnet with other results, or a damaged file, is one line naming the file
    index[1]["after"] = {"test": {"top1": 79.0}}
    (tmp_path / "index.json").write_text(json.dumps(index))
    with pytest.raises(UserError, match="p0/result.json: the same subnet as .*index.json, entry 1 with other results"):
        read_probe_set(tmp_path, TINY_SPACE)
    (tmp_path / "index.json").write_text("[{")
    with pytest.raises(UserError, match="probe index .*index.json is not valid JSON"):
        read_probe_set(tmp_path, TINY_SPACE)
