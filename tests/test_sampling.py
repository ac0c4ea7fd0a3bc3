"""Tests of attentive sampling (attentivenas.train.sampling)."""

from __future__ import annotations

import copy
import io
import json
import time
import warnings

import numpy as np
import pytest
import torch

from attentivenas.config import SamplerConfig, parse_config
from attentivenas.costs import CostModel, TableCost, count_flops
from attentivenas.errors import ConfigError
from attentivenas.rng import generator_state, set_generator_state
from attentivenas.space import ATTENTIVENAS_SPACE, TINY_SPACE, Arch
from attentivenas.train.sampling import (
    ArchSampler,
    Chosen,
    ConstraintPrior,
    Estimator,
    LossEstimator,
    PredictorEstimator,
    load_predictor_estimator,
    uniform_genes_f32,
)

S = ATTENTIVENAS_SPACE
CM = CostModel(S)


@pytest.fixture(scope="module")
def prior() -> ConstraintPrior:
    return ConstraintPrior(S, num_samples=50_000, seed=0)


@pytest.fixture(scope="module")
def uprior() -> ConstraintPrior:
    return ConstraintPrior(S, kind="uniform", num_samples=20_000, seed=0)


def _in(values: np.ndarray, lo: float, hi: float) -> bool:
    return bool(((values >= lo) & (values < hi)).all())


def _linear_predict(space=S):
    w = np.random.default_rng(0).normal(size=space.num_genes)
    return lambda feats: feats @ w


# --------------------------------------------------------------------------- table cost, genes
@pytest.mark.parametrize("space", [S, TINY_SPACE])
def test_table_cost_equals_cost_model(space) -> None:
    genes = space.sample_genes(np.random.default_rng(0), 500)
    cm = CostModel(space)
    assert np.array_equal(TableCost(space)(genes), cm.flops(genes))
    assert np.array_equal(TableCost(space, "params")(genes), cm.params(genes) / 1e6)
    assert TableCost(S)(S.encode(S.max_arch()))[0] == pytest.approx(1939.335808)
    with pytest.raises(ValueError, match="'latency' is not one of"):
        TableCost(space, "latency")


def test_uniform_genes_f32_is_uniform() -> None:
    g = uniform_genes_f32(np.random.default_rng(1), S.gene_sizes, 30_000)
    assert g.dtype == np.float32 and g.shape == (30_000, 31)
    assert (g == np.floor(g)).all() and (g >= 0).all() and (g < S.gene_sizes).all()
    for j, n in enumerate(S.gene_sizes):
        freq = np.bincount(g[:, j].astype(int), minlength=n) / len(g)
        assert len(freq) == n and np.abs(freq - 1 / n).max() < 0.015


def test_generator_state_round_trip_is_plain() -> None:
    rng = np.random.default_rng(5)
    rng.random(3)
    st = generator_state(rng)
    assert json.loads(json.dumps(st)) == st and isinstance(st["state"], str)
    expected = rng.random(4)
    other = np.random.default_rng(99)
    set_generator_state(other, st)
    assert np.array_equal(other.random(4), expected)


# --------------------------------------------------------------------------- prior
def test_empirical_prior_matches_fresh_histogram(prior) -> None:
    assert prior.kind == "empirical" and prior.bin_width == 25.0
    assert prior.probs.sum() == pytest.approx(1.0) and (prior.probs > 0).all()
    fresh = CM.flops(S.sample_genes(np.random.default_rng(123), 50_000))
    fresh_bins = np.floor(fresh / 25.0).astype(int)
    q = np.array([(fresh_bins == b).mean() for b in prior.bins])
    assert np.abs(q - prior.probs).max() < 0.01
    assert q.sum() > 0.999  # the prior's bins cover (almost) all uniform archs
    peak = int(prior.bins[np.argmax(prior.probs)])
    assert 15 <= peak <= 30  # the uniform FLOPs histogram peaks around 400-750 MFLOPs
    # bins drawn from the prior follow its probabilities
    draws = np.array([prior.sample_bin() for _ in range(20_000)])
    freq = np.array([(draws == b).mean() for b in prior.bins])
    assert np.abs(freq - prior.probs).max() < 0.01


