"""Stage-1 training: losses, optimiser and schedule, the sandwich step, checkpoints and exact resume,
divergence handling and the ``train`` command."""

from __future__ import annotations

import json
import math
import os
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from attentivenas.config import parse_config
from attentivenas.costs import CostModel
from attentivenas.errors import ConfigError
from attentivenas.nn import Supernet, load_supernet
from attentivenas.space import TINY_SPACE, Arch
from attentivenas.train import (
    SandwichStep,
    StepResult,
    TrainingDiverged,
    adaptive_alpha_divergence,
    label_smoothing_ce,
    param_groups,
    read_training_checkpoint,
    scaled_lr,
    soft_target_ce,
    train,
    warmup_cosine_factor,
)
from attentivenas.train.losses import alpha_divergence_terms
from attentivenas.train.optim import authors_factor, build_optimizer, build_scheduler, follow_config
from attentivenas.train.sampling import CandidateGroups, Chosen
from attentivenas.train.sandwich import StepContext, loss_scorer
from attentivenas.train.state import find_resumable, save_training_checkpoint, step_files

from .cli_helpers import run_cli
from .synthetic import config_with

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- losses
def test_label_smoothing_ce_matches_its_formula() -> None:
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
    target = torch.tensor([0, 2])
    logp = F.log_softmax(logits, 1)
    eps = 0.1
    manual = -((1 - eps) * logp[[0, 1], target] + eps * logp.mean(1)).mean()
    assert torch.allclose(label_smoothing_ce(logits, target, eps), manual, atol=1e-6)


def test_soft_target_ce_is_ce_against_the_teacher_distribution() -> None:
    torch.manual_seed(0)
    s, t = torch.randn(5, 4), torch.randn(5, 4)
    manual = -(F.softmax(t, 1) * F.log_softmax(s, 1)).sum(1).mean()
    assert torch.allclose(soft_target_ce(s, t), manual, atol=1e-6)
    hard = torch.full((5, 4), -1e4)
    hard[range(5), [0, 1, 2, 3, 0]] = 1e4  # a one-hot teacher gives plain CE
    assert torch.allclose(soft_target_ce(s, hard), F.cross_entropy(s, torch.tensor([0, 1, 2, 3, 0])), atol=1e-5)
    s.requires_grad_(True)
    soft_target_ce(s, t).backward()
    assert torch.allclose(s.grad, (F.softmax(s, 1) - F.softmax(t, 1)).detach() / 5, atol=1e-6)


def _alpha_reference(s: torch.Tensor, t: torch.Tensor, alpha: float, clip: float) -> tuple[torch.Tensor, torch.Tensor]:
    """AlphaNet's term written from its definition (reference section 9), in float64: p, q softmax
    (detached), r = p / q; value = sum q f from the clipped weights, surrogate = -sum q rho log q."""
    log_q = F.log_softmax(s.double(), 1)
    q, p = log_q.exp().detach(), F.softmax(t.double(), 1)
    r = p / q
    if alpha == 0.0:
        r = r.clamp(0.0, clip)
        f, rho = -torch.log(r), torch.log(r) - 1
    elif alpha == 1.0:
        f, rho = r * torch.log(r), r
    else:
        w = (r**alpha).clamp(0.0, clip)
        base = 1.0 / (alpha * (alpha - 1))
        f, rho = w / (alpha * (alpha - 1)) - base, w / alpha + base
    return (q * f).sum(1).detach(), -(q * rho * log_q).sum(1)


