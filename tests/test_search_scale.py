"""Stage 2 at scale: the evolution continues from its checkpoint, a killed search or predictor build
run again ends with the files of an uninterrupted run (measuring nothing twice), one and two gloo
ranks write identical files, and a checkpoint alone fits its own predictor over the budgeted range."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from attentivenas.accuracy import ArchDataset, spread_genes
from attentivenas.config import SearchConfig
from attentivenas.costs import CostModel
from attentivenas.distributed import share
from attentivenas.nn import Supernet, save_supernet
from attentivenas.search import run_search
from attentivenas.space import TINY_SPACE

from .cli_helpers import run_cli

SPACE = TINY_SPACE
COST = CostModel(SPACE, 10)
ROOT = Path(__file__).resolve().parents[1]


def accuracy(genes: np.ndarray) -> np.ndarray:
    x = SPACE.features_from_genes(np.atleast_2d(genes))
    return 60 + 8 * np.log(COST.flops(np.atleast_2d(genes))) + 0.3 * np.sin(x.sum(1))


def _cfg(**kw) -> SearchConfig:
    evo = {"pop_size": kw.pop("pop_size", 10), "generations": kw.pop("generations", 6)}
    return SearchConfig.model_validate({"evolution": evo, "budgets": {"max_mflops": 3.0}, "seed": 3, **kw})


def _same(a, b) -> None:
    assert json.dumps(a.pareto, sort_keys=True) == json.dumps(b.pareto, sort_keys=True)
    assert a.history == b.history and a.n_evaluations == b.n_evaluations and a.n_measured == b.n_measured


def test_the_evolution_continues_from_its_checkpoint(tmp_path: Path) -> None:
    """3 generations, then 6 from the state of the first 3 == 6 in one go; nothing is measured twice."""
    whole = run_search(SPACE, _cfg(accuracy={"source": "predicted"}), accuracy, num_classes=10)
    state = tmp_path / "search_state.npz"
    run_search(SPACE, _cfg(generations=3, accuracy={"source": "predicted"}), accuracy, num_classes=10, state_path=state)
    with np.load(state, allow_pickle=False) as npz:  # plain arrays, no pickle
        assert json.loads(npz["meta"].tobytes())["generation"] == 3
    _same(run_search(SPACE, _cfg(accuracy={"source": "predicted"}), accuracy, num_classes=10, state_path=state), whole)

    calls: list[str] = []

    def measure(arch):
        calls.append(arch.key())
        return float(accuracy(SPACE.encode(arch))[0])

    kw = {"num_classes": 10, "evaluate_fn": measure}
    whole = run_search(SPACE, _cfg(accuracy={"source": "measured"}), None, **kw)
    n_whole, calls[:] = len(calls), []
    cache, state = tmp_path / "measured.jsonl", tmp_path / "m_state.npz"
    run_search(SPACE, _cfg(generations=2, accuracy={"source": "measured"}), None, measured_cache=cache,
               state_path=state, **kw)
    first = len(calls)
    again = run_search(SPACE, _cfg(accuracy={"source": "measured"}), None, measured_cache=cache, state_path=state,
                       **kw)
    _same(again, whole)
    assert len(calls) == len(set(calls)) == n_whole and first < n_whole  # each arch measured once in all


def test_a_state_of_other_settings_is_not_used(tmp_path: Path) -> None:
    state = tmp_path / "search_state.npz"
    run_search(SPACE, _cfg(generations=2, accuracy={"source": "predicted"}), accuracy, num_classes=10, state_path=state)
    saved = state.read_bytes()
    logs: list[str] = []
    other = _cfg(generations=2, accuracy={"source": "predicted"}, seed=4)
    fresh = run_search(SPACE, other, accuracy, num_classes=10)
    res = run_search(SPACE, other, accuracy, num_classes=10, state_path=state, log=logs.append)
    _same(res, fresh)
    assert any("other search settings" in m for m in logs)
    # a predictor that gives the population another accuracy: the state is not used either
    state.write_bytes(saved)
    run_search(SPACE, _cfg(generations=2, accuracy={"source": "predicted"}), lambda g: accuracy(g) + 1,
               num_classes=10, state_path=state, log=logs.append)
    assert any("accuracy differs" in m for m in logs)


def _rewrite_state(path: Path, **change) -> None:
    """Rewrite a search state with some arrays (or ``meta`` keys, given as ``meta={...}``) replaced."""
    import io

    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(arrays["meta"].tobytes())
    meta.update(change.pop("meta", {}))
    arrays.update(change)
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    path.write_bytes(buf.getvalue())


@pytest.mark.parametrize("damage", ["truncated", "short_rank", "wide_pop", "no_archive_column", "history", "rng"])
def test_a_truncated_or_inconsistent_state_is_a_warning_and_a_fresh_start(tmp_path: Path, damage: str) -> None:
    state = tmp_path / "search_state.npz"
    cfg = _cfg(generations=2, pop_size=6, accuracy={"source": "predicted"})
    fresh = run_search(SPACE, cfg, accuracy, num_classes=10)
    run_search(SPACE, cfg, accuracy, num_classes=10, state_path=state)
    with np.load(state, allow_pickle=False) as npz:
        pop_x, rank = npz["pop_x"], npz["pop_rank"]
    if damage == "truncated":
        state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    elif damage == "short_rank":
        _rewrite_state(state, pop_rank=rank[:-1])
    elif damage == "wide_pop":
        _rewrite_state(state, pop_x=np.hstack([pop_x, pop_x[:, :1]]))
    elif damage == "no_archive_column":
        _rewrite_state(state, meta={"columns": ["accuracy", "mflops", "nonsense"]})
    elif damage == "history":
        _rewrite_state(state, meta={"history": []})
    else:
        _rewrite_state(state, meta={"rng": {"state": "x"}})
    logs: list[str] = []
    res = run_search(SPACE, cfg, accuracy, num_classes=10, state_path=state, log=logs.append)
    _same(res, fresh)
    unreadable = [m for m in logs if "is unreadable" in m and "the evolution starts again" in m]
    assert len(unreadable) == 1 and "\n" not in unreadable[0] and len(unreadable[0]) < 400, logs


def test_a_state_past_the_asked_generations_is_refused_and_kept(tmp_path: Path) -> None:
    from attentivenas.errors import UserError

    state = tmp_path / "search_state.npz"
    run_search(SPACE, _cfg(generations=3, pop_size=6, accuracy={"source": "predicted"}), accuracy, num_classes=10,
               state_path=state)
    saved = state.read_bytes()
    with pytest.raises(UserError, match=r"holds generation 3 of this search, past evolution.generations=2"):
        run_search(SPACE, _cfg(generations=2, pop_size=6, accuracy={"source": "predicted"}), accuracy,
                   num_classes=10, state_path=state)
    assert state.read_bytes() == saved


def test_shares_are_balanced_disjoint_and_cover_everything() -> None:
    w = [5.0, 1.0, 1.0, 1.0, 1.0, 1.0, 3.0, 2.0]
    parts = [share(w, 3, r) for r in range(3)]
    assert sorted(i for p in parts for i in p) == list(range(len(w)))
    loads = [sum(w[i] for i in p) for p in parts]
    assert max(loads) - min(loads) <= 1.0
    assert share(w, 1, 0) == list(range(len(w)))


def test_spread_over_the_budgeted_range_only() -> None:
    keep = lambda g: COST.flops(g) <= 2.0  # noqa: E731
    genes = spread_genes(SPACE, 30, np.random.default_rng(0), COST, keep=keep)
    f = COST.flops(genes)
    assert len(genes) == 30 and f.max() <= 2.0 and len({g.tobytes() for g in genes}) == 30
    assert f[0] == f.min() and f[1] == f.max() and f.max() > 1.8  # led by both ends of the range


# --------------------------------------------------------------------------- command line, processes
@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    return save_supernet(tmp_path_factory.mktemp("c") / "tiny.pt", Supernet(TINY_SPACE, 10))


COMMON = ["--data", "digits", "--split", "test", "--calib-batches", "1", "--calib-batch-size", "64", "--device", "cpu"]
FILES = ("pareto.json", "pareto.csv", "summary.json", "metrics.jsonl", "measured.jsonl", "config.yaml")


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "attentivenas", *args]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}


def _run(args: list[str]) -> None:
    r = subprocess.run(args, env=_env(), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]


def _here(*args: str) -> None:
    """Run the command line in this process: the runs a test compares with need no process of their own
    (only the killed and the ranked ones do), and each process costs an import of torch."""
    r = run_cli(*args)
    assert r.code == 0, r.err[-3000:]


def _kill_when(args: list[str], ready) -> None:
    """Start ``args``, SIGKILL it as soon as ``ready()`` holds (it must not finish before)."""
    p = subprocess.Popen(args, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not ready():
        assert p.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, "the run never got to the point of the kill"
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait()


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.is_file() else 0


def _keys(path: Path) -> list[str]:
    return [json.loads(line)["key"] for line in path.read_text().splitlines()[1:]]


@pytest.mark.slow
def test_a_killed_search_runs_again_to_the_same_files(tiny_ckpt: Path, tmp_path: Path) -> None:
    args = ["search", "--checkpoint", str(tiny_ckpt), *COMMON, "--accuracy", "measured", "--max-mflops", "3",
            "--pop-size", "6", "--generations", "5", "--json"]
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    _here(*args, "--out", str(whole))
    # killed in the middle of a generation's measurements, after a checkpoint
    _kill_when(_cli(*args, "--out", str(cut)),
               lambda: (cut / "search_state.npz").is_file() and _lines(cut / "measured.jsonl") >= 10)
    _here(*args, "--out", str(cut))
    for name in FILES:
        assert (cut / name).read_bytes() == (whole / name).read_bytes(), name
    keys = _keys(cut / "measured.jsonl")
    assert len(keys) == len(set(keys))  # nothing measured twice


@pytest.mark.slow
def test_a_killed_predictor_build_runs_again_to_the_same_file(tiny_ckpt: Path, tmp_path: Path) -> None:
    args = ["predictor", "build", "--checkpoint", str(tiny_ckpt), *COMMON, "--num-archs", "14", "--json"]
    whole, cut = tmp_path / "whole.jsonl", tmp_path / "cut.jsonl"
    _here(*args, "--out", str(whole))
    _kill_when(_cli(*args, "--out", str(cut)), lambda: _lines(cut) >= 5)
    _here(*args, "--out", str(cut))
    assert cut.read_bytes() == whole.read_bytes()
    assert len(set(_keys(cut))) == 14


@pytest.mark.slow
def test_one_and_two_gloo_ranks_write_the_same_files(tiny_ckpt: Path, tmp_path: Path) -> None:
    """The auto-predictor search (measure, fit, search, re-measure) and a predictor build, with 1 and
    2 local gloo ranks (one thread each)."""
    args = ["search", "--checkpoint", str(tiny_ckpt), *COMMON, "--max-mflops", "3", "--num-archs", "10",
            "--pop-size", "8", "--generations", "3", "--remeasure-top", "3", "--threads", "1", "--json"]
    one, two = tmp_path / "one", tmp_path / "two"
    _here(*args, "--out", str(one))
    _run(_cli(*args, "--ranks", "2", "--out", str(two)))
    for name in ("pareto.json", "pareto.csv", "metrics.jsonl", "measured.jsonl"):
        assert (one / name).read_bytes() == (two / name).read_bytes(), name
    p1, p2 = (json.loads((d / "predictor.json").read_text()) for d in (one, two))
    assert (p1["kind"], p1["model"], p1["metrics"]["kendall_tau"]) == (p2["kind"], p2["model"], p2["metrics"]["kendall_tau"])
    s1, s2 = (json.loads((d / "summary.json").read_text()) for d in (one, two))
    assert (s1["settings"]["runtime"]["ranks"], s2["settings"]["runtime"]["ranks"]) == (1, 2)  # config.yaml says so
    s1["settings"]["runtime"]["ranks"] = s2["settings"]["runtime"]["ranks"] = None
    assert s1 == s2
    assert not list(two.glob(".measured.jsonl.rank*"))  # the part files are gone

    build = ["predictor", "build", "--checkpoint", str(tiny_ckpt), *COMMON, "--num-archs", "9", "--threads", "1",
             "--json"]
    _here(*build, "--out", str(tmp_path / "b1.jsonl"))
    _run(_cli(*build, "--ranks", "2", "--out", str(tmp_path / "b2.jsonl")))
    assert (tmp_path / "b1.jsonl").read_bytes() == (tmp_path / "b2.jsonl").read_bytes()
    assert len(ArchDataset.load(tmp_path / "b2.jsonl")) == 9
