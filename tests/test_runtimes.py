"""Latency in deployment runtimes: runners, missing extras, tables that record their runtime, the
per-call cost and the scaled model, the search's check of a table's setting, and the CLI."""

from __future__ import annotations

import importlib
import json

import numpy as np
import pytest
import torch

from attentivenas import accuracy as P
from attentivenas.errors import UserError
from attentivenas.latency import (
    MIN_FRACTION,
    OP_GROUPS,
    RUNTIMES,
    LatencyTable,
    OpSig,
    arch_ops,
    build_latency_table,
    check_runtime,
    fit_models,
    measure_latency,
    refit_table,
    table_error,
)
from attentivenas.latency.build import _runners_exported_apart
from attentivenas.latency.fit import FACTOR_BOUNDS, _scaled_coefficients, _scaled_design
from attentivenas.latency.fit import subnet_records as _subnet_records
from attentivenas.latency.measure import arch_inputs, random_subnet, seeded_supernet
from attentivenas.latency.ops import op_input, seeded_op_module
from attentivenas.runtimes.programs import MissingRuntimeError
from attentivenas.runtimes.records import is_available
from attentivenas.space import TINY_SPACE

from .cli_helpers import run_cli
from .synthetic import synthetic_latency_table

needs_executorch = pytest.mark.skipif(not is_available("executorch"),
                                      reason="executorch not installed (pip install 'attentivenas[executorch]')")
needs_openvino = pytest.mark.skipif(not is_available("openvino"),
                                    reason="openvino not installed (pip install 'attentivenas[openvino]')")


def _conv() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.ReLU())