def _logits(scale: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(8, 10, generator=gen) * scale, torch.randn(8, 10, generator=gen) * scale


@pytest.mark.parametrize("clip", [5.0, 1e9])
@pytest.mark.parametrize("scale", [0.5, 6.0])  # near, and far apart (small students early in training)
@pytest.mark.parametrize("alpha", [-1.0, 0.0, 0.5, 1.0])
def test_alpha_divergence_terms_follow_alphanet(alpha: float, scale: float, clip: float) -> None:
    s, t = (x.double() for x in _logits(scale, 1))  # float64 in, float64 out: the formula itself is compared
    s.requires_grad_(True)
    ref_value, ref_sur = _alpha_reference(s, t, alpha, clip)
    value, surrogate = alpha_divergence_terms(s, t, alpha, clip)
    (g_ref,) = torch.autograd.grad(ref_sur.sum(), s)
    (g,) = torch.autograd.grad(surrogate.sum(), s)
    assert torch.allclose(value, ref_value, rtol=1e-9, atol=1e-9)
    assert torch.allclose(g, g_ref, rtol=1e-9, atol=1e-9)
    if clip == 5.0 and scale == 6.0 and alpha in (0.0, -1.0, 0.5):  # the clipping is active here
        q, p = F.softmax(s.double(), 1), F.softmax(t.double(), 1)
        assert bool(((p / q) ** (alpha if alpha else 1.0) > 5.0).any())


def test_unclipped_alpha_divergence_is_exact_where_nothing_is_clipped() -> None:
    """Without clipping each term is the alpha-divergence, and the surrogate's gradient is its gradient."""
    s, t = _logits(0.5, 3)
    s.requires_grad_(True)
    q, p = F.softmax(s, 1), F.softmax(t, 1)
    for alpha in (-1.0, 0.5):
        exact = (q * ((p / q) ** alpha - 1) / (alpha * (alpha - 1))).sum(1)
        (g_exact,) = torch.autograd.grad(exact.sum(), s, retain_graph=True)
        value, surrogate = alpha_divergence_terms(s, t, alpha, iw_clip=1e9)
        (g_sur,) = torch.autograd.grad(surrogate.sum(), s)
        assert torch.allclose(value, exact.detach(), atol=1e-5) and torch.allclose(g_sur, g_exact, atol=1e-5)
        assert bool((value >= -1e-6).all())


@pytest.mark.parametrize("scale", [0.5, 6.0, 60.0])
def test_adaptive_alpha_divergence_picks_the_larger_term_per_sample_and_stays_finite(scale: float) -> None:
    s, t = _logits(scale, 2)
    s.requires_grad_(True)
    v_lo, s_lo = _alpha_reference(s, t, -1.0, 5.0)
    v_hi, s_hi = _alpha_reference(s, t, 1.0, 5.0)
    expected = torch.where(v_lo > v_hi, s_lo, s_hi).mean()
    (g_ref,) = torch.autograd.grad(expected, s)
    loss = adaptive_alpha_divergence(s, t)
    (g,) = torch.autograd.grad(loss, s)
    assert torch.isfinite(loss) and bool(torch.isfinite(g).all())
    if scale < 60:  # float64 reference overflows beyond; ours does not
        assert float(loss.detach()) == pytest.approx(float(expected.detach()), rel=1e-4, abs=1e-5)
        assert torch.allclose(g.double(), g_ref.double(), rtol=1e-4, atol=1e-5)
    # at the teacher the divergence is at its minimum: the surrogate's gradient vanishes
    at_teacher = t.clone().requires_grad_(True)
    (g0,) = torch.autograd.grad(adaptive_alpha_divergence(at_teacher, t), at_teacher)
    assert float(g0.abs().max()) < 1e-6


# --------------------------------------------------------------------------- optimiser
def test_no_weight_decay_on_bn_and_biases() -> None:
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, bias=False), torch.nn.BatchNorm2d(4), torch.nn.Flatten(),
                              torch.nn.Linear(4, 2))
    groups = param_groups(net, 1e-5)
    assert [len(g["params"]) for g in groups] == [2, 3]
    assert [g["weight_decay"] for g in groups] == [1e-5, 0.0]
    assert all(p.ndim > 1 for p in groups[0]["params"]) and all(p.ndim == 1 for p in groups[1]["params"])
    assert len(param_groups(net, 1e-5, no_decay_bn_bias=False)) == 1


def test_lr_scaling_and_warmup_cosine() -> None:
    cfg = parse_config({"optim": {"lr": 0.1, "epochs": 10, "warmup_epochs": 2}}).optim
    assert scaled_lr(cfg, 2048) == pytest.approx(0.8)
    assert warmup_cosine_factor(0, 4, 20) == pytest.approx(0.25)
    assert warmup_cosine_factor(3, 4, 20) == pytest.approx(1.0)
    assert warmup_cosine_factor(4, 4, 20) == pytest.approx(1.0)
    assert warmup_cosine_factor(12, 4, 20) == pytest.approx(0.5)
    assert warmup_cosine_factor(20, 4, 20) == pytest.approx(0.0)
    net = torch.nn.Linear(2, 2)
    opt = build_optimizer(net, cfg, 512)
    assert opt.defaults["nesterov"] is True and opt.defaults["momentum"] == 0.9
    sched = build_scheduler(opt, cfg, steps_per_epoch=5)
    lrs = []
    for _ in range(50):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.2 / 10) and lrs[9] == pytest.approx(0.2)
    assert lrs[10 + 20] == pytest.approx(0.1) and lrs[-1] < 0.001


@pytest.mark.parametrize(("batch", "linear", "authors"), [
    (32, 0.0125, 0.1), (256, 0.1, 0.1), (300, 0.1171875, 0.1), (2048, 0.8, 0.8)])
def test_lr_scaling_rules(batch: int, linear: float, authors: float) -> None:
    """linear: lr x batch / 256; the authors' (train_attentive_nas.py): lr x max(1, batch // 256)."""
    assert parse_config({}).optim.lr_scaling == "linear"
    assert scaled_lr(parse_config({}).optim, batch) == pytest.approx(linear)
    assert scaled_lr(parse_config({"optim": {"lr_scaling": "authors"}}).optim, batch) == pytest.approx(authors)


