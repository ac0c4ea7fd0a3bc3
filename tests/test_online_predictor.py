"""The accuracy predictor in the loop of stage 1 (``sampler.estimator=online``) and attentive priors
over latency and memory."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from attentivenas.accuracy import ArchDataset, load_predictor
from attentivenas.config import SamplerConfig, parse_config
from attentivenas.costs import CostModel, MemoryModel
from attentivenas.errors import CheckpointError, ConfigError
from attentivenas.latency import LatencyTable
from attentivenas.space import ATTENTIVENAS_SPACE, TINY_SPACE, Arch
from attentivenas.train import StepResult, read_training_checkpoint, train
from attentivenas.train.sampling import ArchSampler, PredictorEstimator, build_constraint, derived_bin_width

from .synthetic import config_with, synthetic_latency_table

ONLINE = {"start_epoch": 1, "refit_every": 1, "num_archs": 6, "folds": 2, "kinds": ["ridge"],
          "calibration_batches": 1, "max_batches": 1}


def _cfg(**over: Any):
    data: dict[str, Any] = {
        "seed": 0,
        "space": "tiny",
        "data": {"name": "digits", "image_size": 32, "batch_size": 8, "eval_batch_size": 64, "random_shift": 1},
        "optim": {"epochs": 3, "warmup_epochs": 0.5, "lr": 0.4},
        "model": {"init": "kaiming_fan_out"},  # after 2 steps its subnets already differ on one batch
        "sampler": {"method": "bestup", "k": 3, "num_middle": 2, "bin_width": 0.25, "prior_samples": 2000,
                    "estimator": "online", "online": dict(ONLINE)},
        "eval": {"every_epochs": 0, "calibration_batches": 1, "max_batches": 1},
        "checkpoint": {"every_steps": 1, "keep_last": 10},
        "runtime": {"device": "cpu", "threads": 1, "steps_per_epoch": 2},
        "log": {"progress": False, "tensorboard": False, "every_steps": 1},
    }
    return config_with(data, **over)


def _records(out: Path, kind: str) -> list[dict[str, Any]]:
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == kind]


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """3 epochs of 2 steps: uniform in epoch 1, predictor fitted after epochs 1 and 2."""
    out = tmp_path_factory.mktemp("online") / "run"
    chosen: list[tuple[list[list[Arch]], list[Arch]]] = []
    steps: list[list[Arch]] = []
    real_choose = ArchSampler.choose

    def spy(self: ArchSampler, groups: Any, scores: Any = None) -> Any:
        picked = real_choose(self, groups, scores)
        if scores is not None:  # a scored choice (BestUp), not a uniform one
            chosen.append((groups.archs(self.space), picked.archs))
        return picked

    ArchSampler.choose = spy  # type: ignore[method-assign]
    try:
        res = train(_cfg(), out, on_step=lambda step, r: steps.append(list(r.archs)))
    finally:
        ArchSampler.choose = real_choose  # type: ignore[method-assign]
    return {"out": out, "result": res, "chosen": chosen, "steps": steps}


def test_online_predictor_is_fitted_after_start_epoch_and_ranks_the_candidates(full_run: dict[str, Any]) -> None:
    out, res, chosen, steps = full_run["out"], full_run["result"], full_run["chosen"], full_run["steps"]
    assert res.status == "completed" and res.global_step == 6

    # epoch 1: the middle subnets are uniform archs (the sampler's own generator), never scored
    ref = ArchSampler(TINY_SPACE, "uniform", num_middle=2, seed=0)
    for archs in steps[:2]:
        assert archs[1:3] == [g[0] for g in ref.propose(2).archs(TINY_SPACE)]

    # a predictor after epochs 1 and 2, none after the last epoch
    pdir = out / "predictors"
    assert sorted(p.name for p in pdir.iterdir()) == [
        "archs_epoch_001.jsonl", "archs_epoch_002.jsonl", "epoch_001.json", "epoch_002.json"]
    p1, p2 = load_predictor(pdir / "epoch_001.json"), load_predictor(pdir / "epoch_002.json")
    assert (p1.kind, p1.n_train, p2.n_train) == ("ridge", 6, 6)
    ds = ArchDataset.load(pdir / "archs_epoch_001.jsonl", TINY_SPACE)
    assert len(ds) == 6 and TINY_SPACE.min_arch() in ds and TINY_SPACE.max_arch() in ds
    assert all(0.0 <= r.accuracy <= 100.0 for r in ds)

    # epochs 2 and 3: every middle subnet is the predicted best of its k candidates
    assert len(chosen) == 4  # steps 3..6
    disagree_with_first = 0
    for i, (groups, picked) in enumerate(chosen):
        predictor = p1 if i < 2 else p2
        assert picked == steps[2 + i][1:3]
        for group, arch in zip(groups, picked, strict=True):
            assert len(group) == 3
            scores = predictor.predict_archs(group)
            assert arch == group[int(np.argmax(scores))]
            disagree_with_first += int(np.argmax(scores) != 0)
    assert disagree_with_first > 0  # not simply the first candidate

    # fit metrics in metrics.jsonl, equal to those stored in the predictor files
    recs = _records(out, "predictor")
    assert [(r["epoch"], r["global_step"], r["path"]) for r in recs] == [
        (1, 2, "predictors/epoch_001.json"), (2, 4, "predictors/epoch_002.json")]
    for rec, pred in zip(recs, (p1, p2), strict=True):
        assert rec["best"] == "ridge" and rec["n"] == 6
        for key in ("kendall_tau", "spearman_rho", "rmse"):
            assert rec[key] == pred.metrics[key]
        assert -1.0 <= rec["kendall_tau"] <= 1.0 and rec["measure_s"] > 0 and rec["fit_s"] > 0
        assert rec["top1_min"] <= rec["top1_mean"] <= rec["top1_max"]

    ck = read_training_checkpoint(out / "checkpoints" / "last.pt")
    assert ck["online"] == {"active": "predictors/epoch_002.json", "next_fit_epoch": 3, "fits": 2}
    assert ck["sampler"]["warmup"] is False
    assert res.predictor == out / "predictors" / "epoch_002.json"


def test_resumed_online_run_ends_identical_across_the_switch(full_run: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "stopped"

    def stop_at(n: int):
        def cb(step: int, _: StepResult) -> None:
            if step == n:
                os.kill(os.getpid(), signal.SIGINT)
        return cb

    # stopped at the end of epoch 1 (before the fit), then inside epoch 2 (after it)
    first = train(_cfg(), out, on_step=stop_at(2))
    assert first.status == "interrupted" and not (out / "predictors").exists()
    assert read_training_checkpoint(out / "checkpoints" / "last.pt")["online"]["active"] is None
    second = train(_cfg(), out, resume="auto", on_step=stop_at(3))
    assert second.status == "interrupted" and second.global_step == 3
    assert read_training_checkpoint(out / "checkpoints" / "last.pt")["online"]["active"] == "predictors/epoch_001.json"
    third = train(_cfg(), out, resume="auto")
    assert third.status == "completed" and third.global_step == 6

    a = read_training_checkpoint(full_run["out"] / "checkpoints" / "last.pt")
    b = read_training_checkpoint(out / "checkpoints" / "last.pt")
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values(), strict=True):
        assert torch.equal(sa["momentum_buffer"], sb["momentum_buffer"])
    assert a["sampler"] == b["sampler"] and a["online"] == b["online"]
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])
    for n in (1, 2):  # the same measured accuracies and the same fitted model (timings aside)
        name = f"archs_epoch_{n:03d}.jsonl"
        assert (out / "predictors" / name).read_bytes() == (full_run["out"] / "predictors" / name).read_bytes()
        mine, ref = (json.loads((d / "predictors" / f"epoch_{n:03d}.json").read_text()) for d in (out, full_run["out"]))
        assert mine["model"] == ref["model"] and mine["metrics"]["kendall_tau"] == ref["metrics"]["kendall_tau"]
    assert [r["epoch"] for r in _records(out, "predictor")] == [1, 2]
    assert [r["global_step"] for r in _records(out, "train")] == [1, 2, 3, 4, 5, 6]


def test_resume_into_a_new_folder_copies_the_active_predictor(full_run: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "other"
    res = train(_cfg(runtime__max_steps=5), out, resume=full_run["out"] / "checkpoints" / "step_000000004.pt")
    assert res.status == "max_steps" and res.global_step == 5
    assert (out / "predictors" / "epoch_002.json").read_bytes() == (
        full_run["out"] / "predictors" / "epoch_002.json").read_bytes()  # a copy


def test_resuming_a_loss_run_with_the_online_estimator_is_refused(tmp_path: Path) -> None:
    run = tmp_path / "loss"
    train(_cfg(sampler__estimator="loss", runtime__max_steps=1), run)
    with pytest.raises(CheckpointError, match="was not trained with sampler.estimator=online"):
        train(_cfg(), run, resume="auto")


@pytest.mark.parametrize(("sampler", "optim", "message"), [
    ({"estimator": "online", "method": "uniform"}, {}, "sampler.estimator=online ranks candidates for"),
    ({"estimator": "online", "predictor": "p.json"}, {}, "sampler.predictor is read only by"),
    ({"estimator": "online", "online": {"start_epoch": 3}}, {"epochs": 3},
     r"sampler.online.start_epoch \(3\) must be below optim.epochs \(3\)"),
    ({"estimator": "online", "online": {"start_epoch": 0}}, {}, "'sampler.online.start_epoch'"),
    ({"estimator": "online", "online": {"refit_every": 0}}, {}, "'sampler.online.refit_every'"),
    ({"online": {"num_archs": 6, "folds": 4}}, {}, r"sampler.online.num_archs \(6\) must be at least 2 x"),
    ({"online": {"kinds": ["svm"]}}, {}, "'sampler.online.kinds.0'"),
    ({"online": {"kinds": []}}, {}, "'sampler.online.kinds'"),
    ({"online": {"every": 2}}, {}, "unknown config key 'sampler.online.every'"),
    ({"constraint": "latency"}, {}, "sampler.latency_table .* is required when sampler.constraint=latency"),
    ({"constraint": "energy"}, {}, "'sampler.constraint'"),
])
def test_config_errors_name_the_key(sampler: dict[str, Any], optim: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config({"sampler": sampler, "optim": {"epochs": 10, **optim}})


def test_bin_width_defaults_per_constraint() -> None:
    widths = {c: parse_config({"sampler": {"constraint": c, **({"latency_table": "t.json"} if c == "latency" else {})}})
              .sampler.bin_width for c in ("flops", "params", "latency", "memory")}
    assert widths == {"flops": 25.0, "params": 0.25, "latency": None, "memory": None}
    assert parse_config({"sampler": {"constraint": "params", "bin_width": 0.5}}).sampler.bin_width == 0.5
    assert derived_bin_width(1.0, 5.0) == 0.1 and derived_bin_width(0.0, 1.234) == 0.031
    on = parse_config({"sampler": {"estimator": "online"}}).sampler.online
    assert (on.start_epoch, on.refit_every, on.num_archs, on.kinds, on.folds) == (1, 1, 50, ["ridge", "rf"], 5)


# --------------------------------------------------------------------------- latency and memory priors
def _sampler_cfg(**kw: Any) -> SamplerConfig:
    return SamplerConfig(**{"method": "bestup", "k": 4, "num_middle": 3, "prior": "empirical", "prior_samples": 3000,
                            "bin_width": None, "target_min": None, "target_max": None, **kw})


def _check_candidates(sampler: ArchSampler, truth: Any) -> None:
    prior = sampler.prior
    assert prior is not None
    vmin, vmax = prior.space_range
    assert prior.bin_width == derived_bin_width(vmin, vmax) and (vmax - vmin) / prior.bin_width == pytest.approx(40, rel=0.1)
    for _ in range(5):
        c = prior.sample_candidates(4)
        values = truth(c.genes)
        assert np.all((values >= c.lo) & (values < c.hi)) and c.hi - c.lo <= prior.bin_width + 1e-12
    est = PredictorEstimator(lambda f: f.sum(axis=1), TINY_SPACE)
    groups = sampler.propose()
    chosen = sampler.choose(groups, est.score(groups.flat()).reshape(len(groups), groups.k))
    for arch, (lo, hi) in zip(chosen.archs, chosen.targets, strict=True):
        assert lo <= truth(TINY_SPACE.encode(arch)[None, :])[0] < hi




def _latency_table(space=TINY_SPACE, num_classes: int = 10):
    """The synthetic latency table with a fitted-looking overhead."""
    return synthetic_latency_table(space, num_classes, overhead_ms=0.2, per_block_ms=0.01)

def test_latency_prior_samples_candidates_in_their_latency_bins(tmp_path: Path) -> None:
    table = _latency_table()
    path = table.save(tmp_path / "table.json")
    sampler = ArchSampler.from_config(TINY_SPACE, _sampler_cfg(constraint="latency", latency_table=str(path)),
                                      seed=0, num_classes=10)
    assert sampler.prior is not None and sampler.prior.constraint_name == "latency"
    _check_candidates(sampler, lambda g: LatencyTable.load(path).predict_genes(TINY_SPACE, g))
    lo, hi = sampler.prior.space_range  # the table's range over the space, not FLOPs
    ms = table.predict_genes(TINY_SPACE, np.stack([TINY_SPACE.encode(TINY_SPACE.min_arch()),
                                                   TINY_SPACE.encode(TINY_SPACE.max_arch())]))
    assert lo == pytest.approx(ms[0]) and hi == pytest.approx(ms[1])


def test_memory_prior_samples_candidates_in_their_memory_bins() -> None:
    sampler = ArchSampler.from_config(TINY_SPACE, _sampler_cfg(constraint="memory"), seed=0, num_classes=10)
    assert sampler.prior is not None and sampler.prior.constraint_name == "memory"
    _check_candidates(sampler, MemoryModel(TINY_SPACE, 10).memory_mb)
    state = sampler.state_dict()
    again = ArchSampler.from_config(TINY_SPACE, _sampler_cfg(constraint="memory"), seed=0, num_classes=10)
    again.load_state_dict(json.loads(json.dumps(state)))  # same derived bins: a resume is accepted
    assert again.prior.bin_width == sampler.prior.bin_width


def test_latency_table_errors_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="sampler.latency_table .* is required"):
        build_constraint(TINY_SPACE, "latency", 10, None)
    with pytest.raises(ConfigError, match=r"sampler.latency_table=.*missing.json: file not found"):
        build_constraint(TINY_SPACE, "latency", 10, tmp_path / "missing.json")
    other = _latency_table(TINY_SPACE, 10)
    other.space = {"name": "attentivenas", "supernet_config": json.loads(json.dumps(
        ATTENTIVENAS_SPACE.to_supernet_config()))}
    with pytest.raises(ConfigError, match=r"sampler.latency_table=.*built for space 'attentivenas', not for space 'tiny'"):
        build_constraint(TINY_SPACE, "latency", 10, other.save(tmp_path / "other.json"))
    with pytest.raises(ConfigError, match=r"built for 10 classes, the supernet has 1000"):
        build_constraint(TINY_SPACE, "latency", 1000, _latency_table().save(tmp_path / "t.json"))
    partial = _latency_table()
    partial.entries = dict(list(partial.entries.items())[::2])  # a table of a few archs misses ops
    with pytest.raises(ConfigError, match=r"sampler.latency_table=.*partial.json does not cover the space"):
        ArchSampler.from_config(TINY_SPACE, _sampler_cfg(constraint="latency",
                                                         latency_table=str(partial.save(tmp_path / "partial.json"))),
                                seed=0, num_classes=10)
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(ConfigError, match="sampler.latency_table=.*not an attentivenas latency table"):
        build_constraint(TINY_SPACE, "latency", 10, bad)
    with pytest.raises(ConfigError, match="sampler.constraint = 'energy'"):
        build_constraint(TINY_SPACE, "energy", 10)


def test_training_with_a_memory_prior(tmp_path: Path) -> None:
    cfg = _cfg(sampler__estimator="loss", sampler__constraint="memory", sampler__bin_width=None,
               runtime__max_steps=1)
    res = train(cfg, tmp_path / "mem")
    assert res.status == "max_steps"
    start = _records(tmp_path / "mem", "start")[0]
    assert start["constraint"] == "memory" and start["bin_width"] > 0
    ck = read_training_checkpoint(tmp_path / "mem" / "checkpoints" / "last.pt")
    assert ck["sampler"]["prior"]["constraint"] == "memory"
    assert ck["sampler"]["prior"]["bin_width"] == start["bin_width"]
    mflops = _records(tmp_path / "mem", "train")[0]["mflops"]  # the FLOPs of the trained subnets are still logged
    assert mflops[0] == pytest.approx(CostModel(TINY_SPACE, 10).arch_flops(TINY_SPACE.max_arch()))
