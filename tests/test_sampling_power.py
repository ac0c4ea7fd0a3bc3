"""benchmarks/sampling_power.py: detectable differences, the hypervolume's setters, the probe's gap
profile and resolved pairs, and the pages' sentences built from them (fast: no training)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from attentivenas.search import front_hypervolume

from .bench_helpers import load_benchmark

ARCH_A = {"resolution": 24, "width": [8], "depth": [1], "kernel_size": [3], "expand_ratio": [1]}


def _arch(i: int) -> dict[str, Any]:
    return {**ARCH_A, "width": [8 + i]}


def test_detectable_difference_is_not_the_interval_half_width() -> None:
    power = load_benchmark("sampling_power")
    sd = 0.37
    assert power.half_width(sd, 3) == pytest.approx(4.303 * sd / np.sqrt(3), rel=1e-3)
    for n in (3, 5, 10):  # 80% power needs more than the interval's half-width
        assert power.detectable(sd, n) > power.half_width(sd, n)
    assert power.detectable(sd, 5) == pytest.approx(0.63, abs=0.02)
    assert power.detectable(sd, 10) < power.detectable(sd, 5) < power.detectable(sd, 3)
    n = power.seeds_needed(sd, 0.48)
    assert power.detectable(sd, n) <= 0.48 < power.detectable(sd, n - 1)
    assert power.detectable(float("nan"), 3) == float("inf")


def test_hv_shares_sum_to_the_hypervolume_and_name_its_setters() -> None:
    power = load_benchmark("sampling_power")
    mflops, top1 = [1.0, 1.2, 2.0, 4.0, 5.0], [90.0, 92.0, 91.0, 92.5, 93.0]
    shares = power.hv_shares(mflops, top1, 1.0, 5.0)
    assert [s["mflops"] for s in shares] == [1.0, 1.2, 4.0, 5.0]  # 2.0 is dominated
    assert sum(s["share"] for s in shares) == pytest.approx(1.0)
    hv = front_hypervolume(top1, [mflops], [(1.0, 5.0)])
    assert sum(s["area"] for s in shares) == pytest.approx(hv)
    assert shares[-1]["share"] == 0.0  # the max subnet sits on the reference cost
    assert max(shares, key=lambda s: s["share"])["mflops"] == 1.2  # holds 1.2 .. 4.0 of the range


def _result(method: str, seed: int, inherited: list[float]) -> dict[str, Any]:
    return {"method": method, "seed": seed, "test_images": 10_000,
            "probe": [{"name": f"p{i}", "mflops": 1.0 + i, "arch": _arch(i), "test_top1": v}
                      for i, v in enumerate(inherited)]}


def _probe_folder(root: Path, values: list[float]) -> None:
    for i, v in enumerate(values):
        d = root / f"p{i}"
        d.mkdir(parents=True)
        (d / "result.json").write_text(json.dumps({"arch": _arch(i), "after": {"test": {"top1": v}}}))


def test_gap_profile_and_resolved_pairs(tmp_path: Path) -> None:
    power = load_benchmark("sampling_power")
    _probe_folder(tmp_path / "probe", [90.0, 90.5, 93.0, 95.0])
    _probe_folder(tmp_path / "probe-seed1", [90.4, 90.3, 93.0, 95.0])
    seeds = power.standalone_seeds(tmp_path)
    assert sorted(len(v) for v in seeds.values()) == [2, 2, 2, 2]
    sd, df = power.standalone_sd(seeds)
    assert df == 4 and sd == pytest.approx(np.sqrt((0.08 + 0.02) / 4))
    # the supernets: p0 above p2 (misranked), p1 < p3 as alone
    results = [_result("uniform", s, [92.0 + d, 90.0 + d, 91.0 + d, 93.0 + d]) for s, d in ((0, 0.0), (1, 0.2))]
    prof = power.gap_profile(results, seeds)
    gaps = {r["name"]: r["gap"] for r in prof["subnets"]}
    assert gaps["p0"] == pytest.approx(92.1 - 90.2) and gaps["p3"] == pytest.approx(93.1 - 95.0)
    assert all(r["ci95"][0] < r["gap"] < r["ci95"][1] for r in prof["subnets"])
    pairs = power.pair_signs(results, seeds)
    by = {tuple(p["pair"]): p for p in pairs["pairs"]}
    assert ("p0", "p1") not in by  # 0.2 apart: not resolved at this seed noise
    assert by[("p0", "p2")]["runs_agree"] == 0 and by[("p1", "p3")]["runs_agree"] == 2
    tau = power.tau_power(seeds, results, sims=200)
    assert 0 <= tau["noise_removed"]["power"] <= tau["as_measured"]["power"] <= 1


def test_the_page_states_labels_only_and_what_cannot_be_tested(tmp_path: Path) -> None:
    report = load_benchmark("sampling_report")
    run = tmp_path / "runs" / "uniform-s0"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("loss: {distill_warmup_epochs: 8.0}\noptim: {epochs: 8}\n"
                                     "data: {random_shift: 0, random_flip: false, batch_size: 64, eval_batch_size: 500}\n")
    facts = report.recipe_facts(tmp_path)
    assert facts["labels_only"] == 1 and facts["augmented"] == 0
    text = report.recipe_paragraph({"analysis": {"recipe": facts}})
    assert "**Labels only.**" in text and "never ran" in text and "batch 64" in text
    power = {"paired_sd_hv_front": 0.37, "paired_sd_df": 6, "power": 0.8, "alpha": 0.05, "run_hours_cpu_core": 0.66,
             "span_test": {"mean": 1.6, "min": 1.3, "max": 2.0, "runs": 12},
             "by_seeds": {3: {"half_width": 0.92, "detectable": 1.21}, 5: {"half_width": 0.46, "detectable": 0.63},
                          10: {"half_width": 0.27, "detectable": 0.37}},
             "paper": {"effect_points": [0.3, 1.0], "front_top1": [77.3, 80.7], "scaled_effect": [0.14, 0.47],
                       "seeds_needed": [55, 7], "cpu_core_hours": [72.6, 9.2]}}
    page = report.power_section({"analysis": {"power": power}, "paired_vs_uniform": {"bestup": {}}}, tmp_path)
    assert "not testable at this data and space" in page and "7 seeds (14 runs, 9 core-hours)" in page
    assert "| 5 | ± 0.46 | 0.63 |" in page and "--seeds 0,1,2,3,4,5,6" in page
    assert "ruled out" not in page