def test_authors_schedule_factor_by_hand() -> None:
    """Their WarmupCosineLR at iteration i of T = 100, W = 10 warm-up iterations, warmup_factor 0.001:
    (0.001 (1 - i / W) + i / W for i < W, else 1) x 0.5 (1 + cos(pi i / T)), floored at the clamp
    only after the warm-up (i > W)."""
    f = authors_factor
    assert f(0, 10, 100, 0.001) == pytest.approx(0.001)  # 0.001 x 0.5 (1 + cos 0)
    assert f(5, 10, 100, 0.001) == pytest.approx(0.5005 * 0.5 * (1 + 0.98768834))  # cos(0.05 pi)
    assert f(10, 10, 100, 0.001) == pytest.approx(0.5 * (1 + 0.95105652))  # warm-up over; cos(0.1 pi)
    assert f(50, 10, 100, 0.001) == pytest.approx(0.5)
    assert f(99, 10, 100, 0.001) == pytest.approx(0.5 * (1 - 0.99950656))  # the last iteration
    assert f(99, 10, 100, 0.001, clamp_factor=0.01) == pytest.approx(0.01)
    assert f(0, 10, 100, 0.001, clamp_factor=0.01) == pytest.approx(0.001)  # no clamp in the warm-up
    assert f(7, 0, 100) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.07)))  # no warm-up


def test_authors_schedule_drives_the_optimizer_and_ours_differs() -> None:
    over = {"epochs": 10, "warmup_epochs": 2, "warmup_start_factor": 0.001, "lr_scaling": "authors"}
    theirs = parse_config({"optim": {**over, "schedule": "authors"}}).optim
    ours = parse_config({"optim": over}).optim
    assert parse_config({}).optim.schedule == "warmup_then_cosine"

    def lrs(cfg: Any) -> list[float]:
        opt = build_optimizer(torch.nn.Linear(2, 2), cfg, 512)
        sched = build_scheduler(opt, cfg, steps_per_epoch=5)
        out = []
        for _ in range(50):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        return out

    a, b = lrs(theirs), lrs(ours)
    assert a == pytest.approx([0.2 * authors_factor(i, 10, 50, 0.001) for i in range(50)])
    assert a[0] == pytest.approx(0.2 * 0.001) and a[10] == pytest.approx(0.2 * 0.5 * (1 + math.cos(math.pi / 5)))
    assert b[10] == pytest.approx(0.2)  # ours: the cosine starts after the warm-up


@pytest.mark.parametrize("schedule", ["authors", "warmup_then_cosine"])
def test_restored_schedule_continues_where_it_stopped(schedule: str) -> None:
    """A scheduler and optimiser rebuilt from the config, loaded from a state dict and made to
    follow the config give the same learning rates as the uninterrupted run."""
    cfg = parse_config({"optim": {"epochs": 4, "warmup_epochs": 1, "schedule": schedule, "lr_scaling": "authors",
                                  "warmup_start_factor": 0.001, "min_lr": 0.001}}).optim

    def build() -> tuple[torch.optim.Optimizer, Any]:
        opt = build_optimizer(torch.nn.Linear(2, 2), cfg, 2048)
        return opt, build_scheduler(opt, cfg, steps_per_epoch=6)

    opt, sched = build()
    full, resumed = [], []
    for i in range(24):
        full.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
        if i == 9:  # a checkpoint after 10 steps
            state = (opt.state_dict(), sched.state_dict())
    opt2, sched2 = build()
    opt2.load_state_dict(state[0])
    sched2.load_state_dict(state[1])
    follow_config(opt2, sched2, cfg, 2048)
    for _ in range(10, 24):
        resumed.append(opt2.param_groups[0]["lr"])
        opt2.step()
        sched2.step()
    assert resumed == pytest.approx(full[10:], rel=1e-12, abs=0)
    assert full[6] == pytest.approx(0.8 * (0.5 * (1 + math.cos(math.pi / 4)) if schedule == "authors" else 1.0))


# --------------------------------------------------------------------------- sandwich step
def _groups(groups: list[list[Arch]]) -> CandidateGroups:
    """Candidate groups (of equal size) in the sampler's gene form."""
    return CandidateGroups(np.stack([TINY_SPACE.encode_many(g) for g in groups]), (None,) * len(groups))


class RecordingSampler:
    """Proposes fixed candidate groups and picks the best score (like BestUp)."""

    def __init__(self, groups: list[list[Arch]]) -> None:
        self.groups = groups
        self.scores: list[list[float]] = []
        self.cost = CostModel(TINY_SPACE, 10)

    def propose(self, n: int | None = None) -> CandidateGroups:
        return _groups(self.groups[:n])

    def choose(self, groups: CandidateGroups, scores: Any = None) -> Chosen:
        archs = groups.archs(TINY_SPACE)
        self.scores = [list(s) for s in scores] if scores is not None else [[0.0] * groups.k] * len(groups)
        picked = [g[max(range(len(g)), key=lambda i: s[i])] for g, s in zip(archs, self.scores, strict=True)]
        genes = TINY_SPACE.encode_many(picked)
        return Chosen(genes, picked, self.mflops(genes), list(groups.targets))

    def mflops(self, genes: np.ndarray) -> list[float]:
        return self.cost.flops(genes).tolist()