def test_uniform_prior_covers_reachable_range(uprior) -> None:
    lo, hi = uprior.space_range
    assert lo == pytest.approx(203.389568) and hi == pytest.approx(1939.335808)
    assert list(uprior.bins) == list(range(8, 78))  # 200-225 .. 1925-1950
    assert np.allclose(uprior.probs, 1 / 70)
    assert uprior.bin_edges(8) == (200.0, 225.0)


@pytest.mark.parametrize("b", [9, 20, 30, 45, 60])
def test_candidates_lie_in_bin(prior, b) -> None:
    c = prior.sample_candidates(20, b)
    assert c.bin == b and (c.lo, c.hi) == (b * 25.0, b * 25.0 + 25.0)
    assert c.genes.shape == (20, 31) and c.genes.dtype == np.int64
    flops = CM.flops(c.genes)
    assert _in(flops, c.lo, c.hi)
    assert np.array_equal(flops, c.values)
    assert len({r.tobytes() for r in c.genes}) == 20  # distinct archs


def test_candidates_of_drawn_targets_lie_in_bin(prior) -> None:
    seen = set()
    for _ in range(60):
        c = prior.sample_candidates(5)
        seen.add(c.bin)
        assert _in(CM.flops(c.genes), c.lo, c.hi)
    assert len(seen) > 10


@pytest.mark.parametrize("b", [8, 77])
def test_extreme_bins_via_walk(uprior, b) -> None:
    """Bins uniform sampling (almost) never reaches are filled by the walk, still truly inside."""
    assert uprior.hit_rate(b) == 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        c = uprior.sample_candidates(10, b)
    assert c.bin == b
    assert _in(CM.flops(c.genes), b * 25.0, b * 25.0 + 25.0)
    distinct = len({r.tobytes() for r in c.genes})
    if b == 8:  # near A0 (203.39, the min arch): plenty of archs
        assert distinct == 10
    else:  # 1925-1950: only archs next to the max arch (1939.34); some candidates may repeat
        assert 1 <= distinct <= 10


def test_target_range_clips_bins() -> None:
    p = ConstraintPrior(S, kind="uniform", target_range=(210, 260), num_samples=5000)
    assert list(p.bins) == [8, 9, 10]
    assert p.bin_edges(8) == (210.0, 225.0) and p.bin_edges(10) == (250.0, 260.0)
    for b in p.bins:
        c = p.sample_candidates(4, int(b))
        assert _in(CM.flops(c.genes), 210, 260) and _in(c.values, c.lo, c.hi)


def test_params_constraint() -> None:
    p = ConstraintPrior(S, "params", num_samples=20_000, seed=1)
    assert p.bin_width == 0.25
    assert p.space_range == pytest.approx((8.954184, 23.40408))
    for _ in range(10):
        c = p.sample_candidates(6)
        params_m = CM.params(c.genes) / 1e6
        assert _in(params_m, c.lo, c.hi) and c.hi - c.lo <= 0.25


def test_unreachable_bin_warns_once_and_uses_nearest() -> None:
    tc = TableCost(S)

    def gappy(genes: np.ndarray) -> np.ndarray:  # no value in [600, 650)
        f = tc(genes)
        return np.where(f >= 600, f + 50, f)

    p = ConstraintPrior(S, gappy, kind="uniform", bin_width=25, num_samples=5000, max_draws=2048, walk_steps=40)
    assert p.constraint_name == "gappy"
    assert 24 in p.bins and 25 in p.bins
    with pytest.warns(RuntimeWarning, match=r"\[600, 625\).*nearest bin 23") as rec:
        c = p.sample_candidates(5, 24)
    assert len(rec) == 1
    assert c.bin == 23 and _in(gappy(c.genes), 575, 600)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second request of the same bin does not warn again
        c2 = p.sample_candidates(5, 24)
    assert c2.bin == 23
    with pytest.warns(RuntimeWarning, match="bin 25"):
        c3 = p.sample_candidates(5, 25)
    assert c3.bin == 26 and _in(gappy(c3.genes), 650, 675)
    assert p.state_dict()["unreachable"] == [24, 25]