@pytest.fixture
def no_executorch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``import executorch`` fail, as on a base install."""
    real = importlib.import_module

    def fake(name: str, *args, **kwargs):
        if name.split(".")[0] == "executorch":
            raise ImportError("No module named 'executorch'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", fake)


# --------------------------------------------------------------------------- runners
def test_unknown_runtime_and_device_are_user_errors() -> None:
    with pytest.raises(UserError, match="unknown runtime 'tflite'; use one of torch, onnxruntime"):
        check_runtime("tflite")
    if torch.cuda.is_available():
        with pytest.raises(UserError, match="measured on the CPU"):
            check_runtime("onnxruntime", "cuda")
    with pytest.raises(UserError, match="not available for runtime 'openvino'"):
        measure_latency(_conv(), (1, 8, 4, 4), runtime="openvino", threads=1, clock="cpu", repeats=1)


def test_missing_runtime_names_its_extra(no_executorch: None) -> None:
    with pytest.raises(MissingRuntimeError, match=r"pip install 'attentivenas\[executorch\]'"):
        check_runtime("executorch")
    assert not is_available("executorch")
    r = run_cli("latency", "measure", "--arch", "min", "--space", "tiny", "--runtime", "executorch", "--repeats", "1")
    assert r.code == 2 and "attentivenas[executorch]" in r.err and len(r.err.strip().splitlines()) == 1


def test_onnxruntime_measurement_states_runtime_and_threads() -> None:
    before = torch.get_num_threads()
    res = measure_latency(_conv(), (2, 8, 6, 6), runtime="onnxruntime", threads=1, warmup=1, repeats=4, rounds=2)
    assert (res.runtime, res.threads, res.batch, res.repeats, res.device) == ("onnxruntime", 1, 2, 8, "cpu")
    assert 0 < res.median_ms <= res.p90_ms and res.to_dict()["runtime"] == "onnxruntime"
    cpu = measure_latency(_conv(), (1, 8, 6, 6), runtime="onnxruntime", threads=1, warmup=0, repeats=2, clock="cpu")
    assert cpu.clock == "cpu" and cpu.median_ms > 0
    assert torch.get_num_threads() == before


@needs_openvino
def test_openvino_measurement() -> None:
    res = measure_latency(_conv(), (1, 8, 6, 6), runtime="openvino", threads=1, warmup=1, repeats=3)
    assert res.runtime == "openvino" and res.threads == 1 and res.median_ms > 0


@needs_executorch
@pytest.mark.slow
def test_executorch_measurement() -> None:
    res = measure_latency(_conv(), (1, 8, 6, 6), runtime="executorch", threads=1, warmup=1, repeats=3)
    assert res.runtime == "executorch" and res.threads == 1 and res.median_ms > 0


# --------------------------------------------------------------------------- tables
def test_table_records_its_setting_and_refuses_another(tmp_path) -> None:
    table = synthetic_latency_table(runtime="onnxruntime", runtime_version="1.0", batch=1, threads=1, call_ms=0.002)
    loaded = LatencyTable.load(table.save(tmp_path / "t.json"))
    assert loaded.setting() == table.setting() and loaded.call_ms == 0.002 and loaded.runtime == "onnxruntime"
    loaded.check_setting(runtime="onnxruntime", batch=1, threads=1, num_classes=10)
    with pytest.raises(UserError, match=r"runtime 'onnxruntime' \(asked: 'torch'\), batch 1 \(asked: 32\)"):
        loaded.check_setting(runtime="torch", batch=32)
    old = json.loads((tmp_path / "t.json").read_text())
    for key in ("runtime", "runtime_version", "call_ms", "model", "group_scale"):
        del old[key]
    (tmp_path / "v1.json").write_text(json.dumps(old | {"version": 1}))
    assert LatencyTable.load(tmp_path / "v1.json").runtime == "torch"  # first tables: PyTorch eager
    (tmp_path / "bad.json").write_text(json.dumps(old | {"runtime": "tflite"}))
    with pytest.raises(UserError, match="runtime 'tflite' is not one of"):
        LatencyTable.load(tmp_path / "bad.json")
    (tmp_path / "bad2.json").write_text(json.dumps(old | {"group_scale": {"conv": -1}}))
    with pytest.raises(UserError, match="group_scale"):
        LatencyTable.load(tmp_path / "bad2.json")


def test_call_cost_is_paid_once_per_subnet_not_per_op() -> None:
    table = synthetic_latency_table(call_ms=0.004, overhead_ms=0.01)
    genes = TINY_SPACE.sample_genes(np.random.default_rng(4), 32)
    fast = table.predict_genes(TINY_SPACE, genes)
    for row, value in zip(genes, fast, strict=True):
        arch = TINY_SPACE.decode(row)
        ops = [table.entries[o.key()] for o in arch_ops(TINY_SPACE, arch, 10)]
        by_hand = sum(max(v - 0.004, MIN_FRACTION * v) for v in ops) + 0.01
        assert table.predict(TINY_SPACE, arch) == pytest.approx(by_hand, rel=1e-12)
        assert value == pytest.approx(by_hand, rel=1e-12)


def test_scaled_model_recovers_group_factors_and_auto_picks_it() -> None:
    table = synthetic_latency_table()
    rng = np.random.default_rng(5)
    archs = [TINY_SPACE.sample(rng) for _ in range(16)]
    truth = {"conv": 0.6, "depthwise": 1.3, "residual": 0.2}

    def fused(a):  # a runtime that fuses: each op group runs at its own fraction of its time alone
        return 0.05 + sum(truth[g] * s for g, s in table.group_sums(TINY_SPACE, a).items())

    measured = [fused(a) for a in archs]
    fit_models(table, TINY_SPACE, archs, measured, "auto")
    assert table.model == "scaled" and set(table.group_scale) == set(OP_GROUPS)
    assert table.group_scale["depthwise"] == pytest.approx(truth["depthwise"], rel=0.1)  # most of the time
    held = [TINY_SPACE.sample(rng) for _ in range(10)]
    scaled = table_error(table, TINY_SPACE, held, [fused(a) for a in held])
    table.use_model("sum")
    assert table.group_scale == {} and table_error(table, TINY_SPACE, held, [fused(a) for a in held]) > 3 * scaled
    assert scaled < 2.0 and set(table.meta["calibration_loo_mape"]) == {"sum", "scaled"}
    with pytest.raises(UserError, match="no fitted 'other' model"):
        table.use_model("other")


def test_scaled_factors_are_bounded_in_the_fit_not_clipped_after_it() -> None:
    table = synthetic_latency_table()
    rng = np.random.default_rng(6)
    archs = [TINY_SPACE.sample(rng) for _ in range(12)]
    noise = np.random.default_rng(7)

    def fused(a):  # conv ops nearly free inside the graph (a factor at the lower bound), 10% noise
        s = table.group_sums(TINY_SPACE, a)
        return (0.02 + 0.05 * s["conv"] + 1.2 * s["depthwise"] + 0.3 * s["residual"]) * noise.uniform(0.9, 1.1)

    y = np.array([fused(a) for a in archs])
    x = _scaled_design(table, TINY_SPACE, archs)
    bounded = _scaled_coefficients(x, y, 0.0)
    assert all(FACTOR_BOUNDS[0] - 1e-9 <= c <= FACTOR_BOUNDS[1] + 1e-9 for c in bounded[2:])
    free = np.linalg.lstsq(x / y[:, None], np.ones_like(y), rcond=None)[0]
    clipped = np.concatenate([free[:2], np.clip(free[2:], *FACTOR_BOUNDS)])
    sse = [float(np.sum(((x @ c) - y) ** 2 / y**2)) for c in (bounded, clipped)]
    assert sse[0] <= sse[1] + 1e-12  # the bounded optimum is never worse than clipping afterwards


def test_refit_uses_the_subnets_a_table_keeps(tmp_path) -> None:
    table = synthetic_latency_table()
    rng = np.random.default_rng(8)
    calib = [TINY_SPACE.sample(rng) for _ in range(10)]
    held = [TINY_SPACE.sample(rng) for _ in range(4)]

    def fused(a):
        s = table.group_sums(TINY_SPACE, a)
        return 0.03 + 0.5 * s["conv"] + 1.5 * s["depthwise"] + 0.2 * s["residual"]

    path = tmp_path / "t.json"
    r = run_cli("latency", "refit", "--table", str(table.save(path)))
    assert r.code == 2 and "no measured subnets in meta.calibration_subnets" in r.err and r.err.count("\n") == 1
    table.meta.update(calibration_subnets=_subnet_records(calib, [fused(a) for a in calib]),
                      holdout_subnets=_subnet_records(held, [fused(a) for a in held]), holdout_archs=len(held))
    table.save(path)
    r = run_cli("latency", "refit", "--table", str(path), "--json")
    assert r.code == 0, r.err
    info = json.loads(r.out)
    assert info["model"] == "scaled" and set(info["holdout_mape_by_model"]) == {"sum", "scaled"}
    assert info["holdout_mape_by_model"]["scaled"] < 1.0 < info["holdout_mape_by_model"]["sum"]
    again = LatencyTable.load(path)
    assert again.model == "scaled" and again.group_scale["depthwise"] == pytest.approx(1.5, rel=0.05)
    assert refit_table(again, TINY_SPACE, "sum")["sum"] == pytest.approx(info["holdout_mape_by_model"]["sum"], rel=1e-3)
    assert again.model == "sum"
    again.meta["holdout_subnets"][0]["ms"] = -1.0
    with pytest.raises(UserError, match=r"holdout_subnets\[0\]\.ms = -1.0 is not a positive latency"):
        refit_table(again, TINY_SPACE)


def test_refit_refuses_more_stored_subnets_than_its_bound(tmp_path) -> None:
    """Refit's leave-one-out fits grow with the square of the subnets: over MAX_REFIT_SUBNETS is one
    line naming the file, the count and the limit, before any record is validated or fitted."""
    MAX_REFIT_SUBNETS = 300  # the documented bound (attentivenas.latency.fit.MAX_REFIT_SUBNETS)
    table = synthetic_latency_table()
    table.meta.update(calibration_subnets=[{"arch": {}, "ms": 1.0}] * MAX_REFIT_SUBNETS,
                      holdout_subnets=[{"arch": {}, "ms": 1.0}])
    path = table.save(tmp_path / "big.json")
    r = run_cli("latency", "refit", "--table", str(path))
    assert r.code == 2 and r.err.count("\n") == 1, r.err
    assert (f"latency table {path} holds {MAX_REFIT_SUBNETS + 1} measured subnets (calibration + held-out); "
            f"refit handles at most {MAX_REFIT_SUBNETS}") in r.err
    with pytest.raises(UserError, match=f"holds {MAX_REFIT_SUBNETS + 1} measured subnets"):
        refit_table(table, TINY_SPACE)
    import attentivenas.latency.fit as latency_table

    assert latency_table.MAX_REFIT_SUBNETS == MAX_REFIT_SUBNETS


def test_build_table_in_onnxruntime(tiny_net) -> None:
    arch = TINY_SPACE.min_arch()
    table = build_latency_table(TINY_SPACE, "cpu", 1, [arch], num_classes=10, threads=1, warmup=0, repeats=2,
                                calibration_archs=0, progress=False, supernet=tiny_net, runtime="onnxruntime")
    assert (table.runtime, table.threads, table.batch, table.device) == ("onnxruntime", 1, 1, "cpu")
    assert table.runtime_version and table.call_ms > 0 and table.predict(TINY_SPACE, arch) > 0
    assert table.covers(TINY_SPACE, arch)
    with pytest.raises(UserError, match="scaled model needs --calibration-archs >= 8"):
        build_latency_table(TINY_SPACE, archs=[arch], calibration_archs=2, model="scaled", progress=False)


@pytest.mark.slow
def test_programs_exported_by_workers_are_the_ones_this_process_would_build() -> None:
    """--jobs: workers rebuild ops and subnets from their seeds; loaded here, each runner computes
    what the module built in this process computes on the same input, and in the table's order."""
    ops = sorted(arch_ops(TINY_SPACE, TINY_SPACE.min_arch(), 10))[:3]
    archs = [TINY_SPACE.sample(np.random.default_rng(3)), TINY_SPACE.min_arch()]
    op_run, whole = _runners_exported_apart(ops, [0, 1, 2], archs, [0, 1], TINY_SPACE, 2, 1, 10, 7, "onnxruntime", 2,
                                            False)
    supernet = seeded_supernet(TINY_SPACE, 10, 7)
    modules = [seeded_op_module(sig, 7 + i, TINY_SPACE.act, "onnxruntime") for i, sig in enumerate(ops)]
    modules += [random_subnet(TINY_SPACE, a, 10, 7, supernet) for a in archs]
    inputs = [op_input(sig, 2, 7 + i) for i, sig in enumerate(ops)] + arch_inputs(archs, 2, 7)
    for runner, module, x in zip([*op_run, whole[0], whole[1]], modules, inputs, strict=True):
        with torch.no_grad():
            ref = module.eval()(x).numpy()
        np.testing.assert_allclose(runner.run()[0], ref, rtol=1e-4, atol=1e-5)