def _candidates(n: int, seed: int) -> list[Arch]:
    import numpy as np

    rng = np.random.default_rng(seed)
    return [TINY_SPACE.sample(rng) for _ in range(n)]


def _step(net: Supernet, sampler: Any, **kw: Any) -> SandwichStep:
    opt = torch.optim.SGD(net.parameters(), lr=kw.pop("lr", 0.1), momentum=0.0)
    return SandwichStep(net, opt, sampler, soft_target_ce, num_middle=2, **kw)


def test_loss_scorer_is_minus_the_batch_ce() -> None:
    torch.manual_seed(0)
    net = Supernet(TINY_SPACE, 10, bn_momentum=0.0)
    x, y = torch.randn(6, 3, 32, 32), torch.randint(0, 10, (6,))
    groups = [_candidates(3, 0), _candidates(2, 1)]
    ctx = StepContext(net, x, y, lambda: torch.autocast("cpu", enabled=False))
    scores = [loss_scorer(_groups([g]), ctx)[0] for g in groups]
    net.train()
    for g, sc in zip(groups, scores, strict=True):
        for arch, score in zip(g, sc, strict=True):
            net.set_arch(arch)
            with torch.no_grad():
                assert score == pytest.approx(-float(F.cross_entropy(net(x), y)), abs=1e-5)


def test_sandwich_step_trains_max_best_middles_and_min() -> None:
    torch.manual_seed(0)
    net = Supernet(TINY_SPACE, 10, bn_momentum=0.0)
    groups = [_candidates(3, 2), _candidates(3, 3)]
    sampler = RecordingSampler(groups)
    step = _step(net, sampler, dropout=0.2, drop_connect=0.2)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    res = step(x, y)
    assert isinstance(res, StepResult) and res.finite and len(res.losses) == 4
    assert res.archs[0] == TINY_SPACE.max_arch() and res.archs[-1] == TINY_SPACE.min_arch()
    for g, sc, chosen in zip(groups, sampler.scores, res.archs[1:3], strict=True):
        assert chosen == g[max(range(3), key=lambda i: sc[i])]
    assert res.loss == pytest.approx(sum(res.losses))
    assert net.dropout == 0.0 and all(b.drop_connect_rate == 0.0 for b in net.blocks)
    changed = [k for k, v in net.state_dict().items() if not torch.equal(v, before[k])]
    assert "classifier.linear.linear.weight" in changed and "first_conv.conv.conv.weight" in changed
    assert all(p.grad is None for p in net.parameters())


def test_distillation_warm_up_trains_middles_and_min_on_the_labels() -> None:
    x, y = torch.randn(6, 3, 32, 32), torch.randint(0, 10, (6,))
    losses = {}
    for labels_only in (False, True):
        torch.manual_seed(0)
        net = Supernet(TINY_SPACE, 10, bn_momentum=0.0)
        step = _step(net, RecordingSampler([_candidates(1, 8), _candidates(1, 9)]), label_smoothing=0.1,
                     labels_only=labels_only)
        losses[labels_only] = step(x, y).losses
    # the max subnet learns from the labels either way; the others from the teacher or from the labels
    assert losses[True][0] == pytest.approx(losses[False][0])
    assert losses[True][-1] != pytest.approx(losses[False][-1])


def test_gradients_are_clipped_by_value() -> None:
    torch.manual_seed(0)
    net = Supernet(TINY_SPACE, 10, bn_momentum=0.0)
    before = [p.detach().clone() for p in net.parameters()]
    step = _step(net, RecordingSampler([_candidates(1, 4), _candidates(1, 5)]), lr=1.0, grad_clip_value=1e-6)
    assert step(torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))).finite
    delta = max(float((p.detach() - b).abs().max()) for p, b in zip(net.parameters(), before, strict=True))
    assert 0 < delta <= 1.05e-6  # float32 rounding of p - lr * 1e-6


def test_non_finite_loss_skips_the_update() -> None:
    torch.manual_seed(0)
    net = Supernet(TINY_SPACE, 10, bn_momentum=0.0)
    before = [p.detach().clone() for p in net.parameters()]
    step = _step(net, RecordingSampler([_candidates(2, 6), _candidates(2, 7)]))
    x = torch.randn(4, 3, 32, 32)
    x[0, 0, 0, 0] = float("nan")
    res = step(x, torch.randint(0, 10, (4,)))
    assert not res.finite and any(math.isnan(v) for v in res.losses)
    assert all(torch.equal(p, b) for p, b in zip(net.parameters(), before, strict=True))


