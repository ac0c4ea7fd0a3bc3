"""The shared interleaved-rounds timer of ``benchmarks/timing.py``: its order, its arithmetic and its header,
on fixed data and a fake clock (nothing here times anything real)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .bench_helpers import load_benchmark

timing = load_benchmark("timing")


def test_each_round_starts_one_side_further_along() -> None:
    names = ["a", "b", "c"]
    assert [timing.rotation(names, r) for r in range(4)] == [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"],
                                                            ["a", "b", "c"]]
    assert timing.rotation([], 3) == []


def test_rounds_run_every_side_once_in_the_rotated_order_after_rotating_warm_ups() -> None:
    calls: list[str] = []
    counts = {"a": 0, "b": 0}

    def side(name: str):
        def run() -> str:
            calls.append(name)
            counts[name] += 1
            return f"{name}{counts[name]}"
        return run

    out = timing.interleaved_rounds({"a": side("a"), "b": side("b")}, rounds=3, warmup=2)
    assert calls == ["a", "b", "b", "a"] + ["a", "b", "b", "a", "a", "b"]  # 2 warm-up rounds, then 3 timed
    assert out == {"a": ["a3", "a4", "a5"], "b": ["b3", "b4", "b5"]}  # warm-up results are not kept
    with pytest.raises(ValueError):
        timing.interleaved_rounds({"a": side("a")}, rounds=0)


def fake_clock(readings: list[float]):
    it: Iterator[float] = iter(readings)
    return lambda: next(it)


def test_a_side_returns_the_seconds_its_run_took_by_the_clock() -> None:
    ran: list[int] = []
    side = timing.timed(lambda: ran.append(1), clock=fake_clock([10.0, 10.5, 20.0, 22.0]))
    assert side() == pytest.approx(0.5) and side() == pytest.approx(2.0) and ran == [1, 1]


def test_per_round_ratios_and_their_median_on_a_fake_clock() -> None:
    # a: 2 s, 4 s, 3 s; b: 1 s, 1 s, 2 s; rounds alternate which runs first, both read one clock
    clock = fake_clock([0.0, 2.0, 2.0, 3.0, 3.0, 4.0, 4.0, 8.0, 8.0, 11.0, 11.0, 13.0])
    out = timing.interleaved_rounds({"a": timing.timed(lambda: None, clock), "b": timing.timed(lambda: None, clock)},
                                    rounds=3)
    assert out == {"a": [2.0, 4.0, 3.0], "b": [1.0, 1.0, 2.0]}
    assert timing.ratios(out["a"], out["b"]) == [2.0, 4.0, 1.5]
    c = timing.compare(out["a"], out["b"], seed=0)
    assert c.ratios == (2.0, 4.0, 1.5) and c.median == 2.0 and (c.smallest, c.largest) == (1.5, 4.0)
    assert c.smallest <= c.low <= c.median <= c.high <= c.largest
    assert c.text(2) == f"2.00 ({c.low:.2f}-{c.high:.2f})"
    assert c.as_dict("r_")["r_median"] == 2.0 and c.as_dict()["ratios"] == [2.0, 4.0, 1.5]
    with pytest.raises(ValueError):
        timing.ratios([1.0, 2.0], [1.0])


def test_bootstrap_interval_of_the_median_is_seeded_and_bounded_by_the_data() -> None:
    values = [1.0, 1.2, 0.9, 1.1, 3.0, 1.05, 0.95]
    a, b = timing.median_interval(values, seed=3), timing.median_interval(values, seed=3)
    assert a == b and a.median == pytest.approx(1.05) and a.level == 0.95
    assert 0.9 <= a.low <= a.median <= a.high <= 3.0
    narrow = timing.median_interval(values, seed=3, level=0.5)
    assert a.low <= narrow.low <= narrow.high <= a.high
    # two values: resampled medians are 1, 2 or 3 (each extreme with chance 1/4): the interval spans both ends
    two = timing.median_interval([1.0, 3.0], seed=0)
    assert (two.median, two.low, two.high) == (2.0, 1.0, 3.0)
    same = timing.median_interval([2.5] * 4)
    assert (same.median, same.low, same.high) == (2.5, 2.5, 2.5)
    with pytest.raises(ValueError):
        timing.median_interval([])


def test_the_header_names_the_machine_torch_and_the_load() -> None:
    info = {"cpu": "Some CPU 9000", "cores": 16, "torch": "2.9.0", "platform": "Linux", "python": "3.12"}
    assert timing.header(info, [1.234, 0.5, 0.25]) == (
        "machine: Some CPU 9000, 16 cores, torch 2.9.0; load average (1, 5, 15 min) 1.23 / 0.50 / 0.25")
    assert timing.header(info, []).endswith("load average (1, 5, 15 min) unknown")
    m = timing.machine()
    assert set(m) == {"cpu", "cores", "platform", "python", "torch"} and m["cpu"]
    assert timing.header().startswith(f"machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']}")