def test_prior_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"target range \[5000, 6000\].*outside.*\[203.39, 1939.34\] MFLOPs"):
        ConstraintPrior(S, target_range=(5000, 6000), num_samples=1000)
    with pytest.raises(ConfigError, match="no arch reaches it"):
        ConstraintPrior(S, target_range=(None, 150), num_samples=1000)
    with pytest.raises(ConfigError, match="'empirical' has no mass.*sampler.prior = 'uniform'"):
        ConstraintPrior(S, target_range=(200, 215), num_samples=1000)
    with pytest.raises(ConfigError, match=r"sampler.constraint = 'latency'.*\['flops', 'params'\]"):
        ConstraintPrior(S, "latency")
    # the settings themselves are checked once, by the config schema the prior is built from
    with pytest.raises(ConfigError, match=r"'sampler\.prior'.*'empirical' or 'uniform'.*'gaussian'"):
        parse_config({"sampler": {"prior": "gaussian"}})
    with pytest.raises(ConfigError, match=r"'sampler\.bin_width'.*greater than 0.*got -1"):
        parse_config({"sampler": {"bin_width": -1}})
    with pytest.raises(ConfigError, match=r"sampler\.target_min \(500.0\) must be below sampler\.target_max"):
        parse_config({"sampler": {"target_min": 500, "target_max": 400}})
    with pytest.raises(ConfigError, match=r"'sampler\.prior_samples'.*greater than or equal to 100.*got 0"):
        parse_config({"sampler": {"prior_samples": 0}})


def test_callable_constraint_without_bin_width_gets_range_over_40() -> None:
    p = ConstraintPrior(S, lambda g: CM.flops(g) * 2.0, num_samples=5000, seed=0)
    vmin, vmax = p.space_range
    assert (vmin, vmax) == pytest.approx((2 * CM.flops(np.zeros((1, S.num_genes), np.int64))[0],
                                          2 * CM.flops((S.gene_sizes - 1)[None, :])[0]))
    assert p.bin_width == float(f"{(vmax - vmin) / 40:.2g}") == 87.0  # 2 x (1939.34 - 203.39) / 40
    c = p.sample_candidates(3)
    assert _in(2 * CM.flops(c.genes), c.lo, c.hi) and c.hi - c.lo <= 87.0


def test_prior_state_round_trip(prior) -> None:
    p1 = ConstraintPrior(S, num_samples=20_000, seed=7)
    for _ in range(5):
        p1.sample_candidates(8)
    state = json.loads(json.dumps(p1.state_dict()))  # plain values only
    assert state["cache"] and state["rng"]["bit_generator"] == "PCG64"
    expected = [p1.sample_candidates(8) for _ in range(6)]
    p2 = ConstraintPrior(S, num_samples=20_000, seed=7)
    p2.load_state_dict(state)
    got = [p2.sample_candidates(8) for _ in range(6)]
    for a, b in zip(expected, got, strict=True):
        assert a.bin == b.bin and np.array_equal(a.genes, b.genes)
    with pytest.raises(ConfigError, match="bin_width: checkpoint 25.0 vs config 10.0"):
        ConstraintPrior(S, bin_width=10.0, num_samples=20_000).load_state_dict(state)


# --------------------------------------------------------------------------- estimators
def test_predictor_estimator_features_and_scores() -> None:
    genes = S.sample_genes(np.random.default_rng(2), 30)
    est = PredictorEstimator(lambda f: f.sum(axis=1), S)
    assert isinstance(est, Estimator)
    assert np.array_equal(est.features(genes), S.features_from_genes(genes))
    archs = [S.decode(g) for g in genes]
    assert np.allclose(est.score_archs(archs), S.features_from_genes(genes).sum(axis=1))
    assert np.array_equal(est.score(genes), est.score_archs(archs))


def test_loss_estimator_negates_loss() -> None:
    genes = S.encode_many([S.min_arch(), S.max_arch()])
    est = LossEstimator(S, lambda a: torch.tensor(float(a.resolution)))
    assert isinstance(est, Estimator)
    assert est.score(genes).tolist() == [-192.0, -288.0]