# --------------------------------------------------------------------------- whole runs
def _cfg(**over: Any):
    data: dict[str, Any] = {
        "seed": 0,
        "space": "tiny",
        "data": {"name": "digits", "image_size": 32, "batch_size": 8, "eval_batch_size": 128, "random_shift": 1},
        "optim": {"epochs": 2, "warmup_epochs": 0.5, "lr": 0.4},
        "model": {"dropout": 0.2, "drop_connect": 0.2},
        "sampler": {"method": "bestup", "k": 2, "num_middle": 2, "bin_width": 0.25, "prior_samples": 2000},
        "eval": {"calibration_batches": 1, "max_batches": 1},
        "checkpoint": {"every_steps": 1, "keep_last": 10},
        "runtime": {"device": "cpu", "threads": 1, "steps_per_epoch": 3},
        "log": {"progress": False, "tensorboard": False, "every_steps": 1},
    }
    return config_with(data, **over)


def _final_state(out: Path) -> dict[str, Any]:
    return read_training_checkpoint(out / "checkpoints" / "last.pt")


def _assert_same_training_state(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a["progress"]["global_step"] == b["progress"]["global_step"]
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for (ka, sa), (kb, sb) in zip(a["optimizer"]["state"].items(), b["optimizer"]["state"].items(), strict=True):
        assert ka == kb and torch.equal(sa["momentum_buffer"], sb["momentum_buffer"])
    assert a["sampler"] == b["sampler"]
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])
    assert a["metrics"] == b["metrics"]


def test_train_writes_checkpoints_metrics_and_config(tmp_path: Path) -> None:
    out = tmp_path / "run"
    res = train(_cfg(checkpoint__keep_last=2), out)
    assert res.status == "completed" and res.global_step == 6 and res.epoch == 2
    assert (out / "config.yaml").is_file() and res.checkpoint == out / "checkpoints" / "last.pt"
    assert [n for n, _ in step_files(out)] == [5, 6]  # keep_last=2
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    kinds = [r["kind"] for r in records]
    assert kinds.count("train") == 6 and kinds.count("eval") == 2 and kinds[0] == "start"
    tr = next(r for r in records if r["kind"] == "train")
    assert {"loss", "loss_max", "loss_min", "lr", "mflops_middle", "images_per_s"} <= tr.keys()
    assert len(tr["mflops"]) == 4 and tr["mflops"][0] == pytest.approx(4.415696 - 0.0, rel=0.2)
    ev = [r for r in records if r["kind"] == "eval"][-1]
    assert 0.0 <= ev["min_top1"] <= 100.0 and 0.0 <= ev["max_top1"] <= 100.0
    assert res.final_eval == {k: v for k, v in ev.items() if k not in ("kind", "global_step", "time", "epoch")}
    ck = _final_state(out)
    assert ck["progress"] == {"epoch": 2, "step_in_epoch": 0, "global_step": 6, "nan_streak": 0,
                              "steps_per_epoch": 3, "world_size": 1, "metrics_records": len(records)}
    net, meta = load_supernet(out / "checkpoints" / "last.pt")  # the lead's loader reads it
    assert net.num_classes == 10 and meta["config"]["space"] == "tiny"
    with pytest.raises(ConfigError, match="already holds a run"):
        train(_cfg(), out)


def test_stopped_and_resumed_runs_end_with_identical_weights(tmp_path: Path) -> None:
    full = tmp_path / "full"
    train(_cfg(), full)
    reference = _final_state(full)

    # stopped by a signal after step 4 (inside epoch 2), then resumed with --resume auto
    stopped = tmp_path / "stopped"

    def interrupt(step: int, _: StepResult) -> None:
        if step == 4:
            os.kill(os.getpid(), signal.SIGINT)

    first = train(_cfg(), stopped, on_step=interrupt)
    assert first.status == "interrupted" and first.global_step == 4
    assert read_training_checkpoint(stopped / "checkpoints" / "last.pt")["progress"]["step_in_epoch"] == 1
    second = train(_cfg(), stopped, resume="auto")
    assert second.status == "completed" and second.global_step == 6
    _assert_same_training_state(reference, _final_state(stopped))
    steps = [json.loads(line)["global_step"] for line in (stopped / "metrics.jsonl").read_text().splitlines()
             if json.loads(line)["kind"] == "train"]
    assert steps == [1, 2, 3, 4, 5, 6]  # no duplicated records after the resume

    # resumed from an older step file (step 2, inside epoch 1) into a new folder
    other = tmp_path / "other"
    train(_cfg(), other, resume=full / "checkpoints" / "step_000000002.pt")
    _assert_same_training_state(reference, _final_state(other))


def test_resumed_run_continues_the_authors_schedule(tmp_path: Path) -> None:
    """Stopped after 3 of 6 steps and resumed: every step's LR is the authors' schedule at the
    authors' batch scaling (0.4 x max(1, 8 // 256)), 2 warm-up steps from 0.001."""
    over = {"optim__schedule": "authors", "optim__lr_scaling": "authors", "optim__warmup_start_factor": 0.001,
            "eval__every_epochs": 0}
    out = tmp_path / "run"
    assert train(_cfg(runtime__max_steps=3, **over), out).status == "max_steps"
    assert train(_cfg(**over), out, resume="auto").status == "completed"
    recs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    lrs = [r["lr"] for r in recs if r["kind"] == "train"]
    assert lrs == pytest.approx([0.4 * authors_factor(i, 2, 6, 0.001) for i in range(6)], rel=1e-9)


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != ".attentivenas.lock"}


