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

from attentivenas.config import parse_model
from attentivenas.errors import CheckpointError, ConfigError
from attentivenas.nn import Supernet, load_checkpoint_model, load_supernet, read_checkpoint, save_supernet
from attentivenas.space import TINY_SPACE
from attentivenas.train.finetune import finetune
from attentivenas.train.finetune_settings import FinetuneSettings

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
    base = {"epochs": 2, "steps_per_epoch": 3, "measure": {"calib_batches": 1, "calib_batch_size": 32, "max_images": 64},
            "device": "cpu", "threads": 1, "checkpoint_every": 1}
    return parse_model(FinetuneSettings, {**base, **over})  # a bad value: one ConfigError line naming it


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
    assert result["steps"] == 2 and result["batch_size"] == 16
    # the default, --distill auto, chose from the teacher's margin over the subnet on the hold-out
    choice = result["distill_choice"]
    assert result["distill_requested"] == "auto" and choice["split"] == "holdout" and choice["threshold"] == 2.0
    assert result["distill"] == choice["chosen"] == ("kd" if choice["margin"] >= 2.0 else "none")
    assert choice["student_top1"] == result["before"]["holdout"]["top1"]
    assert choice["margin"] == pytest.approx(choice["teacher_top1"] - choice["student_top1"], abs=1e-3)
    assert sum(line.startswith("distill auto: the teacher") for line in r.err.splitlines()) == 1
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