def test_graph_runtimes_time_ops_returning_one_element() -> None:
    """The graph runtimes hand a graph's output back as a new tensor, which a network's inner ops never
    pay: their ops are timed returning one element; eager ops return their whole output."""
    sig = sorted(arch_ops(TINY_SPACE, TINY_SPACE.max_arch(), 10))[0]
    x = op_input(sig, 2, 0)
    full = seeded_op_module(sig, 0, TINY_SPACE.act, "torch").eval()
    one = seeded_op_module(sig, 0, TINY_SPACE.act, "onnxruntime").eval()
    with torch.no_grad():
        y, y1 = full(x), one(x)
    assert y.numel() > 2 and y1.shape == (2,) + (1,) * (y.dim() - 1)
    torch.testing.assert_close(y1, y[(slice(None),) + (slice(0, 1),) * (y.dim() - 1)])


def test_export_jobs_are_checked() -> None:
    with pytest.raises(UserError, match="runtime 'torch' needs --jobs 1"):
        build_latency_table(TINY_SPACE, archs=[TINY_SPACE.min_arch()], progress=False, jobs=2)
    with pytest.raises(UserError, match="jobs must be >= 1"):
        build_latency_table(TINY_SPACE, archs=[TINY_SPACE.min_arch()], progress=False, jobs=0,
                            runtime="onnxruntime")