def test_resume_refuses_settings_that_change_the_result_and_leaves_the_run_as_it_was(tmp_path: Path) -> None:
    """``train --resume auto seed=9`` on a seed-0 run (and any other key that changes what the run computes)
    is one line naming the keys, exit 2, every file of the run unchanged; keys that cannot change the
    result (log, checkpoint cadence, threads, workers) may change."""
    from .cli_helpers import run_cli

    out = tmp_path / "run"
    assert train(_cfg(runtime__max_steps=2, eval__every_epochs=0), out).status == "max_steps"
    before = _files(out)
    for overrides, message in ((["seed=9"], "seed: 0 in the run, 9 now"),
                               (["data.random_shift=2"], "data.random_shift: 1 in the run, 2 now"),
                               (["optim.epochs=3", "loss.temperature=2"],
                                "loss.temperature: 1.0 in the run, 2.0 now; optim.epochs: 2 in the run, 3 now"),
                               (["runtime.steps_per_epoch=2"], "runtime.steps_per_epoch: 3 in the run, 2 now")):
        r = run_cli("train", "--config", str(out / "config.yaml"), "--out", str(out), "--resume", "auto", *overrides)
        last = r.err.splitlines()[-1]  # (the data's description lines come first)
        assert r.code == 2 and last.startswith("error: ") and message in last, (overrides, r.err)
        assert _files(out) == before, overrides
    res = train(_cfg(eval__every_epochs=0, log__every_steps=2, checkpoint__keep_last=4, data__num_workers=0,
                     runtime__max_steps=3), out, resume="auto")
    assert res.status == "max_steps" and res.global_step == 3
    ck = read_training_checkpoint(out / "checkpoints" / "last.pt")
    assert ck["config"]["log"]["every_steps"] == 2 and ck["config_changes"] == []
    assert ck["class_names"] == [str(i) for i in range(10)]  # what the classifier's outputs mean


def test_a_finished_run_resumed_with_other_settings_keeps_its_records(tmp_path: Path) -> None:
    from attentivenas.config import override_config

    out = tmp_path / "run"
    cfg = dict(optim__epochs=1, eval__every_epochs=0)
    assert train(_cfg(**cfg), out).status == "completed"
    before = _files(out)
    with pytest.raises(ConfigError, match="seed: 0 in the run, 9 now"):
        train(override_config(_cfg(**cfg), ["seed=9"]), out, resume="auto")
    assert _files(out) == before
    res = train(_cfg(log__every_steps=5, **cfg), out, resume="auto")  # 0 steps to train
    assert res.status == "completed" and res.global_step == 3
    assert _files(out) == before  # config.yaml still says what ran


def test_a_change_of_course_on_resume_is_recorded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The remedies a divergence message suggests (optim.lr, runtime.amp, ...) may change on resume: a line
    says so and the checkpoint's ``config_changes`` keeps step, key, before and after."""
    out = tmp_path / "run"
    train(_cfg(runtime__max_steps=2, eval__every_epochs=0), out)
    res = train(_cfg(optim__lr=0.2, eval__every_epochs=0, runtime__max_steps=4), out, resume="auto")
    assert res.global_step == 4
    assert "resuming at step 2 with a change of course: optim.lr: 0.4 in the run, 0.2 now" in capsys.readouterr().err
    ck = read_training_checkpoint(out / "checkpoints" / "last.pt")
    assert ck["config_changes"] == [{"step": 2, "changes": {"optim.lr": [0.4, 0.2]}}]
    assert ck["config"]["optim"]["lr"] == 0.2


def test_max_steps_stops_with_a_checkpoint(tmp_path: Path) -> None:
    res = train(_cfg(runtime__max_steps=2, eval__every_epochs=0), tmp_path / "r")
    assert res.status == "max_steps" and res.global_step == 2
    assert _final_state(tmp_path / "r")["progress"]["global_step"] == 2


def test_non_finite_losses_in_a_row_stop_the_run_keeping_the_last_good_checkpoint(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"n": 0}
    real_call = SandwichStep.__call__

    def flaky(self: SandwichStep, images: torch.Tensor, labels: torch.Tensor) -> StepResult:
        calls["n"] += 1
        if calls["n"] <= 2:
            return real_call(self, images, labels)
        return StepResult([float("nan")] * 4, [TINY_SPACE.max_arch()] * 4, False)

    monkeypatch.setattr(SandwichStep, "__call__", flaky)
    out = tmp_path / "nan"
    with pytest.raises(TrainingDiverged, match=r"not finite for 2 steps in a row .* last good checkpoint is kept"):
        train(_cfg(runtime__nan_patience=2, runtime__steps_per_epoch=5, checkpoint__every_steps=2), out)
    ck = _final_state(out)
    assert ck["progress"]["global_step"] == 2
    assert all(torch.isfinite(v).all() for v in ck["model"].values() if v.is_floating_point())
    def strict(token: str) -> None:
        raise AssertionError(f"metrics.jsonl holds {token}, which strict JSON parsers reject")

    lines = (out / "metrics.jsonl").read_text().splitlines()
    kinds = [json.loads(line, parse_constant=strict)["kind"] for line in lines]
    assert kinds.count("nan") == 2 and kinds[-1] == "stopped"