# --------------------------------------------------------------------------- the classifier's classes
def _imagefolder(root: Path, classes: list[str], per_class: int = 6, size: int = 12) -> Path:
    """A small ImageFolder (train/ and val/, ``per_class`` random PNGs per class folder)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in classes:
            folder = root / split / c
            folder.mkdir(parents=True)
            for j in range(per_class):
                Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"{j}.png")
    return root


TEN = [f"class_{i}" for i in range(10)]


@pytest.fixture(scope="module")
def folder_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 10-class tiny supernet trained (as far as its record says) on a folder of classes class_0..class_9."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("ftf")
    data = {"name": "imagefolder", "path": str(folder / "src"), "image_size": 32, "eval_resize": 32, "batch_size": 8}
    return save_supernet(folder / "tiny.pt", Supernet(TINY_SPACE, 10), extra={"config": {"data": data},
                                                                             "class_names": TEN})


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != ".attentivenas.lock"} if folder.exists() else {}


FOLDER_QUICK = ["--calib-batches", "1", "--calib-batch-size", "8", "--max-images", "16", "--device", "cpu",
                "--threads", "1", "--epochs", "1", "--steps-per-epoch", "1"]


@pytest.mark.parametrize(("classes", "message"), [
    (TEN[:9], "the data has 9 classes but the classifier of"),  # 9 folders on a 10-class head
    (TEN[::-1], "label 0 is 'class_0' in the data, 'class_9' in the checkpoint; the same names in another order"),
    ([f"kind_{i}" for i in range(10)], "label 0 is 'kind_0' in the data, 'class_0' in the checkpoint; pass"),
])
def test_data_of_other_classes_than_the_head_is_refused(folder_ckpt: Path, tmp_path: Path, classes: list[str],
                                                        message: str) -> None:
    ckpt = folder_ckpt
    if classes == TEN[::-1]:  # the checkpoint's classes are TEN reversed: the folders sort the other way
        obj = read_checkpoint(folder_ckpt)
        ckpt = save_supernet(tmp_path / "rev.pt", load_supernet(folder_ckpt)[0],
                             extra={"config": obj["config"], "class_names": TEN[::-1]})
        classes = TEN
    data = _imagefolder(tmp_path / "data", classes)
    out = tmp_path / "ft"
    r = run_cli("finetune", "--checkpoint", str(ckpt), "--arch", "min", "--out", str(out), "--data", str(data),
                *FOLDER_QUICK)
    assert r.code == 2 and message in r.err and "--new-head" in r.err and r.err.count("\n") == 1, r.err
    assert _tree(out) == {}  # nothing written


def test_a_new_head_learns_the_datas_classes(folder_ckpt: Path, tmp_path: Path) -> None:
    data = _imagefolder(tmp_path / "data", [f"kind_{i}" for i in range(9)])
    out = tmp_path / "ft"
    r = run_cli("finetune", "--checkpoint", str(folder_ckpt), "--arch", "min", "--out", str(out), "--data", str(data),
                "--new-head", *FOLDER_QUICK, "--json")
    assert r.code == 0, r.err
    assert "new head: the classifier re-initialised for the data's 9 classes (the checkpoint's has 10)" in r.err
    result = json.loads(r.out)
    assert result["new_head"] and result["num_classes"] == 9 and result["distill"] == "none"
    ckpt = read_checkpoint(out / "checkpoints" / "last.pt")
    assert ckpt["num_classes"] == 9 and ckpt["class_names"] == [f"kind_{i}" for i in range(9)]
    host, _ = load_checkpoint_model(out / "checkpoints" / "last.pt")
    assert host(torch.zeros(1, 3, 32, 32)).shape == (1, 9)
    kd = run_cli("finetune", "--checkpoint", str(folder_ckpt), "--arch", "min", "--out", str(tmp_path / "kd"),
                 "--data", str(data), "--new-head", "--distill", "kd", *FOLDER_QUICK)
    assert kd.code == 2 and "--distill kd cannot teach a new head" in kd.err and kd.err.count("\n") == 1


def test_the_same_classes_fine_tune_the_head(folder_ckpt: Path, tmp_path: Path) -> None:
    data = _imagefolder(tmp_path / "data", TEN)
    r = run_cli("finetune", "--checkpoint", str(folder_ckpt), "--arch", "min", "--out", str(tmp_path / "ft"),
                "--data", str(data), *FOLDER_QUICK, "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["num_classes"] == 10 and "note:" not in r.err


def test_the_authors_head_is_compared_by_its_class_count(tmp_path: Path) -> None:
    """The authors' checkpoints record no class names: the digits on a 1000-class head are refused, on a
    10-class head they train, with a note that only the count was compared."""
    from .official_reference import save_small_authors_checkpoint

    big = save_small_authors_checkpoint(tmp_path / "a1000.pth.tar", TINY_SPACE, 1000)
    r = run_cli("finetune", "--checkpoint", str(big), "--arch", "min", "--out", str(tmp_path / "big"), *QUICK)
    assert r.code == 2 and "the data has 10 classes but the classifier of" in r.err and "has 1000" in r.err
    assert r.err.count("\n") == 1
    small = save_small_authors_checkpoint(tmp_path / "a10.pth.tar", TINY_SPACE, 10)
    r = run_cli("finetune", "--checkpoint", str(small), "--arch", "min", "--out", str(tmp_path / "small"),
                "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "16", *QUICK)
    assert r.code == 0, r.err
    assert "records no class names (the authors' checkpoints do not); only the class count (10) was compared" in r.err


def test_check_head_rules() -> None:
    from attentivenas.errors import UserError
    from attentivenas.train.transfer import check_head

    assert check_head("c", 10, TEN, 10, TEN) is None
    assert check_head("c", 12, TEN, 10, TEN) is None  # a larger head trained on these labels
    assert "only the class count" in str(check_head("c", 10, None, 10, TEN))
    assert "the data's class names are not known" in str(check_head("c", 10, TEN, 10, None))
    with pytest.raises(UserError, match="the data has 10 classes but the classifier of c has 1000"):
        check_head("c", 1000, None, 10, TEN)
    with pytest.raises(UserError, match=r"the data's classes \(12\) are not the 10 classes"):
        check_head("c", 12, TEN, 12, [*TEN, "x", "y"])  # a 12-output head trained on 10 named classes


# --------------------------------------------------------------------------- distill auto
@pytest.mark.parametrize(("teacher", "chosen"), [(100.0, "kd"), (0.0, "none")])
def test_distill_auto_follows_the_teachers_margin(supernet_ckpt: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch, teacher: float, chosen: str) -> None:
    ft = sys.modules["attentivenas.train.finetune"]
    monkeypatch.setattr(ft, "evaluate_subnet", lambda *a, **k: {"top1": teacher, "top5": 100.0, "samples": 64})
    lines: list[str] = []
    res = finetune(supernet_ckpt, "min", tmp_path / "auto", "digits", _settings(epochs=1, steps_per_epoch=1),
                   log=lines.append)
    assert res.result["distill"] == chosen and res.result["distill_choice"]["teacher_top1"] == teacher
    line = next(x for x in lines if x.startswith("distill auto:"))
    assert ("distilling from it" if chosen == "kd" else "learning from the labels") in line
    assert read_checkpoint(res.checkpoint)["distill"] == chosen


def test_distill_auto_without_a_hold_out_learns_from_the_labels(tmp_path: Path) -> None:
    torch.manual_seed(0)
    ckpt = save_supernet(tmp_path / "t.pt", Supernet(TINY_SPACE, 10),
                         extra={"config": {"data": {"name": "digits", "batch_size": 16, "val_fraction": 0.0}}})
    lines: list[str] = []
    res = finetune(ckpt, "min", tmp_path / "ft", None, _settings(epochs=1, steps_per_epoch=1), log=lines.append)
    assert res.result["distill"] == "none" and res.result["distill_choice"]["reason"] == "no hold-out"
    assert any("holds nothing out" in x for x in lines)


# --------------------------------------------------------------------------- resume: the same run only
def test_resume_refuses_another_supernet_arch_or_settings(supernet_ckpt: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    base = ["--checkpoint", str(supernet_ckpt), "--arch", "min", "--out", str(out), "--epochs", "2",
            "--steps-per-epoch", "2", "--distill", "none", *QUICK]
    r = run_cli("finetune", *base)
    assert r.code == 0, r.err
    before = _tree(out)
    torch.manual_seed(1)
    other = save_supernet(tmp_path / "other.pt", Supernet(TINY_SPACE, 10),
                          extra={"config": {"data": {"name": "digits", "batch_size": 16}}})
    cases = [
        (["--checkpoint", str(other)], "fine-tunes a subnet of another supernet"),
        (["--arch", "max"], "is not a fine-tuning checkpoint of arch"),
        (["--lr", "0.5"], "finetune.lr: None in the run, 0.5 now"),
        (["--seed", "9"], "finetune.seed: 0 in the run, 9 now"),
        (["--distill", "auto"], "finetune.distill: 'none' in the run, 'auto' now"),
        (["--epochs", "3"], "finetune.epochs: 2 in the run, 3 now"),
        (["--calib-batches", "2"], "finetune.calib_batches: 1 in the run, 2 now"),
    ]
    for change, message in cases:
        args = list(base)
        i = args.index(change[0]) if change[0] in args else None
        if i is not None:
            args[i + 1] = change[1]
        else:
            args += change
        r = run_cli("finetune", *args, "--resume", "auto")
        assert r.code == 2 and message in r.err and r.err.count("\n") == 1, (change, r.err)
        assert _tree(out) == before, change  # result.json, metrics, checkpoints: as they were
    # what cannot change the result may: the checkpoint cadence, the evaluation batch
    r = run_cli("finetune", *base, "--resume", "auto", "--eval-batch-size", "32", "--checkpoint-every", "0")
    assert r.code == 0, r.err
    assert json.loads((out / "result.json").read_text())["after"] == json.loads(before["result.json"])["after"]