def test_load_predictor_estimator_errors(tmp_path) -> None:
    msg = ("predictor estimator needs an accuracy predictor file: set sampler.predictor=PATH "
           "(fit one with `attentivenas predictor fit`)")
    with pytest.raises(ConfigError) as exc:
        load_predictor_estimator(None, S)
    assert str(exc.value) == msg
    with pytest.raises(ConfigError, match="missing.json not found"):
        load_predictor_estimator(tmp_path / "missing.json", S)


def test_load_predictor_estimator_real_file(tmp_path) -> None:
    pred_mod = pytest.importorskip("attentivenas.accuracy")
    rng = np.random.default_rng(0)
    genes = S.sample_genes(rng, 60)
    flops, params = CM.flops_and_params(genes)
    ds = pred_mod.ArchDataset(S)
    for g, f, p in zip(genes, flops, params, strict=True):
        ds.add(pred_mod.ArchRecord(S.decode(g), 70.0 + f / 100.0, float(f), float(p) / 1e6))
    predictor = pred_mod.fit_predictor(ds, kind="ridge", seed=0)
    path = predictor.save(tmp_path / "pred.json")
    est = load_predictor_estimator(path, S)
    archs = [S.decode(g) for g in genes[:10]]
    assert np.allclose(est.score_archs(archs), predictor.predict_archs(archs))
    assert est.score(genes[:10])[np.argmax(flops[:10])] == est.score(genes[:10]).max()  # accuracy grows with FLOPs
    with pytest.raises(ConfigError, match="fitted on space 'attentivenas'.*space 'tiny'"):
        load_predictor_estimator(path, TINY_SPACE)


def test_load_predictor_estimator_uses_the_predictors_own_features(tmp_path) -> None:
    pred_mod = pytest.importorskip("attentivenas.accuracy")
    genes = S.sample_genes(np.random.default_rng(1), 40)
    flops, params = CM.flops_and_params(genes)
    ds = pred_mod.ArchDataset(S, [pred_mod.ArchRecord(S.decode(g), 70.0 + np.log(f) + (g[0] == 1), float(f),
                                                      float(p) / 1e6) for g, f, p in zip(genes, flops, params,
                                                                                         strict=True)])
    predictor = pred_mod.fit_predictor(ds, kind="ridge", feature_set="knobs+cost")
    assert len(predictor.feature_names) == S.num_genes + 2
    est = load_predictor_estimator(predictor.save(tmp_path / "cost.json"), S)
    assert est.features(genes[:5]).shape == (5, S.num_genes + 2)
    assert np.array_equal(est.score(genes), predictor.predict_genes(genes))


# --------------------------------------------------------------------------- sampler
def _sampler(method: str, k: int = 4, seed: int = 0, prior_seed: int = 0) -> ArchSampler:
    p = ConstraintPrior(S, num_samples=20_000, seed=prior_seed)
    return ArchSampler(S, method, k=k, num_middle=2, prior=p, seed=seed)


def _sample(sampler: ArchSampler, n: int | None = None, est=None) -> Chosen:
    """What the training step runs: propose, score every candidate in one call, choose."""
    groups = sampler.propose(n)
    scores = None if est is None else est.score(groups.flat()).reshape(len(groups), groups.k)
    return sampler.choose(groups, scores)


@pytest.mark.parametrize("method", ["bestup", "worstup"])
def test_bestup_worstup_pick_extreme_score(method) -> None:
    est = PredictorEstimator(_linear_predict(), S)
    a, b = _sampler(method, seed=3, prior_seed=3), _sampler(method, seed=3, prior_seed=3)
    chosen = _sample(a, 5, est)
    groups = b.propose(5)
    assert len(groups) == 5 and groups.k == 4 and groups.genes.shape == (5, 4, S.num_genes)
    archs = groups.archs(S)
    scores = [est.score_archs(g) for g in archs]
    expect = [g[int(np.argmax(sc) if method == "bestup" else np.argmin(sc))] for g, sc in zip(archs, scores, strict=True)]
    other = b.choose(groups, scores)
    assert other.archs == expect == chosen.archs
    assert chosen.mflops == pytest.approx([count_flops(S, x) for x in chosen.archs])
    assert other.mflops == chosen.mflops and other.targets == chosen.targets
    for (lo, hi), m in zip(chosen.targets, chosen.mflops, strict=True):
        assert lo <= m < hi and hi - lo == 25.0