def test_resume_auto_skips_a_corrupt_last_checkpoint(tmp_path: Path) -> None:
    payload = {"format": "attentivenas", "version": 1, "space": {}, "num_classes": 10, "model": {},
               "optimizer": {}, "scheduler": {}, "rng": {}, "progress": {"global_step": 3}}
    save_training_checkpoint(payload, tmp_path, 3)
    payload["progress"] = {"global_step": 5}
    save_training_checkpoint(payload, tmp_path, 5)
    (tmp_path / "checkpoints" / "last.pt").write_bytes(b"torn write")
    path, obj = find_resumable(tmp_path)
    assert path.name == "step_000000005.pt" and obj["progress"]["global_step"] == 5
    (tmp_path / "checkpoints" / "step_000000005.pt").write_bytes(b"")
    path, obj = find_resumable(tmp_path)
    assert path.name == "step_000000003.pt"
    assert find_resumable(tmp_path / "empty") is None


def test_predictor_estimator_picks_the_best_predicted_candidate(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    from attentivenas.accuracy import ArchDataset, ArchRecord, fit_predictor
    from attentivenas.costs import CostModel
    from attentivenas.train.sampling import ArchSampler

    cm, rng = CostModel(TINY_SPACE, 10), np.random.default_rng(0)
    archs = [TINY_SPACE.sample(rng) for _ in range(30)]
    records = [ArchRecord(a, 50 + 10 * cm.arch_flops(a), cm.arch_flops(a), 0.0) for a in archs]
    predictor = fit_predictor(ArchDataset(TINY_SPACE, records, 10), kind="ridge")
    path = predictor.save(tmp_path / "predictor.json")
    seen: list[tuple[list[Arch], list[Arch]]] = []
    real_choose = ArchSampler.choose

    def spy(self: ArchSampler, groups: Any, scores: Any = None) -> Any:
        chosen = real_choose(self, groups, scores)
        seen.append((groups.archs(self.space), chosen.archs))
        return chosen

    monkeypatch.setattr(ArchSampler, "choose", spy)
    res = train(_cfg(sampler__estimator="predictor", sampler__predictor=str(path), sampler__k=3,
                     runtime__max_steps=2, eval__every_epochs=0), tmp_path / "run")
    assert res.status == "max_steps" and len(seen) == 2
    for groups, chosen in seen:
        for group, arch in zip(groups, chosen, strict=True):
            assert arch == group[int(np.argmax(predictor.predict_archs(group)))]


# --------------------------------------------------------------------------- command line
def _cli(*args: str):
    from attentivenas.cli import app
    from attentivenas.cli.train_cmd import register

    if not any(c.name == "train" for c in app.registered_commands):
        register(app)
    return run_cli(*args)


def test_cli_train_prints_where_the_files_are(tmp_path: Path) -> None:
    r = _cli("train", "--config", str(ROOT / "configs" / "quickstart.yaml"), "--out", str(tmp_path / "q"),
             "runtime.max_steps=1", "eval.every_epochs=0", "log.progress=false", "log.tensorboard=false",
             "sampler.prior_samples=2000")
    assert r.code == 0, r.err
    assert f"checkpoint: {tmp_path / 'q' / 'checkpoints' / 'last.pt'}" in r.out
    assert (tmp_path / "q" / "checkpoints" / "last.pt").is_file()


@pytest.mark.parametrize(("overrides", "message"), [
    (["data.name=imagenet"], "data.path is required"),
    (["data.name=imagenet", "data.path=/no/such/imagenet"], "data.path: dataset folder not found"),
    (["sampler.method=greedy"], "'sampler.method'"),
    (["sampler.k=0"], "'sampler.k'"),
    (["sampler.target_min=50", "sampler.prior_samples=2000"], "no arch reaches it"),
    (["data.batch_size=4096"], "data.batch_size=4096 is larger than the training split"),
    (["sampler.estimator=predictor", "sampler.predictor=/no/such/predictor.json"], "sampler.predictor=PATH"),
    (["sampler.estimator=online", "sampler.method=uniform"], "sampler.estimator=online ranks candidates"),
    (["sampler.estimator=online", "optim.epochs=3", "sampler.online.start_epoch=3"],
     "sampler.online.start_epoch (3) must be below"),
    (["sampler.constraint=latency"], "sampler.latency_table (a table from"),
    (["sampler.constraint=latency", "sampler.latency_table=/no/such/table.json"],
     "sampler.latency_table=/no/such/table.json: file not found"),
])
def test_cli_bad_input_is_one_line_and_exit_code_2(tmp_path: Path, overrides: list[str], message: str) -> None:
    r = _cli("train", "--config", str(ROOT / "configs" / "quickstart.yaml"), "--out", str(tmp_path / "x"),
             *overrides)
    assert r.code == 2
    assert message in r.err and r.err.count("\n") == 1 and "Traceback" not in r.err


def test_candidates_can_be_scored_on_part_of_the_batch() -> None:
    torch.manual_seed(0)
    net = Supernet(TINY_SPACE, 10, bn_momentum=0.0)
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    groups = [_candidates(3, 0)]
    ctx = StepContext(net, x, y, lambda: torch.autocast("cpu", enabled=False), score_images=3)
    scores = loss_scorer(_groups(groups), ctx)
    net.train()
    for arch, score in zip(groups[0], scores[0], strict=True):
        net.set_arch(arch)
        with torch.no_grad():
            assert score == pytest.approx(-float(F.cross_entropy(net(x[:3]), y[:3])), abs=1e-5)
    step = _step(net, RecordingSampler([_candidates(3, 2), _candidates(3, 3)]), score_fraction=0.25)
    res = step(x, y)
    full = _step(net, RecordingSampler([_candidates(3, 2), _candidates(3, 3)]))(x, y)
    assert res.scored_mflops == pytest.approx(full.scored_mflops / 4)  # 2 of the 8 images
    assert parse_config({"sampler": {"score_fraction": 0.25}}).sampler.score_fraction == 0.25
    with pytest.raises(ConfigError, match="score_fraction"):
        parse_config({"sampler": {"score_fraction": 0}})


def test_loss_scorer_uses_the_label_smoothed_training_loss() -> None:
    torch.manual_seed(0)
    net = Supernet(TINY_SPACE, 10, bn_momentum=0.0)
    x, y = torch.randn(6, 3, 32, 32), torch.randint(0, 10, (6,))
    groups = [_candidates(2, 0)]
    ctx = StepContext(net, x, y, lambda: torch.autocast("cpu", enabled=False), label_smoothing=0.1)
    scores = loss_scorer(_groups(groups), ctx)
    net.train()
    for arch, score in zip(groups[0], scores[0], strict=True):
        net.set_arch(arch)
        with torch.no_grad():
            logits = net(x)
        assert score == pytest.approx(-float(label_smoothing_ce(logits, y, 0.1)), abs=1e-5)
        assert score != pytest.approx(-float(F.cross_entropy(logits, y)), abs=1e-5)


def test_a_step_with_alphanets_loss_is_finite(tmp_path: Path) -> None:
    from attentivenas.config import override_config

    cfg = override_config(_cfg(sampler__method="uniform", runtime__max_steps=2, eval__every_epochs=0),
                          ["loss.distill=alpha_divergence"])
    res = train(cfg, tmp_path / "alpha")
    assert res.status == "max_steps"
    losses = [r["loss"] for r in map(json.loads, (tmp_path / "alpha" / "metrics.jsonl").read_text().splitlines())
              if r["kind"] == "train"]
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)