# --------------------------------------------------------------------------- search and CLI
def _predictor(tmp_path):
    def accuracy(arch) -> float:
        return float(TINY_SPACE.encode(arch).sum())

    data = P.build_arch_dataset(TINY_SPACE, accuracy, 12, seed=0, progress=False)
    return P.fit_predictor(data, "ridge").save(tmp_path / "pred.json")


def test_search_refuses_a_table_of_another_runtime_or_batch(tmp_path) -> None:
    table = synthetic_latency_table(runtime="onnxruntime", batch=1, num_classes=1000).save(tmp_path / "t.json")
    pred = _predictor(tmp_path)
    common = ["search", "--predictor", str(pred), "--latency-table", str(table), "--objectives", "mflops,latency",
              "--pop-size", "8", "--generations", "1", "--json"]
    r = run_cli(*common, "--out", str(tmp_path / "a"), "latency_runtime=torch")
    assert r.code == 2 and "runtime 'onnxruntime' (asked: 'torch')" in r.err
    r = run_cli(*common, "--out", str(tmp_path / "b"), "latency_batch=32")
    assert r.code == 2 and "batch 1 (asked: 32)" in r.err
    r = run_cli(*common, "--out", str(tmp_path / "c"), "latency_runtime=onnxruntime", "latency_batch=1")
    assert r.code == 0, r.err


