"""Subnet fine-tuning (``attentivenas finetune``): a subnet checkpoint that ``evaluate`` and ``export``
take, a result with the top-1 before and after, exact resume after SIGKILL, and its refusals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from attentivenas.errors import CheckpointError, ConfigError
from attentivenas.nn import Supernet, load_checkpoint_model, load_supernet, read_checkpoint, save_supernet
from attentivenas.space import TINY_SPACE
from attentivenas.train.finetune import FinetuneSettings, finetune

from .cli_helpers import run_cli

ROOT = Path(__file__).resolve().parents[1]
#: quick settings: a few steps, one small calibration batch, 64 images per split
QUICK = ["--data", "digits", "--calib-batches", "1", "--calib-batch-size", "32", "--max-images", "64",
         "--device", "cpu", "--threads", "1"]


@pytest.fixture(scope="module")
def supernet_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("ft")
    return save_supernet(folder / "tiny.pt", Supernet(TINY_SPACE, 10),
                         extra={"config": {"data": {"name": "digits", "batch_size": 16}}})


def _settings(**over: object) -> FinetuneSettings:
    base = {"epochs": 2, "steps_per_epoch": 3, "calib_batches": 1, "calib_batch_size": 32, "max_images": 64,
            "device": "cpu", "threads": 1, "checkpoint_every": 1}
    return FinetuneSettings(**{**base, **over})  # type: ignore[arg-type]


def test_finetune_writes_a_subnet_checkpoint_that_evaluate_and_export_take(supernet_ckpt: Path,
                                                                           tmp_path: Path) -> None:
    out = tmp_path / "ft"
    r = run_cli("finetune", "--checkpoint", str(supernet_ckpt), "--arch", "min", "--out", str(out), "--epochs", "1",
                "--steps-per-epoch", "2", *QUICK, "--json")
    assert r.code == 0, r.err
    result = json.loads(r.out)
    assert result == json.loads((out / "result.json").read_text())
    for when in ("before", "after"):
        assert set(result[when]) == {"holdout", "test"}
        assert all(0 <= result[when][s]["top1"] <= 100 and result[when][s]["samples"] == 64 for s in result[when])
    assert result["steps"] == 2 and result["distill"] == "kd" and result["batch_size"] == 16
    assert result["lr"] == pytest.approx(0.5 * 0.1 * 16 / 256)  # half the recipe's LR at the batch
    ckpt = out / "checkpoints" / "last.pt"
    host, meta = load_checkpoint_model(ckpt)
    assert meta["subnet"] and host.arch == TINY_SPACE.min_arch() and meta["kind"] == "ours"
    with pytest.raises(CheckpointError, match="is a fine-tuned subnet"):
        load_supernet(ckpt)
    # evaluate measures it as finetune did: without --arch, the same top-1 on the hold-out
    ev = run_cli("evaluate", "--checkpoint", str(ckpt), "--calib-batches", "1", "--calib-batch-size", "32",
                 "--max-images", "64", "--device", "cpu", "--json")
    assert ev.code == 0, ev.err
    assert json.loads(ev.out)["top1"] == pytest.approx(result["after"]["holdout"]["top1"])
    wrong = run_cli("evaluate", "--checkpoint", str(ckpt), "--arch", "max", "--device", "cpu")
    assert wrong.code == 2 and "holds the fine-tuned subnet" in wrong.err
    ex = run_cli("export", "--checkpoint", str(ckpt), "--format", "safetensors", "--out", str(tmp_path / "m.st"))
    assert ex.code == 0, ex.err
    refused = run_cli("search", "--checkpoint", str(ckpt), "--out", str(tmp_path / "s"))
    assert refused.code == 2 and "not a supernet" in refused.err and refused.err.count("\n") == 1
    again = run_cli("finetune", "--checkpoint", str(supernet_ckpt), "--arch", "min", "--out", str(out), *QUICK)
    assert again.code == 2 and "already holds a fine-tuning run" in again.err


def test_plain_labels_and_bad_flags(supernet_ckpt: Path, tmp_path: Path) -> None:
    res = finetune(supernet_ckpt, "min", tmp_path / "plain", "digits", _settings(distill="none", epochs=1),
                   log=lambda _: None)
    assert res.result["distill"] == "none" and res.result["steps"] == 3
    r = run_cli("finetune", "--checkpoint", str(supernet_ckpt), "--arch", "min", "--out", str(tmp_path / "x"),
                "--distill", "soft", *QUICK)
    assert r.code == 2 and "--distill 'soft' is not one of" in r.err
    r = run_cli("finetune", "--checkpoint", str(supernet_ckpt), "--out", str(tmp_path / "x"), *QUICK)
    assert r.code == 2 and "exactly one of --arch" in r.err


def test_channels_last_trains_the_same_subnet_and_stores_one_layout(supernet_ckpt: Path, tmp_path: Path) -> None:
    """CPU steps run in channels-last memory by default (2.4-2.5x faster on the tiny space); the result
    is the contiguous run's up to float rounding, and the checkpoint's tensors are stored contiguous."""
    runs = {cl: finetune(supernet_ckpt, "max", tmp_path / f"cl-{cl}", "digits",
                         _settings(distill="none", epochs=1, channels_last=cl), log=lambda _: None)
            for cl in (True, False)}
    model = {cl: read_checkpoint(r.checkpoint)["model"] for cl, r in runs.items()}
    assert model[True].keys() == model[False].keys()
    for k, v in model[True].items():
        assert v.is_contiguous(), k
        assert torch.allclose(v.float(), model[False][k].float(), rtol=1e-3, atol=1e-4), k
    with pytest.raises(ConfigError, match="channels_last must be"):
        _settings(channels_last="yes").check()


def test_from_scratch_trains_a_fresh_init_at_the_recipes_lr(supernet_ckpt: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    ft = sys.modules["attentivenas.train.finetune"]  # the module (the package re-exports the function's name)

    started: list[dict[str, torch.Tensor]] = []
    real = ft.calibrate_bn

    def spy(model, batches):  # the student's weights as they start (before any step)
        if not started and getattr(model, "arch", None) == TINY_SPACE.min_arch():
            started.append({k: v.clone() for k, v in model.state_dict().items()})
        return real(model, batches)

    monkeypatch.setattr(ft, "calibrate_bn", spy)
    res = finetune(supernet_ckpt, "min", tmp_path / "scratch", "digits", _settings(init="scratch", distill="none", seed=5,
                                                                                     epochs=1), log=lambda _: None)
    assert res.result["init"] == "scratch" and res.result["lr"] == pytest.approx(0.1 * 16 / 256)  # the recipe's
    inherited = load_supernet(supernet_ckpt)[0].extract(TINY_SPACE.min_arch()).state_dict()
    conv = next(k for k in inherited if k.endswith("weight") and inherited[k].dim() == 4)
    assert not torch.equal(started[0][conv], inherited[conv])  # not the supernet's weights (it was seeded 0)
    # resuming it as a fine-tuning run is refused in one line
    r = run_cli("finetune", "--checkpoint", str(supernet_ckpt), "--arch", "min", "--out", str(tmp_path / "scratch"),
                "--resume", "auto", *QUICK)
    assert r.code == 2 and "started from --init scratch" in r.err and r.err.count("\n") == 1


def test_every_subnet_of_a_pareto_set(supernet_ckpt: Path, tmp_path: Path) -> None:
    pareto = tmp_path / "pareto.json"
    archs = [TINY_SPACE.min_arch(), TINY_SPACE.max_arch()]
    pareto.write_text(json.dumps([{"arch": a.to_dict(), "mflops": 1.0} for a in archs]))
    out = tmp_path / "all"
    r = run_cli("finetune", "--checkpoint", str(supernet_ckpt), "--pareto", str(pareto), "--out", str(out),
                "--epochs", "1", "--steps-per-epoch", "1", *QUICK)
    assert r.code == 0, r.err
    index = json.loads((out / "index.json").read_text())
    assert [e["folder"] for e in index] == ["subnet_000", "subnet_001"]
    assert [e["arch"] for e in index] == [a.to_dict() for a in archs]
    for e in index:
        assert (out / e["folder"] / "result.json").is_file() and e["after"]["test"]["samples"] == 64
    r = run_cli("finetune", "--checkpoint", str(supernet_ckpt), "--pareto", str(pareto), "--out", str(out),
                "--epochs", "1", "--steps-per-epoch", "1", "--resume", "auto", *QUICK)
    assert r.code == 0, r.err  # finished subnets are measured again, not retrained


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}


def test_finetune_resumes_exactly_after_sigkill(supernet_ckpt: Path, tmp_path: Path) -> None:
    settings = _settings(epochs=3, steps_per_epoch=4)
    whole = finetune(supernet_ckpt, "min", tmp_path / "whole", "digits", settings, log=lambda _: None)
    cut = tmp_path / "cut"
    args = [sys.executable, "-m", "attentivenas", "finetune", "--checkpoint", str(supernet_ckpt), "--arch", "min",
            "--out", str(cut), "--epochs", "3", "--steps-per-epoch", "4", "--checkpoint-every", "1", *QUICK]
    p = subprocess.Popen(args, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not (cut / "checkpoints" / "step_000000003.pt").is_file():
        assert p.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, "the run never got to the point of the kill"
        time.sleep(0.01)
    p.send_signal(signal.SIGKILL)
    p.wait()
    killed_at = read_checkpoint(cut / "checkpoints" / "last.pt")["progress"]["global_step"]
    assert killed_at < 12 and not (cut / "result.json").exists()
    resumed = finetune(supernet_ckpt, "min", cut, "digits", settings, resume="auto", log=lambda _: None)
    a = read_checkpoint(whole.checkpoint)
    b = read_checkpoint(resumed.checkpoint)
    assert a["progress"]["global_step"] == b["progress"]["global_step"] == 12
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for key in ("before", "after"):
        assert whole.result[key] == resumed.result[key]
    steps = [json.loads(line)["global_step"] for line in (cut / "metrics.jsonl").read_text().splitlines()
             if json.loads(line)["kind"] == "train"]
    assert steps == sorted(set(steps))  # nothing logged twice after the resume