def test_fused_sgd_with_zero_buffers_is_pytorchs_sgd_for_late_parameters() -> None:
    """The fused optimiser (every momentum buffer made up front) updates like PyTorch's per-parameter
    SGD, also for a parameter whose first gradient comes after the others have momentum."""
    cfg = parse_config({"optim": {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-4}})
    torch.manual_seed(0)
    ours = torch.nn.Linear(4, 3)
    ref = torch.nn.Linear(4, 3)
    ref.load_state_dict(ours.state_dict())
    opt = build_optimizer(ours, cfg.optim, 256)
    assert opt.defaults["fused"] and all("momentum_buffer" in opt.state[p] for p in ours.parameters())
    ref_opt = torch.optim.SGD([{"params": [ref.weight], "weight_decay": 1e-4}, {"params": [ref.bias], "weight_decay": 0.0}],
                              lr=0.1, momentum=0.9, nesterov=True, foreach=False)
    for step in range(5):
        x = torch.randn(8, 4)
        for model, o in ((ours, opt), (ref, ref_opt)):
            o.zero_grad(set_to_none=True)
            out = model(x) if step >= 2 else F.linear(x, model.weight)  # the bias gets its first gradient at step 2
            out.square().mean().backward()
            o.step()
        assert torch.allclose(ours.weight, ref.weight, atol=1e-6) and torch.allclose(ours.bias, ref.bias, atol=1e-6)


def test_the_trainer_switches_distillation_on_after_the_warm_up(tmp_path: Path, monkeypatch) -> None:
    from attentivenas.train.sandwich import SandwichStep

    seen: list[bool] = []
    original = SandwichStep.__call__

    def spy(step, images, labels):
        seen.append(step.labels_only)
        return original(step, images, labels)

    monkeypatch.setattr(SandwichStep, "__call__", spy)
    train(_cfg(loss__distill_warmup_epochs=0.5, optim__epochs=2, runtime__steps_per_epoch=4), tmp_path / "run")
    assert seen == [True, True, False, False, False, False, False, False]