def test_cli_runtime_measure_and_build_table(tmp_path) -> None:
    r = run_cli("latency", "measure", "--arch", "min", "--space", "tiny", "--runtime", "onnxruntime", "--threads", "1",
                "--repeats", "2", "--warmup", "0", "--num-classes", "10", "--json")
    assert r.code == 0, r.err
    res = json.loads(r.out)
    assert res["runtime"] == "onnxruntime" and res["threads"] == 1 and res["runtime_version"] and res["latency_ms"] > 0
    out = tmp_path / "t.json"
    r = run_cli("latency", "build-table", "--space", "tiny", "--runtime", "onnxruntime", "--archs", "1", "--warmup",
                "0", "--repeats", "1", "--calibration-archs", "2", "--holdout-archs", "2", "--num-classes", "10",
                "--out", str(out), "--json")
    assert r.code == 0, r.err
    info = json.loads(r.out)
    assert info["runtime"] == "onnxruntime" and info["holdout_archs"] == 2 and info["holdout_mape_percent"] > 0
    assert set(info["holdout_mape_by_model"]) == {"sum"}
    assert LatencyTable.load(out).meta["holdout_mape_by_model"]["sum"] == pytest.approx(info["holdout_mape_percent"],
                                                                                       rel=1e-3)
    r = run_cli("latency", "measure", "--arch", "min", "--space", "tiny", "--table", str(out), "--repeats", "1",
                "--num-classes", "10")
    assert r.code == 2 and "runtime 'onnxruntime' (asked: 'torch')" in r.err
    r = run_cli("latency", "measure", "--arch", "min", "--space", "tiny", "--runtime", "tvm")
    assert r.code == 2 and "unknown runtime 'tvm'" in r.err


def test_every_runtime_is_listed() -> None:
    assert RUNTIMES == ("torch", "onnxruntime", "executorch", "openvino")


def test_native_log_noise_is_dropped_and_errors_are_kept(capfd: pytest.CaptureFixture[str]) -> None:
    import os

    from attentivenas.runtimes.programs import quiet_native_stderr

    with quiet_native_stderr():
        os.write(2, b"[cpuinfo_utils.cpp:71] Reading file /sys/devices/soc0/image_version\n")
        os.write(2, b"[threadpool.cpp:66] Resetting threadpool to 1 threads.\n")
        os.write(2, b"[method.cpp:1234] Error: delegate failed\n")
    err = capfd.readouterr().err
    assert "cpuinfo_utils" not in err and "Resetting threadpool" not in err
    assert "[method.cpp:1234] Error: delegate failed" in err


@pytest.mark.slow
@needs_executorch
def test_executorch_measure_prints_no_cpuinfo_lines() -> None:
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "attentivenas", "latency", "measure", "--arch", "min", "--space", "tiny",
                        "--runtime", "executorch", "--repeats", "1", "--warmup", "0", "--threads", "1",
                        "--num-classes", "10"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "cpuinfo_utils" not in r.stderr and "threadpool.cpp" not in r.stderr, r.stderr


def test_quantizer_pattern_key_follows_code_closure_and_shapes() -> None:
    from attentivenas.runtimes.int8 import _pattern_key

    def pattern_of(flag: bool):  # noqa: ANN202 - a stand-in for the quantizer's WrapperModule(closure)
        def fn(x):  # noqa: ANN001, ANN202
            return torch.relu(x) if flag else x

        return type("Wrapper", (), {"fn": staticmethod(fn)})()

    x3, x4 = (torch.zeros(1, 1, 3),), (torch.zeros(1, 1, 3, 3),)
    assert _pattern_key(pattern_of(True), x3, False, {}) == _pattern_key(pattern_of(True), x3, False, {})
    assert _pattern_key(pattern_of(True), x3, False, {}) != _pattern_key(pattern_of(False), x3, False, {})
    assert _pattern_key(pattern_of(True), x3, False, {}) != _pattern_key(pattern_of(True), x4, False, {})
    assert _pattern_key(object(), x3, False, {}) is None


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["onnxruntime", "executorch"])
def test_int8_export_caches_give_the_same_programs(runtime: str) -> None:
    from attentivenas.runtimes.quantize import int8_executorch_bytes, int8_onnx_bytes
    from attentivenas.runtimes.runners import export_program, latency_calibration

    if not is_available(runtime):
        pytest.skip(f"{runtime} is not installed")
    plain = int8_onnx_bytes if runtime == "onnxruntime" else int8_executorch_bytes
    for i, sig in enumerate([OpSig("expand", 16, 48, 1, 1, 8), OpSig("project", 48, 16, 1, 1, 8)]):
        module, x = seeded_op_module(sig, i, TINY_SPACE.act, runtime), op_input(sig, 1, i)
        assert export_program(module, x, runtime, "int8") == plain(module, x, latency_calibration(x))