def test_bestup_with_loss_estimator_picks_lowest_loss() -> None:
    s = _sampler("bestup", k=5)
    est = LossEstimator(S, lambda arch: count_flops(S, arch))  # loss = FLOPs: best is the cheapest
    t = ArchSampler(S, "bestup", k=5, prior=ConstraintPrior(S, num_samples=20_000, seed=0), seed=0)
    chosen = _sample(s, 3, est)
    groups = t.propose(3)
    assert chosen.archs == [min(g, key=lambda a: count_flops(S, a)) for g in groups.archs(S)]


def test_choose_handles_arrays_nan_and_shape_errors() -> None:
    s = _sampler("bestup", k=3)
    groups = s.propose(2)
    archs = groups.archs(S)
    sc = np.array([[0.1, np.nan, 0.3], [np.nan, np.nan, np.nan]])
    assert s.choose(groups, sc).archs == [archs[0][2], archs[1][0]]
    assert s.choose(groups, torch.tensor([[3.0, 2.0, 1.0], [0.0, 5.0, 1.0]])).archs == [archs[0][0], archs[1][1]]
    with pytest.raises(ValueError, match="scores for 1 groups, expected 2"):
        s.choose(groups, [[1, 2, 3]])
    with pytest.raises(ValueError, match="2 scores for a group of 3"):
        s.choose(groups, [[1, 2], [1, 2, 3]])


def test_uniform_method() -> None:
    s = ArchSampler(S, "uniform", num_middle=3, seed=1)
    assert s.prior is None
    chosen = _sample(s)
    archs = chosen.archs
    assert len(archs) == 3 and all(isinstance(a, Arch) for a in archs)
    for a in archs:
        S.validate(a)
    assert chosen.mflops == pytest.approx([count_flops(S, a) for a in archs])
    assert _sample(ArchSampler(S, "uniform", seed=1), 3).archs == archs
    groups = ArchSampler(S, "uniform", seed=1).propose(3)
    assert [g[0] for g in groups.archs(S)] == archs and groups.k == 1
    resolutions = {a.resolution for a in _sample(ArchSampler(S, "uniform", seed=2), 200).archs}
    assert resolutions == set(S.resolutions)


def test_warmup_samples_uniformly_until_switched_off() -> None:
    s = _sampler("bestup", k=3, seed=8, prior_seed=8)
    s.warmup = True
    ref = ArchSampler(S, "uniform", seed=8)
    groups = s.propose(2)
    assert groups.k == 1 and [g[0] for g in groups.archs(S)] == [g[0] for g in ref.propose(2).archs(S)]
    chosen = s.choose(groups, [[0.0], [1.0]])
    assert chosen.archs == [g[0] for g in groups.archs(S)] and chosen.targets == [None, None]
    assert _sample(s, 2).archs == _sample(ref, 2).archs  # no estimator needed
    prior_rng = s.prior.state_dict()["rng"]
    assert prior_rng == _sampler("bestup", k=3, seed=8, prior_seed=8).prior.state_dict()["rng"]  # untouched
    state = json.loads(json.dumps(s.state_dict()))
    assert state["warmup"] is True
    t = _sampler("bestup", k=3, seed=8, prior_seed=8)
    t.load_state_dict(state)
    assert t.warmup and np.array_equal(t.propose(1).genes, s.propose(1).genes)
    s.warmup = False
    groups = s.propose(2)
    assert groups.k == 3 and all(lo < hi for lo, hi in groups.targets)


def test_seeded_determinism() -> None:
    est = PredictorEstimator(_linear_predict(), S)
    runs = []
    for _ in range(2):
        s = _sampler("bestup", seed=11, prior_seed=5)
        runs.append([a.key() for _ in range(4) for a in _sample(s, 2, est).archs])
    assert runs[0] == runs[1]
    other = _sampler("bestup", seed=11, prior_seed=6)
    assert [a.key() for _ in range(4) for a in _sample(other, 2, est).archs] != runs[0]


