"""Latency: measurement, op signatures, the per-op table (prediction, fit, errors) and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from attentivenas.costs import layer_specs
from attentivenas.errors import UserError
from attentivenas.latency import (
    LatencyTable,
    OpSig,
    arch_ops,
    build_latency_table,
    fit_overhead,
    measure_archs,
    measure_latency,
    op_module,
    space_signatures,
    table_error,
    time_in_passes,
)
from attentivenas.nn import Supernet
from attentivenas.runtimes.runners import Runner
from attentivenas.space import ATTENTIVENAS_SPACE, TINY_SPACE

from .cli_helpers import run_cli
from .synthetic import synthetic_latency_table


def test_measure_latency_states_setting_and_restores_threads() -> None:
    before = torch.get_num_threads()
    model = torch.nn.Conv2d(3, 4, 3)
    res = measure_latency(model, (2, 3, 8, 8), "cpu", warmup=1, repeats=5, threads=2)
    assert res.median_ms > 0 and res.p90_ms >= res.median_ms
    assert (res.batch, res.threads, res.device, res.repeats, res.clock) == (2, 2, "cpu", 5, "wall")
    assert torch.get_num_threads() == before
    cpu = measure_latency(model, (1, 3, 8, 8), "cpu", warmup=0, repeats=3, threads=1, rounds=2, clock="cpu")
    assert cpu.clock == "cpu" and cpu.repeats == 6 and cpu.median_ms > 0
    with pytest.raises(UserError, match="threads 1"):
        measure_latency(model, (1, 3, 8, 8), "cpu", repeats=1, threads=2, clock="cpu")
    with pytest.raises(UserError, match="repeats"):
        measure_latency(model, (1, 3, 8, 8), "cpu", repeats=0)


def test_arch_ops_follow_layer_specs() -> None:
    rng = np.random.default_rng(0)
    sigs = space_signatures(TINY_SPACE, 10)
    for _ in range(30):
        arch = TINY_SPACE.sample(rng)
        ops = arch_ops(TINY_SPACE, arch, 10)
        layers = layer_specs(TINY_SPACE, arch, 10)
        kinds = [o.kind for o in ops]
        assert kinds.count("depthwise") == kinds.count("residual") == sum(arch.depth)
        assert kinds.count("expand") == sum(1 for layer in layers if layer.kind == "expand")
        se = [o.se for o in ops if o.kind == "depthwise" and o.se]
        assert se == [layer.c_out for layer in layers if layer.kind == "se_reduce"]
        assert kinds[0] == "first_conv" and kinds[-4:] == ["final_expand", "pool", "feature_mix", "classifier"]
        assert set(ops) <= sigs  # the whole-space enumeration covers every arch


def test_op_modules_run_at_their_shapes() -> None:
    for sig in [OpSig("depthwise", 48, 48, 5, 2, 7, 16), OpSig("residual", 16, 24, 1, 2, 7),
                OpSig("residual", 24, 24, 1, 1, 4), OpSig("classifier", 320, 10)]:
        module, shape = op_module(sig)
        y = module.eval()(torch.randn(2, *shape))
        out_size = -(-sig.size_in // sig.stride)
        expected = (2, sig.c_out) if sig.kind == "classifier" else (2, sig.c_out, out_size, out_size)
        assert tuple(y.shape) == expected


def test_predict_sums_ops_and_vectorised_matches() -> None:
    table = synthetic_latency_table(overhead_ms=0.5, per_block_ms=0.1)
    rng = np.random.default_rng(1)
    genes = TINY_SPACE.sample_genes(rng, 64)
    fast = table.predict_genes(TINY_SPACE, genes)
    np.testing.assert_array_equal(table.gene_fn(TINY_SPACE)(genes), fast)
    for row, value in zip(genes, fast, strict=True):
        arch = TINY_SPACE.decode(row)
        by_hand = sum(table.entries[o.key()] for o in arch_ops(TINY_SPACE, arch, 10)) + 0.5 + 0.1 * sum(arch.depth)
        assert table.predict(TINY_SPACE, arch) == pytest.approx(by_hand, rel=1e-12)
        assert value == pytest.approx(by_hand, rel=1e-12)


def test_fit_overhead_recovers_constant_and_per_block() -> None:
    table = synthetic_latency_table()
    rng = np.random.default_rng(2)
    archs = [TINY_SPACE.sample(rng) for _ in range(6)]
    measured = [table.predict(TINY_SPACE, a) + 0.3 + 0.05 * sum(a.depth) for a in archs]
    fit_overhead(table, TINY_SPACE, archs, measured)
    assert table.overhead_ms == pytest.approx(0.3, abs=1e-9)
    assert table.per_block_ms == pytest.approx(0.05, abs=1e-9)
    assert table_error(table, TINY_SPACE, archs, measured) == pytest.approx(0.0, abs=1e-9)
    fit_overhead(table, TINY_SPACE, archs[:2], measured[:2])  # too few archs: a constant only
    assert table.per_block_ms == 0.0


def test_a_fit_on_inflated_op_times_still_writes_a_table_its_loader_accepts() -> None:
    """CI 2026-12-08: 2 calibration subnets timed far below their summed (load-inflated) op times
    gave overhead -17.8 ms against a 4 ms max subnet, and build-table wrote a table load() refused."""
    from attentivenas.latency import MIN_FRACTION, fit_models

    table = synthetic_latency_table()
    rng = np.random.default_rng(3)
    calib = [TINY_SPACE.sample(rng) for _ in range(8)]
    measured = [table.predict(TINY_SPACE, a) for a in calib]  # what the subnets took
    top = table.predict(TINY_SPACE, TINY_SPACE.max_arch())
    in_max = {op.key() for op in arch_ops(TINY_SPACE, TINY_SPACE.max_arch(), 10)}
    table.entries = {k: v if k in in_max else 50 * v for k, v in table.entries.items()}  # ops timed under load
    table.clear_cache()
    with pytest.warns(UserWarning, match="inflated"):
        fit_models(table, TINY_SPACE, calib, measured, "sum")
    assert table.meta["fits"]["sum"]["lifted_ms"] > 0
    assert table.predict(TINY_SPACE, TINY_SPACE.max_arch()) == pytest.approx(MIN_FRACTION * top, rel=1e-6)
    LatencyTable.from_dict(json.loads(json.dumps(table.to_dict())))  # check_times passes
    honest = synthetic_latency_table()
    fit_models(honest, TINY_SPACE, calib, [honest.predict(TINY_SPACE, a) - 0.01 for a in calib], "sum")
    assert "lifted_ms" not in honest.meta["fits"]["sum"]


def test_table_error_is_mape() -> None:
    table = synthetic_latency_table()
    archs = [TINY_SPACE.min_arch(), TINY_SPACE.max_arch()]
    pred = [table.predict(TINY_SPACE, a) for a in archs]
    assert table_error(table, TINY_SPACE, archs, [p * 1.25 for p in pred]) == pytest.approx(20.0)
    assert table_error(table, TINY_SPACE, archs, [pred[0] * 2, pred[1] / 2]) == pytest.approx(75.0)
    with pytest.raises(UserError, match="one measured latency per arch"):
        table_error(table, TINY_SPACE, archs, [1.0])


def test_save_load_round_trip(tmp_path) -> None:
    table = synthetic_latency_table(overhead_ms=0.2, per_block_ms=0.01, device="cpu", threads=1, batch=4)
    path = table.save(tmp_path / "table.json")
    loaded = LatencyTable.load(path)
    assert loaded.entries == table.entries and loaded.batch == 4 and loaded.per_block_ms == 0.01
    genes = TINY_SPACE.sample_genes(np.random.default_rng(3), 10)
    np.testing.assert_allclose(loaded.predict_genes(TINY_SPACE, genes), table.predict_genes(TINY_SPACE, genes))
    (tmp_path / "bad.json").write_text('{"format": "something else"}')
    with pytest.raises(UserError, match="not an attentivenas latency table"):
        LatencyTable.load(tmp_path / "bad.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(UserError, match="not valid JSON"):
        LatencyTable.load(tmp_path / "broken.json")
    with pytest.raises(UserError, match="not found"):
        LatencyTable.load(tmp_path / "missing.json")


def test_table_of_another_space_or_missing_op_is_an_error() -> None:
    table = synthetic_latency_table()
    with pytest.raises(UserError, match="built for space 'tiny'"):
        table.predict(ATTENTIVENAS_SPACE, ATTENTIVENAS_SPACE.min_arch())
    with pytest.raises(UserError, match="built for space 'tiny'"):
        table.predict_genes(ATTENTIVENAS_SPACE, ATTENTIVENAS_SPACE.sample_genes(np.random.default_rng(0), 2))
    arch = TINY_SPACE.max_arch()
    missing = arch_ops(TINY_SPACE, arch, 10)[3]
    del table.entries[missing.key()]
    table._luts.clear()
    with pytest.raises(UserError, match=f"no entry for op {missing.key()}"):
        table.predict(TINY_SPACE, arch)
    with pytest.raises(UserError, match="no entry for op"):
        table.predict_genes(TINY_SPACE, TINY_SPACE.encode(arch)[None, :])


def test_build_table_for_given_archs(tiny_net: Supernet) -> None:
    arch = TINY_SPACE.min_arch()
    table = build_latency_table(TINY_SPACE, "cpu", 1, [arch], num_classes=10, threads=1, warmup=0, repeats=2,
                                calibration_archs=2, seed=0, progress=False, supernet=tiny_net)
    needed = {o.key() for o in arch_ops(TINY_SPACE, arch, 10)}
    assert needed <= set(table.entries) and all(v > 0 for v in table.entries.values())
    assert table.meta["calibration_archs"] == 2 and table.threads == 1 and table.device == "cpu"
    assert table.predict(TINY_SPACE, arch) > 0
    measured = measure_archs(TINY_SPACE, [arch], "cpu", 1, 1, 0, 2, passes=2, num_classes=10, supernet=tiny_net)
    assert len(measured) == 1 and measured[0] > 0
    with pytest.raises(UserError, match="op signatures"):
        build_latency_table(ATTENTIVENAS_SPACE, "cpu", archs=None, max_signatures=10, progress=False)


def test_time_in_passes_times_every_runner_each_pass_in_a_seeded_order() -> None:
    calls: list[int] = []
    runners = [Runner("torch", (lambda i=i: calls.append(i)), 1) for i in range(5)]
    times = time_in_passes(runners, warmup=1, repeats=[2, 2, 2, 2, 7], passes=3, seed=4)
    assert len(times) == 5 and all(t >= 0 for t in times)
    assert [calls.count(i) for i in range(5)] == [9, 9, 9, 9, 24]  # (warmup + repeats) x passes
    order = [i for j, i in enumerate(calls) if j == 0 or calls[j - 1] != i]  # runner order, pass after pass
    assert sorted(order[:5]) == list(range(5)) and order[:5] != order[5:10]  # shuffled differently per pass
    calls.clear()
    time_in_passes(runners, warmup=1, repeats=2, passes=3, seed=4)
    assert [i for j, i in enumerate(calls) if j == 0 or calls[j - 1] != i] == order


def test_local_reference_is_the_mean_of_the_points_either_side() -> None:
    from attentivenas.latency.drift import local_reference

    got = local_reference([(0, 1.0), (2, 3.0), (4, 5.0)], 4)
    assert got.tolist() == [2.0, 2.0, 4.0, 4.0]


def test_drift_reference_cancels_a_linear_drift(monkeypatch: pytest.MonkeyPatch) -> None:
    """The machine slows down call after call (linearly, and from pass to pass): the times of a
    reference timed between the runners bring back their true ratios, the lowest median does not."""
    from attentivenas.latency import measure
    from attentivenas.latency.drift import DriftReference

    calls = [0]
    base = {0: 1.0, 1: 2.0, 2: 5.0}

    def fake_time(runner: Runner, warmup: int, repeats: int, rounds: int = 1, clock: str = "wall") -> np.ndarray:
        calls[0] += 1
        return np.full(repeats, runner.run() * (1.0 + 0.05 * calls[0]))

    monkeypatch.setattr(measure, "time_runner", fake_time)
    runners = [Runner("torch", (lambda b=b: b), 1) for b in base.values()]
    ref = DriftReference(Runner("torch", lambda: 4.0, 1), lambda r, w, n: fake_time(r, w, n), every_s=0.0)
    got = time_in_passes(runners, 0, 3, passes=3, seed=1, reference=ref)
    assert got[1] / got[0] == pytest.approx(2.0) and got[2] / got[0] == pytest.approx(5.0)
    assert len(ref.points) == 3 * 4 and ref.runs == 5  # before every runner and after each pass; 20 ms / 4 ms
    plain = time_in_passes(runners, 0, 3, passes=3, seed=1)
    assert plain[2] / plain[0] != pytest.approx(5.0, rel=0.02)


def test_build_table_reports_the_holdout_error_of_each_model(tiny_net: Supernet) -> None:
    held = [TINY_SPACE.max_arch()]
    table = build_latency_table(TINY_SPACE, "cpu", 1, [TINY_SPACE.min_arch()], num_classes=10, threads=1, warmup=0,
                                repeats=2, calibration_archs=3, progress=False, supernet=tiny_net, holdout=held)
    assert table.covers(TINY_SPACE, held[0])  # the held-out arch's ops were measured
    assert len(table.meta["calibration_subnets"]) == 3 and table.meta["holdout_archs"] == 1
    assert table.meta["holdout_subnets"][0]["arch"] == held[0].to_dict()
    measured = [r["ms"] for r in table.meta["holdout_subnets"]]
    assert table.meta["holdout_mape_by_model"] == {"sum": pytest.approx(table_error(table, TINY_SPACE, held, measured))}
    assert table.meta["holdout_mape_percent"] == table.meta["holdout_mape_by_model"]["sum"]


def test_a_table_rebuilt_from_its_dict_shares_no_meta_with_it() -> None:
    table = synthetic_latency_table()
    table.meta["holdout_subnets"] = [{"arch": TINY_SPACE.min_arch().to_dict(), "ms": 1.0}]
    copy = LatencyTable.from_dict(table.to_dict())
    copy.meta["holdout_subnets"][0]["ms"] = 2.0
    assert table.meta["holdout_subnets"][0]["ms"] == 1.0


def test_cli_latency_measure_and_build_table(tmp_path) -> None:
    out = tmp_path / "table.json"
    r = run_cli("latency", "build-table", "--space", "tiny", "--archs", "1", "--warmup", "0", "--repeats", "1",
                "--calibration-archs", "0", "--holdout-archs", "0", "--num-classes", "10", "--out", str(out), "--json")
    assert r.code == 0, r.err
    info = json.loads(r.out)
    assert info["ops"] == len(LatencyTable.load(out).entries) > 0 and info["threads"] == 1
    assert info["holdout_archs"] == 0 and info["holdout_mape_percent"] is None
    ref = LatencyTable.load(out).meta["drift_reference"]
    assert ref == info["drift_reference"] and ref["points"] >= 2 and ref["min_ms"] <= ref["typical_ms"] <= ref["max_ms"]
    plain = tmp_path / "plain.json"
    r = run_cli("latency", "build-table", "--space", "tiny", "--archs", "1", "--warmup", "0", "--repeats", "1",
                "--calibration-archs", "0", "--holdout-archs", "0", "--num-classes", "10", "--no-drift-correction",
                "--out", str(plain), "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["drift_reference"] is None and LatencyTable.load(plain).meta["drift_reference"] is None
    r = run_cli("latency", "measure", "--arch", "min", "--space", "tiny", "--repeats", "2", "--warmup", "0",
                "--threads", "1", "--num-classes", "10", "--table", str(out), "--json")
    assert r.code == 0, r.err
    res = json.loads(r.out)
    assert res["latency_ms"] > 0 and res["batch"] == 1 and res["threads"] == 1 and res["predicted_ms"] > 0
    assert res["peak_activation_mb"] > 0 and res["weight_mb"] > 0
    r = run_cli("latency", "measure", "--arch", "a0", "--table", str(out), "--repeats", "1")
    assert r.code == 2 and "built for space 'tiny'" in r.err and len(r.err.strip().splitlines()) == 1
    r = run_cli("latency", "measure", "--arch", "min", "--space", "tiny", "--device", "tpu")
    assert r.code == 2 and "device" in r.err


def test_cli_build_table_reports_holdout_error(tmp_path) -> None:
    out = tmp_path / "whole.json"
    r = run_cli("latency", "build-table", "--space", "tiny", "--warmup", "0", "--repeats", "1",
                "--calibration-archs", "2", "--holdout-archs", "2", "--num-classes", "10", "--out", str(out), "--json")
    assert r.code == 0, r.err
    info = json.loads(r.out)
    assert info["holdout_archs"] == 2 and 0.0 < info["holdout_mape_percent"] < 1e4
    assert LatencyTable.load(out).meta["holdout_mape_percent"] == pytest.approx(info["holdout_mape_percent"], rel=1e-3)


def test_a_build_whose_subnets_cannot_all_be_loaded_is_refused_before_exporting() -> None:
    """2026-12-08: 250 attentivenas subnets (15.3 GB of fp32 weights) were killed by the kernel past
    22 GB, after minutes of exporting; now one line first, naming the flags to lower."""
    from attentivenas.latency.build import check_loaded_memory

    rng = np.random.default_rng(0)
    subnets = [ATTENTIVENAS_SPACE.sample(rng) for _ in range(20)]  # about 1.2 GB of fp32 weights
    with pytest.raises(UserError, match=r"loads its 20 whole subnets at once.*--calibration-archs, --holdout-archs"):
        check_loaded_memory(ATTENTIVENAS_SPACE, subnets, "fp32", 1000, available=2_000_000_000)
    check_loaded_memory(ATTENTIVENAS_SPACE, subnets, "int8", 1000, available=2_000_000_000)  # a quarter: fits
    check_loaded_memory(ATTENTIVENAS_SPACE, subnets, "fp32", 1000, available=None)  # unknown: not refused
