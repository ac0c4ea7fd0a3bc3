"""The training-speed benchmarks run and count the step's work from the cost model."""

from __future__ import annotations

import json

import pytest

from attentivenas import host_memory
from attentivenas.costs import count_flops
from attentivenas.space import TINY_SPACE

from .bench_helpers import load_benchmark


@pytest.mark.slow
def test_bench_step_prints_one_json_object_per_step(capsys: pytest.CaptureFixture[str]) -> None:
    bench = load_benchmark("bench_step")
    assert bench.main(["--batch", "2", "--steps", "2", "--threads", "1", "--json", "space=tiny",
                       "sampler.bin_width=0.25", "sampler.prior_samples=1000"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 2
    for r in rows:
        assert set(r) == {"step_s", "gflop", "gflop_per_s", "batch", "images_per_s", "threads", "device", "amp",
                          "channels_last", "compile", "reuse_freed_memory"}
        assert r["batch"] == 2 and r["threads"] == 1 and r["channels_last"] is True and r["amp"] == "none"
        assert r["reuse_freed_memory"] is host_memory.supported()  # auto: on CPU, where glibc has it
        # max + 2 middle + min trained (3x forward), 6 candidates scored (1x): between these bounds
        lo = 2 * 2 * 3 * (count_flops(TINY_SPACE, TINY_SPACE.max_arch(), 1000) + 3 * count_flops(
            TINY_SPACE, TINY_SPACE.min_arch(), 1000)) / 1e3
        hi = 2 * 2 * (3 * 4 + 6) * count_flops(TINY_SPACE, TINY_SPACE.max_arch(), 1000) / 1e3
        assert lo < r["gflop"] < hi and r["gflop_per_s"] == pytest.approx(r["gflop"] / r["step_s"])


def test_step_result_counts_trained_and_scored_work() -> None:
    from attentivenas.train.sandwich import StepResult

    r = StepResult([1.0], [], True, mflops=[4.0, 2.0, 1.0], scored_mflops=6.0)
    assert r.gflop(10) == pytest.approx(2 * 10 * (3 * 7.0 + 6.0) / 1e3)


@pytest.mark.slow
def test_bench_train_small_compares_the_step_with_a_plain_loop(capsys: pytest.CaptureFixture[str]) -> None:
    bench = load_benchmark("bench_train_small")
    assert bench.main(["--configs", "quickstart", "--steps", "1", "--rounds", "1", "--json"]) == 0
    row = json.loads(capsys.readouterr().out.strip())
    assert row["config"] == "quickstart" and row["steps"] == 1
    assert row["sandwich"]["gflop_per_s"] > 0 and row["plain"]["images_per_s"] > 0
    assert row["ratio_gflops"] == pytest.approx(row["sandwich"]["gflop_per_s"] / row["plain"]["gflop_per_s"])


def test_bench_finetune_step_times_both_memory_formats(capsys: pytest.CaptureFixture[str]) -> None:
    bench = load_benchmark("bench_finetune_step")
    assert bench.main(["--archs", "min", "--batch", "4", "--steps", "1", "--rounds", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip())
    (row,) = out["rows"]
    assert row["arch"] == "min" and row["contiguous_ms"] > 0 and row["channels_last_ms"] > 0
    assert row["speedup_ci95"][0] <= row["speedup"] <= row["speedup_ci95"][1]


def test_bench_supernet_blocks_alternate_and_keep_each_sides_fastest() -> None:
    bench = load_benchmark("bench_supernet")
    calls: list[str] = []
    seconds = {"dyn": iter([9.0, 3.0, 2.0, 5.0, 4.0]), "static": iter([9.0, 1.0, 2.0, 4.0, 6.0])}

    def side(name: str):
        def run() -> float:
            calls.append(name)
            return next(seconds[name])
        return run

    best = bench.blocks({"dyn": side("dyn"), "static": side("static")}, n_blocks=2, block=2)
    assert calls == ["dyn", "static"] + ["dyn", "static", "static", "dyn"] * 2  # warm-up, then swapped turns
    assert best == {"dyn": [2.0, 4.0], "static": [1.0, 4.0]}
    r = bench.block_ratio(best)
    assert r.median == pytest.approx(1.5) and r.of_fastest == pytest.approx(2.0)
    assert r.low <= r.median <= r.high and r.dynamic_ms == pytest.approx(3000.0)


def test_bench_supernet_prints_a_row_per_subnet_and_pass(capsys: pytest.CaptureFixture[str]) -> None:
    bench = load_benchmark("bench_supernet")
    assert bench.main(["--batch", "2", "--repeats", "2", "--block", "1", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["subnet"], r["pass"]) for r in rows] == [("min", "eval"), ("min", "fwd+bwd"), ("max", "eval"),
                                                        ("max", "fwd+bwd")]
    for r in rows:
        assert r["space"] == "tiny" and r["blocks"] == 2 and r["low"] <= r["median"] <= r["high"]
        assert r["dynamic_ms"] > 0 and r["static_ms"] > 0
    with pytest.raises(SystemExit):
        bench.main(["--subnets", "mid"])


def test_bench_arch_parts_rounds_rotate_and_ratios_are_per_round(monkeypatch: pytest.MonkeyPatch) -> None:
    bench = load_benchmark("bench_arch_parts")
    calls: list[str] = []
    ms = {"a": iter([4.0, 6.0, 8.0]), "ref": iter([2.0, 2.0, 4.0])}

    def fake_time(runner: str, warmup: int, repeats: int, rounds: int, clock: str) -> list[float]:
        calls.append(runner)
        return [next(ms[runner])] * repeats

    monkeypatch.setattr(bench, "time_runner", fake_time)
    medians = bench.interleaved_medians({"a": "a", "ref": "ref"}, repeats=3, rounds=3, clock="wall")
    assert calls == ["a", "ref", "ref", "a", "a", "ref"]  # each round starts one model further along
    assert medians == {"a": [4.0, 6.0, 8.0], "ref": [2.0, 2.0, 4.0]}
    ratios = bench.ratios_per_mflop(medians, {"a": 2.0, "ref": 1.0}, "ref")
    assert ratios["a"] == pytest.approx([1.0, 1.5, 1.0]) and ratios["ref"] == pytest.approx([1.0, 1.0, 1.0])


def test_bench_vs_authors_rounds_alternate_the_first_side_and_send_each_its_round(
        capsys: pytest.CaptureFixture[str]) -> None:
    bench = load_benchmark("bench_vs_authors")
    order: list[tuple[str, int]] = []

    class FakeSide:  # stands in for the pipe to a side's process: answers a round number with a row
        def __init__(self, side: str) -> None:
            self.side, self.sent = side, -1

        def send(self, rnd: int) -> None:
            self.sent = rnd
            order.append((self.side, rnd))

        def recv(self) -> dict:
            secs = {"authors": 2.0, "ours": 1.0}[self.side] * (1 + self.sent)
            return {"side": self.side, "round": self.sent, "step_s": secs, "gflop_per_s": 10.0 / secs}

    rows: list[dict] = []
    per_side = bench.timed_rounds({"authors": FakeSide("authors"), "ours": FakeSide("ours")}, 3, rows, print_rows=True)
    assert order == [("authors", 0), ("ours", 0), ("ours", 1), ("authors", 1), ("authors", 2), ("ours", 2)]
    assert [r["round"] for r in per_side["authors"]] == [0, 1, 2] and [r["side"] for r in per_side["ours"]] == ["ours"] * 3
    assert [(r["side"], r["round"]) for r in rows] == order
    assert [json.loads(line)["side"] for line in capsys.readouterr().out.splitlines()] == [s for s, _ in order]


def test_bench_runtimes_times_the_models_together_and_keeps_each_ones_round_of_lowest_median(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    import numpy as np

    bench = load_benchmark("bench_runtimes")
    calls: list[str] = []
    ms = {"a": iter([[5.0, 6.0, 4.0], [3.0, 9.0, 2.0]]), "b": iter([[1.0, 1.0, 1.0], [2.0, 2.0, 2.0]])}

    def fake_time(runner, warmup: int, repeats: int, rounds: int, clock: str) -> np.ndarray:
        assert rounds == 1 and warmup == 2 and repeats == 3 and clock == "wall"
        calls.append(runner.name)
        return np.array(next(ms[runner.name]))

    monkeypatch.setattr(bench, "time_runner", fake_time)
    out = bench.measure_together({n: SimpleNamespace(name=n, threads=1) for n in ("a", "b")}, repeats=3, clock="wall")
    assert calls == ["a", "b", "b", "a"]  # 2 interleaved rounds, the first model alternating
    assert out["a"]["median_ms"] == 3.0 and out["b"]["median_ms"] == 1.0  # each one's round of lowest median
    assert out["a"]["p90_ms"] == pytest.approx(np.percentile([3.0, 9.0, 2.0], 90)) and out["b"]["threads"] == 1


def test_bench_runtimes_times_fp32_and_int8_of_a_runtime_together_and_reports_the_speedup(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    from types import SimpleNamespace

    bench = load_benchmark("bench_runtimes")
    compared = [("tiny max", None, 32, 2.0), ("mobilenet_v3_large", None, 224, 200.0)]
    monkeypatch.setattr(bench, "models", lambda keys: [m for m in compared if m[0] != "tiny max" or "tiny-max" in keys])
    monkeypatch.setattr(bench, "is_available", lambda runtime: True)
    monkeypatch.setattr(bench, "runtime_version", lambda runtime: "x")
    monkeypatch.setattr(bench, "prepared", lambda runtime, model, res, batch, threads, p: (SimpleNamespace(threads=1), 0.1))
    groups: list[list[str]] = []

    def fake_together(runners, repeats, clock):
        groups.append(sorted(runners))
        return {n: {"median_ms": 4.0 if n.endswith("fp32") else 1.0, "p90_ms": 5.0, "threads": 1} for n in runners}

    monkeypatch.setattr(bench, "measure_together", fake_together)
    monkeypatch.setattr("sys.argv", ["bench_runtimes.py", "--json", "--batches", "1", "--runtimes", "torch,onnxruntime",
                                     "--precision", "fp32,int8", "--models", "tiny-max"])
    bench.main()
    info = json.loads(capsys.readouterr().out)
    # torch runs fp32 only; ONNX Runtime's fp32 and INT8 files share one group of interleaved rounds
    assert groups == [["mobilenet_v3_large fp32", "tiny max fp32"],
                      ["mobilenet_v3_large fp32", "mobilenet_v3_large int8", "tiny max fp32", "tiny max int8"]]
    int8 = [r for r in info["rows"] if r["precision"] == "int8"]
    assert {r["model"] for r in int8} == {"tiny max", "mobilenet_v3_large"}
    assert all(r["int8_speedup"] == pytest.approx(4.0) and r["runtime"] == "onnxruntime" for r in int8)
    assert all(r["int8_speedup"] is None for r in info["rows"] if r["precision"] == "fp32")
    with pytest.raises(SystemExit):
        monkeypatch.setattr("sys.argv", ["bench_runtimes.py", "--models", "a7"])
        bench.main()