@pytest.mark.parametrize("method", ["uniform", "bestup"])
def test_sampler_state_round_trip(method) -> None:
    est = PredictorEstimator(_linear_predict(), S)
    a = _sampler(method, seed=4, prior_seed=4)
    for _ in range(5):
        _sample(a, 2, est)
    state = copy.deepcopy(a.state_dict())
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=True)  # a checkpoint of ours stays weights_only-loadable
    assert json.loads(json.dumps(loaded)) == loaded
    expected = [_sample(a, 2, est).archs for _ in range(5)]
    b = _sampler(method, seed=4, prior_seed=4)
    b.load_state_dict(loaded)
    assert [_sample(b, 2, est).archs for _ in range(5)] == expected
    with pytest.raises(ConfigError, match="sampler.k = 9 differs"):
        ArchSampler(S, method, k=9, prior=ConstraintPrior(S, num_samples=20_000)).load_state_dict(loaded)


def test_sampler_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"'sampler\.method'.*'uniform', 'bestup' or 'worstup'.*'best'"):
        parse_config({"sampler": {"method": "best"}})
    with pytest.raises(ValueError, match=r"sampler method 'best' is not one of \['uniform', 'bestup', 'worstup'\]"):
        ArchSampler(S, "best")
    with pytest.raises(ConfigError, match=r"'sampler\.k'.*greater than or equal to 1.*got 0"):
        parse_config({"sampler": {"k": 0}})
    with pytest.raises(ConfigError, match=r"'sampler\.num_middle'.*greater than or equal to 0.*got -1"):
        parse_config({"sampler": {"num_middle": -1}})
    with pytest.raises(ConfigError, match="no arch reaches it"):
        ArchSampler.from_config(S, SamplerConfig(method="bestup", target_min=3000, prior_samples=1000))
    with pytest.raises(ValueError, match="needs scores for its 4 candidates"):
        _sample(_sampler("bestup"), 1)


def test_from_config_tiny_space() -> None:
    cfg = SamplerConfig(method="worstup", k=3, num_middle=2, prior="empirical", bin_width=0.5, constraint="flops",
                        estimator="loss", predictor=None, prior_samples=5000, target_min=None, target_max=None)
    s = ArchSampler.from_config(TINY_SPACE, cfg, seed=0, num_classes=10)
    assert (s.method, s.k, s.num_middle) == ("worstup", 3, 2)
    assert s.prior is not None and s.prior.bin_width == 0.5
    chosen = _sample(s, est=PredictorEstimator(_linear_predict(TINY_SPACE), TINY_SPACE))
    tiny_cm = CostModel(TINY_SPACE, 10)
    for a, (lo, hi) in zip(chosen.archs, chosen.targets, strict=True):
        assert lo <= tiny_cm.arch_flops(a) < hi


def test_from_config_pydantic_section() -> None:
    sec = SamplerConfig(method="bestup", k=2, num_middle=1, prior_samples=2000)
    s = ArchSampler.from_config(S, sec, seed=0)
    assert (s.method, s.k, s.num_middle, s.prior.kind, s.prior.bin_width) == ("bestup", 2, 1, "empirical", 25.0)
    assert len(_sample(s, est=PredictorEstimator(_linear_predict(), S)).archs) == 1


def test_bestup_k50_predictor_under_2ms_per_subnet() -> None:
    """Benchmark target (benchmarks/bench_sampling.py): k = 50 with predictor ranking < 2 ms / subnet."""
    s = ArchSampler(S, "bestup", k=50, prior=ConstraintPrior(S, num_samples=50_000, seed=0), seed=0)
    est = PredictorEstimator(_linear_predict(), S)
    for _ in range(10):
        _sample(s, 2, est)  # warm the per-bin caches
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(10):
            _sample(s, 2, est)
        best = min(best, (time.perf_counter() - t) / 20)
    assert best < 2e-3, f"{best * 1e3:.2f} ms per subnet"
