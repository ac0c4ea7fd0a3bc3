"""Reliability: one run per output folder, checkpoints that prove themselves, recoverable divergence,
tidy restarts, and one line with exit code 2 for user errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from attentivenas.errors import UserError
from attentivenas.io import OutputLock
from attentivenas.nn import Supernet, save_supernet
from attentivenas.space import TINY_SPACE
from tests.synthetic import tamper_predictor

from .cli_helpers import run_cli

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "configs" / "quickstart.yaml")


@pytest.fixture()
def holder(tmp_path: Path):
    """Another process holding the lock of ``tmp_path / 'run'`` (killed at the end)."""
    folder = tmp_path / "run"
    code = ("import sys, time; from attentivenas.io import OutputLock; OutputLock(sys.argv[1]).acquire(); "
            "print('locked', flush=True); time.sleep(120)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    yield folder, proc
    proc.kill()
    proc.wait()


def test_lock_names_the_holder_and_dies_with_it(holder) -> None:
    folder, proc = holder
    with pytest.raises(UserError, match=rf"run folder {folder} is in use by another attentivenas process \(pid {proc.pid}\)"):
        OutputLock(folder, "run folder").acquire()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with OutputLock(folder):  # an OS lock: nothing stale is left behind
        with OutputLock(folder):  # re-entrant in one process
            pass


@pytest.mark.parametrize("command", ["train", "search", "quickstart"])
def test_a_second_process_on_the_same_folder_gets_one_line(holder, tmp_path: Path, command: str) -> None:
    folder, proc = holder
    args = {
        "train": ["train", "--config", QUICK, "--out", str(folder), "runtime.max_steps=1"],
        "search": ["search", "--predictor", str(tmp_path / "p.json"), "--out", str(folder)],
        "quickstart": ["quickstart", "--out", str(folder)],
    }[command]
    r = run_cli(*args)
    assert r.code == 2 and f"is in use by another attentivenas process (pid {proc.pid})" in r.err
    assert r.err.count("\n") == 1
    assert not (folder / "checkpoints").exists() and not (folder / "pareto.json").exists()


def test_predictor_build_locks_its_dataset_file(tmp_path: Path) -> None:
    torch.manual_seed(0)
    ckpt = save_supernet(tmp_path / "tiny.pt", Supernet(TINY_SPACE, 10))
    data = tmp_path / "archs.jsonl"
    with OutputLock(tmp_path, "dataset file", name=".archs.jsonl.lock"):
        code = ("import sys; from attentivenas.cli import main; main(sys.argv[1:])")
        r = subprocess.run([sys.executable, "-c", code, "predictor", "build", "--checkpoint", str(ckpt), "--out",
                            str(data), "--num-archs", "2", "--data", "digits", "--calib-batches", "1", "--device",
                            "cpu"], capture_output=True, text=True)
    assert r.returncode == 2 and f"dataset file {data} is in use by another attentivenas process" in r.stderr
    assert not data.exists()


@pytest.mark.parametrize("command", ["train", "search", "quickstart"])
def test_out_pointing_at_a_file_is_one_line(tmp_path: Path, command: str) -> None:
    target = tmp_path / "a_file"
    target.write_text("x")
    args = {
        "train": ["train", "--config", QUICK, "--out", str(target)],
        "search": ["search", "--predictor", str(tmp_path / "p.json"), "--out", str(target)],
        "quickstart": ["quickstart", "--out", str(target)],
    }[command]
    r = run_cli(*args)
    assert r.code == 2 and f"{target} exists and is not a folder" in r.err and r.err.count("\n") == 1
    assert target.read_text() == "x"


def test_json_stays_strict(tmp_path: Path) -> None:
    from attentivenas.io import atomic_write_json, dumps_json

    assert dumps_json({"a": float("nan"), "b": [float("inf"), 1.5]}) == '{"a": null, "b": [null, 1.5]}'
    path = atomic_write_json(tmp_path / "x.json", {"v": float("-inf")})
    assert json.loads(path.read_text()) == {"v": None}


# --------------------------------------------------------------------------- checkpoints that prove themselves
def _cfg(**over):
    from .synthetic import config_with

    data = {
        "seed": 0, "space": "tiny",
        "data": {"name": "digits", "image_size": 32, "batch_size": 8, "eval_batch_size": 128},
        "optim": {"epochs": 1, "warmup_epochs": 0.5, "lr": 0.4},
        "sampler": {"method": "uniform", "num_middle": 1, "prior_samples": 2000},
        "eval": {"every_epochs": 0, "calibration_batches": 1, "max_batches": 1},
        "checkpoint": {"every_steps": 1, "keep_last": 10},
        "runtime": {"device": "cpu", "threads": 1, "steps_per_epoch": 3},
        "log": {"progress": False, "tensorboard": False, "every_steps": 1},
    }
    return config_with(data, **over)


def _flip_tensor_byte(path: Path) -> None:
    """Flip one bit inside the largest tensor's stored bytes (the zip and pickle stay readable)."""
    import zipfile

    with zipfile.ZipFile(path) as zf:
        info = max((i for i in zf.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    raw = bytearray(path.read_bytes())
    name_len, extra_len = (int.from_bytes(raw[info.header_offset + o: info.header_offset + o + 2], "little")
                           for o in (26, 28))
    pos = info.header_offset + 30 + name_len + extra_len + info.file_size // 2
    raw[pos] ^= 0x10
    path.write_bytes(bytes(raw))


def test_a_flipped_bit_is_detected_and_the_newest_intact_checkpoint_resumed(tmp_path: Path) -> None:
    from attentivenas.errors import CheckpointError
    from attentivenas.nn import load_supernet, read_checkpoint
    from attentivenas.train import train
    from attentivenas.train.state import find_resumable

    out = tmp_path / "run"
    train(_cfg(runtime__max_steps=2), out)
    last, newest = out / "checkpoints" / "last.pt", out / "checkpoints" / "step_000000002.pt"
    assert read_checkpoint(last)["checksum"] == read_checkpoint(newest)["checksum"]
    _flip_tensor_byte(last)
    with pytest.raises(CheckpointError, match="last.pt is damaged: its contents do not match its checksum"):
        load_supernet(last)
    with pytest.warns(RuntimeWarning, match="skipping checkpoint .*last.pt is damaged"):
        path, obj = find_resumable(out)
    assert path == newest and obj["progress"]["global_step"] == 2
    with pytest.warns(RuntimeWarning, match="last.pt is damaged"):
        res = train(_cfg(), out, resume="auto")
    assert res.status == "completed" and res.global_step == 3
    assert read_checkpoint(last)["progress"]["global_step"] == 3  # rewritten intact


# --------------------------------------------------------------------------- divergence that can be recovered from
def test_no_checkpoint_is_written_inside_a_run_of_non_finite_steps(tmp_path: Path, monkeypatch) -> None:
    from attentivenas.train import SandwichStep, StepResult, TrainingDiverged, train
    from attentivenas.train.state import find_resumable

    calls = {"n": 0}
    real_call = SandwichStep.__call__

    def flaky(self, images, labels):
        calls["n"] += 1
        if calls["n"] <= 2:
            return real_call(self, images, labels)
        return StepResult([float("nan")] * 3, [TINY_SPACE.max_arch()] * 3, False)

    monkeypatch.setattr(SandwichStep, "__call__", flaky)
    out = tmp_path / "nan"
    with pytest.raises(TrainingDiverged, match=r"last good checkpoint is kept: .*last.pt"):
        train(_cfg(runtime__nan_patience=3, runtime__steps_per_epoch=6), out)
    path, obj = find_resumable(out)
    assert obj["progress"]["global_step"] == 2 and obj["progress"]["nan_streak"] == 0
    assert [p.name for p in sorted((out / "checkpoints").glob("step_*.pt"))] == ["step_000000001.pt",
                                                                                 "step_000000002.pt"]


def test_optimiser_overrides_take_effect_on_resume(tmp_path: Path) -> None:
    from attentivenas.train import train, warmup_cosine_factor
    from attentivenas.train.state import read_training_checkpoint

    out = tmp_path / "run"
    train(_cfg(runtime__max_steps=2), out)
    res = train(_cfg(optim__lr=0.02, optim__momentum=0.5, optim__weight_decay=0.0), out, resume="auto")
    assert res.status == "completed" and res.global_step == 3
    lrs = [r["lr"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if r["kind"] == "train"]
    peak_old, peak_new = 0.4 * 8 / 256, 0.02 * 8 / 256  # lr x batch / 256
    warmup, total = 2, 3  # 0.5 of 3 steps per epoch, rounded; 1 epoch
    assert lrs[:2] == pytest.approx([peak_old * warmup_cosine_factor(s, warmup, total) for s in (0, 1)])
    assert lrs[2] == pytest.approx(peak_new * warmup_cosine_factor(2, warmup, total))
    groups = read_training_checkpoint(out / "checkpoints" / "last.pt")["optimizer"]["param_groups"]
    assert all(g["momentum"] == 0.5 and g["weight_decay"] == 0.0 and g["initial_lr"] == pytest.approx(peak_new)
               for g in groups)


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan"])
def test_non_finite_numbers_are_refused_by_the_config(value: str) -> None:
    from attentivenas.config import load_config
    from attentivenas.errors import ConfigError

    with pytest.raises(ConfigError, match=r"config key 'optim.lr': Input should be a finite number"):
        load_config(None, [f"optim.lr={value}"])


# --------------------------------------------------------------------------- tidy after crashes
def test_a_crash_between_evaluation_and_the_epoch_end_save_leaves_no_duplicate_record(tmp_path: Path,
                                                                                      monkeypatch) -> None:
    from attentivenas.train import train
    from attentivenas.train.loop import Trainer

    real_save = Trainer.save
    calls = {"n": 0}

    def crashing_save(self):
        calls["n"] += 1
        if calls["n"] == 4:  # steps 1-3 saved; the epoch-end save after the evaluation dies
            raise RuntimeError("killed")
        real_save(self)

    monkeypatch.setattr(Trainer, "save", crashing_save)
    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match="killed"):
        train(_cfg(eval__every_epochs=1, optim__epochs=2), out)
    monkeypatch.setattr(Trainer, "save", real_save)
    (out / "checkpoints" / ".last.pt.k1ll3d.tmp").write_bytes(b"torn")  # a write a kill interrupted
    res = train(_cfg(eval__every_epochs=1, optim__epochs=2), out, resume="auto")
    assert res.status == "completed" and res.global_step == 6
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if r["kind"] == "eval"] == [1, 2]
    assert [r["global_step"] for r in records if r["kind"] == "train"] == [1, 2, 3, 4, 5, 6]
    assert not list((out / "checkpoints").glob(".*.tmp"))


# --------------------------------------------------------------------------- every user error is one line
def test_a_full_disk_is_one_line_naming_the_file_and_leaves_no_torn_file(tmp_path: Path, monkeypatch) -> None:
    import errno

    from attentivenas.io import atomic_write_json

    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    target = tmp_path / "out" / "pareto.json"
    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(UserError, match=rf"cannot write {target}: No space left on device"):
        atomic_write_json(target, {"a": 1})
    assert list(target.parent.iterdir()) == []


def _images(root: Path, classes: int, per_class: int = 2) -> None:
    from PIL import Image

    for split in ("train", "val"):
        for c in range(classes):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(per_class):
                Image.new("RGB", (20, 20), (40 * c, 10 * i, 90)).save(folder / f"{i}.png")


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return save_supernet(tmp_path_factory.mktemp("ck") / "tiny.pt", Supernet(TINY_SPACE, 2))


def test_a_corrupt_image_is_named(tmp_path: Path, tiny_checkpoint: Path) -> None:
    _images(tmp_path, 2, 4)
    bad = tmp_path / "train" / "class1" / "broken.png"
    bad.write_bytes(b"\x89PNG not really")
    r = run_cli("evaluate", "--checkpoint", str(tiny_checkpoint), "--arch", "min", "--data", str(tmp_path),
                "--split", "test", "--calib-batches", "1", "--calib-batch-size", "16", "--device", "cpu")
    assert r.code == 2 and f"cannot read image {bad}" in r.err and r.err.count("\n") == 1  # reads every training image


def test_a_one_class_image_folder_is_one_line(tmp_path: Path, tiny_checkpoint: Path) -> None:
    _images(tmp_path, 1)
    r = run_cli("evaluate", "--checkpoint", str(tiny_checkpoint), "--arch", "min", "--data", str(tmp_path))
    assert r.code == 2 and "holds 1 class folder; a classifier needs at least 2" in r.err and r.err.count("\n") == 1


@pytest.mark.parametrize(("args", "message"), [
    (["flops", "--space", "tiny", "--arch", '{"resolution": ' + "9" * 400 + ', "width": [8], "depth": [1], '
      '"kernel_size": [3], "expand_ratio": [1]}'], "is not in space 'tiny'"),
    (["flops", "--arch", '{"resolution": 224, "width": [' + "1" * 400 + '], "depth": [1], "kernel_size": [3], '
      '"expand_ratio": [1]}'], "arch field 'width' has 1 values"),
])
def test_huge_integers_in_an_arch_are_one_line(args: list[str], message: str) -> None:
    r = run_cli(*args)
    assert r.code == 2 and message in r.err and r.err.count("\n") == 1


def test_a_space_flag_that_is_not_a_boolean_is_refused(tmp_path: Path) -> None:
    import yaml

    from attentivenas.space import TINY_SPACE as T

    cfg = T.to_supernet_config()
    cfg["mb3"]["se"] = "maybe"
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump({"supernet_config": cfg}))
    r = run_cli("space", "--space", str(path))
    assert r.code == 2 and "supernet_config.mb3.se must be true or false, got 'maybe'" in r.err


@pytest.mark.parametrize("value", [-1.0, float("nan"), 0.0])
def test_latency_tables_with_bad_entries_are_refused(tmp_path: Path, value: float) -> None:
    from .synthetic import synthetic_latency_table

    table = synthetic_latency_table()
    key = next(iter(table.entries))
    data = table.to_dict()
    data["entries"][key] = value
    path = tmp_path / "table.json"
    path.write_text(json.dumps(data))
    r = run_cli("latency", "measure", "--arch", "min", "--space", "tiny", "--table", str(path), "--repeats", "1")
    assert r.code == 2 and f"entry '{key}'" in r.err and "positive finite latency" in r.err
    assert r.err.count("\n") == 1


def test_remeasure_top_below_zero_is_one_line(tmp_path: Path) -> None:
    r = run_cli("search", "--predictor", str(tmp_path / "p.json"), "--remeasure-top", "-1", "--out", str(tmp_path / "o"))
    assert r.code == 2 and "'accuracy.remeasure_top'" in r.err and r.err.count("\n") == 1


# --------------------------------------------------------------------------- bounded work on hostile files
@pytest.fixture(scope="module")
def predictor_files(tmp_path_factory) -> dict[str, Path]:
    import numpy as np

    from attentivenas.accuracy import ArchDataset, ArchRecord, fit_predictor
    from attentivenas.costs import CostModel

    cost = CostModel(TINY_SPACE, 10)
    genes = TINY_SPACE.sample_genes(np.random.default_rng(0), 40)
    ds = ArchDataset(TINY_SPACE, [ArchRecord(TINY_SPACE.decode(g), 50 + 5 * float(cost.flops(g[None])[0]), 0.0, 0.0)
                                  for g in genes], 10)
    folder = tmp_path_factory.mktemp("pred")
    return {k: fit_predictor(ds, k).save(folder / f"{k}.json") for k in ("rf", "lgbm", "ridge")}


def _cycle(m):  # node 1 points back to the root
    m["left"][1] = 0


def _deep(m):
    m["depth"] = 10**12


@pytest.mark.parametrize(("kind", "change", "message"), [
    ("rf", _cycle, "a tree has a cycle or is deeper than its stated depth"),
    ("rf", _deep, "tree depth 1000000000000 is outside"),
    ("rf", lambda m: m["feature"].__setitem__(0, 99), "the trees use feature 99"),
    ("rf", lambda m: m["left"].__setitem__(0, 10**9), "tree node index out of range"),
    ("ridge", lambda m: m["coef"].__setitem__(0, None), "ridge coefficients must be finite numbers"),
    ("lgbm", lambda m: m.update(model_str=m["model_str"].replace("left_child=1", "left_child=0", 1)),
     "child indices do not form a tree"),
    ("lgbm", lambda m: m.update(model_str=m["model_str"].replace("split_feature=", "split_feature=999 ", 1)),
     "split arrays do not hold"),
    ("lgbm", lambda m: m.update(model_str=m["model_str"].replace("max_feature_idx=30", "max_feature_idx=2", 1)),
     "split on an unknown feature"),
])
def test_crafted_predictor_files_are_one_line(predictor_files, tmp_path: Path, kind, change, message) -> None:
    from attentivenas.accuracy import load_predictor
    from attentivenas.errors import CheckpointError

    bad = tamper_predictor(predictor_files[kind], tmp_path, change)
    with pytest.raises(CheckpointError, match=rf"predictor file {bad} is corrupt: ValueError: .*{message}"):
        load_predictor(bad)


def test_deep_json_and_yaml_alias_bombs_are_one_line(tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    r = run_cli("flops", "--arch", str(deep))
    assert r.code == 2 and "nests deeper than 64 levels" in r.err and r.err.count("\n") == 1
    bomb = tmp_path / "bomb.yaml"
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 12)]
    bomb.write_text("\n".join(lines) + "\n")
    r = run_cli("train", "--config", str(bomb))
    assert r.code == 2 and f"config file {bomb} is refused: it expands to more than 100000 values" in r.err
    r = run_cli("space", "--space", str(bomb))
    assert r.code == 2 and "space file" in r.err and "alias bomb" in r.err
    many = tmp_path / "many.yaml"
    many.write_text("a: &a 1\nb: [" + ", ".join(["*a"] * 300) + "]\n")
    r = run_cli("train", "--config", str(many))
    assert r.code == 2 and "it uses aliases more than 256 times" in r.err


@pytest.mark.parametrize(("change", "message"), [
    (lambda c: c["mb2"].update(c=[10**9]), "mb2.c = 1000000000 is above the limit of 8192"),
    (lambda c: c["mb2"].update(d=list(range(1, 40))), "mb2.d has 39 values; at most 32"),
    (lambda c: c.update(resolutions=[10**6]), "resolutions = 1000000 is above the limit of 2048"),
    (lambda c: c["mb3"].update(t=[1e9]), "mb3.t must hold numbers in (0, 16]"),
    (lambda c: c["first_conv"].update(s="two"), "first_conv.s = 'two'; allowed: [1, 2]"),
])
def test_space_values_are_bounded(tmp_path: Path, change, message) -> None:
    import yaml

    cfg = TINY_SPACE.to_supernet_config()
    change(cfg)
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump({"supernet_config": cfg}))
    r = run_cli("space", "--space", str(path))
    assert r.code == 2 and message in r.err and r.err.count("\n") == 1


# --------------------------------------------------------------------------- resume picks the right history
def test_a_rewind_sets_the_abandoned_branch_aside(tmp_path: Path) -> None:
    from attentivenas.train import train
    from attentivenas.train.state import find_resumable, read_training_checkpoint

    out = tmp_path / "run"
    ck = out / "checkpoints"
    train(_cfg(optim__epochs=2, runtime__max_steps=5, checkpoint__keep_last=3), out)  # steps 3, 4, 5 kept
    old5 = read_training_checkpoint(ck / "step_000000005.pt")["checksum"]
    # rewind to step 3 with another learning rate: a new branch, stopped at step 4
    res = train(_cfg(optim__epochs=2, optim__lr=0.1, runtime__max_steps=4, checkpoint__keep_last=2), out,
                resume=ck / "step_000000003.pt")
    assert res.status == "max_steps" and res.global_step == 4
    abandoned = list((ck / "abandoned").iterdir())
    assert len(abandoned) == 1 and sorted(p.name for p in abandoned[0].iterdir()) == [
        "last.pt", "step_000000004.pt", "step_000000005.pt"]
    assert read_training_checkpoint(abandoned[0] / "step_000000005.pt")["checksum"] == old5
    # the rotation (keep 2) kept the new branch's files, and auto resumes the new branch
    assert sorted(p.name for p in ck.glob("step_*.pt")) == ["step_000000003.pt", "step_000000004.pt"]
    path, obj = find_resumable(out)
    assert obj["progress"]["global_step"] == 4 and obj["config"]["optim"]["lr"] == 0.1


def test_when_every_checkpoint_is_damaged_auto_stops_and_fresh_starts_over(tmp_path: Path) -> None:
    from attentivenas.errors import CheckpointError
    from attentivenas.train import train

    out = tmp_path / "run"
    train(_cfg(runtime__max_steps=2), out)
    for p in (out / "checkpoints").glob("*.pt"):
        p.write_bytes(b"garbage")
    with pytest.warns(RuntimeWarning), pytest.raises(CheckpointError, match=r"no checkpoint in .* can be resumed: "
                                                                              r"every one is damaged or unsafe"):
        train(_cfg(), out, resume="auto")
    r = run_cli("train", "--config", QUICK, "--out", str(out), "--resume", "auto", "runtime.max_steps=1")
    assert r.code == 2 and "pass --resume fresh to start over" in r.err and r.err.count("\n") == 1
    res = train(_cfg(runtime__max_steps=1), out, resume="fresh")
    assert res.status == "max_steps" and res.global_step == 1
    assert len(list((out / "checkpoints" / "abandoned").glob("*/*.pt"))) == 3  # step 1, step 2, last


# --------------------------------------------------------------------------- frozen ranks
@pytest.mark.slow
def test_a_frozen_rank_ends_the_job_within_the_timeout(tmp_path: Path) -> None:
    import socket
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "run"
    procs = []
    for rank in (0, 1):
        env = {**os.environ, "RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_RANK": str(rank), "LOCAL_WORLD_SIZE": "2",
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "attentivenas", "train", "--config", QUICK, "--out", str(out),
             "runtime.device=cpu", "runtime.dist_timeout_s=10", "log.tensorboard=false", "log.progress=false",
             "eval.every_epochs=0", "sampler.prior_samples=2000", "log.every_steps=1"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    try:
        deadline = time.monotonic() + 120
        metrics = out / "metrics.jsonl"
        while not (metrics.is_file() and '"train"' in metrics.read_text()):
            assert time.monotonic() < deadline and procs[0].poll() is None, "training did not start"
            time.sleep(0.5)
        os.kill(procs[1].pid, signal.SIGSTOP)
        t0 = time.monotonic()
        _, err = procs[0].communicate(timeout=90)
        waited = time.monotonic() - t0
    finally:
        for p in procs:
            p.kill()
            p.wait()
    assert procs[0].returncode == 1 and waited < 10 + 30
    assert "error: rank 0: another rank stopped answering for 10 s (runtime.dist_timeout_s)" in err
    assert "Traceback" not in err


def test_a_repeated_yaml_key_is_one_line(tmp_path: Path) -> None:
    cfg = tmp_path / "twice.yaml"
    cfg.write_text("seed: 0\noptim:\n  lr: 0.1\n  epochs: 2\n  lr: 0.2\n")
    r = run_cli("train", "--config", str(cfg))
    assert r.code == 2 and r.err.count("\n") == 1
    assert f"config file {cfg}" in r.err and "key 'lr' appears twice in one mapping (line 5)" in r.err


def test_the_packaged_quickstart_config_is_the_repositorys() -> None:
    from attentivenas.pipeline import quickstart_config_path

    root = Path(__file__).resolve().parents[1]
    assert quickstart_config_path().read_text() == (root / "configs" / "quickstart.yaml").read_text()


# --------------------------------------------------------------------------- a refused resume changes nothing
def _tree_hashes(folder: Path) -> dict[str, str]:
    import hashlib

    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_refused_resume_leaves_every_file_of_the_run_as_it_was(tmp_path: Path) -> None:
    """``--resume auto`` with a setting the checkpoint cannot continue (here sampler.method) is one line,
    exit 2, and leaves ``config.yaml`` and every other file byte-identical (it used to write the
    refused settings into ``config.yaml``)."""
    from attentivenas.train import train

    out = tmp_path / "run"
    train(_cfg(runtime__max_steps=2), out)
    before = _tree_hashes(out)
    assert "config.yaml" in before and "checkpoints/last.pt" in before
    r = run_cli("train", "--config", str(out / "config.yaml"), "--out", str(out), "--resume", "auto",
                "sampler.method=bestup", "sampler.k=3")
    assert r.code == 2 and "differs from the checkpoint's" in r.err and r.err.count("\n") == 1
    assert _tree_hashes(out) == before


# --------------------------------------------------------------------------- the command line's own errors, help, warnings
@pytest.mark.parametrize(("args", "message", "hint"), [
    (["search", "--bogus"], "No such option: --bogus", "attentivenas search --help"),
    (["search", "--generations", "abc"], "Invalid value for '--generations'", "attentivenas search --help"),
    (["bogus"], "No such command 'bogus'", "attentivenas --help"),
    (["latency", "build-table", "--space", "tiny"], "Missing option '--out'", "attentivenas latency build-table --help"),
])
def test_an_unknown_flag_or_a_bad_value_is_one_line(args: list[str], message: str, hint: str) -> None:
    r = run_cli(*args)
    assert r.code == 2 and r.err.startswith(f"error: {message}") and r.err.count("\n") == 1, r.err
    assert f"try '{hint}'" in r.err and "╭" not in r.err and r.out == ""


@pytest.mark.parametrize("command", [["search"], ["latency", "build-table"]])
def test_help_is_readable_at_80_columns_when_piped(command: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    r = run_cli(*command, "--help")
    assert r.code == 0 and r.out.startswith("Usage: attentivenas")
    assert max(map(len, r.out.splitlines())) <= 80
    assert not any(c in r.out for c in "╭│╰…")  # no boxes, no option names cut short
    flags = {"search": "--calib-batch-size", "latency": "--drift-correction"}[command[0]]
    assert f"  {flags}" in r.out


def test_a_warning_is_one_plain_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """``warning: message``: no file, line number, category or source line (Python's default)."""
    import warnings

    import attentivenas.cli as cli

    shown: list[str] = []

    def app(**_: object) -> None:
        shown.append(warnings.formatwarning("skipping checkpoint last.pt is corrupt\n(UnpicklingError)",
                                            RuntimeWarning, "/src/attentivenas/train/state.py", 86,
                                            '    warnings.warn(f"skipping {exc}")'))

    monkeypatch.setattr(cli, "app", app)
    cli.main([])
    assert shown == ["warning: skipping checkpoint last.pt is corrupt (UnpicklingError)\n"]
    assert warnings.formatwarning is not cli._warning_line  # put back when the command ends


@pytest.mark.parametrize("command", ["train", "search"])
def test_a_folder_given_as_config_is_named_as_a_folder(tmp_path: Path, command: str) -> None:
    extra = ["--predictor", str(tmp_path / "p.json")] if command == "search" else []
    r = run_cli(command, "--config", str(tmp_path), *extra)
    assert r.code == 2 and f"config file {tmp_path} is a folder" in r.err and r.err.count("\n") == 1


def test_a_table_of_another_space_of_the_same_name_says_where_they_differ() -> None:
    import json as _json

    from attentivenas.space import SearchSpace

    from .synthetic import synthetic_latency_table

    cfg = _json.loads(_json.dumps(TINY_SPACE.to_supernet_config()))
    cfg["resolutions"] = cfg["resolutions"][:-1]
    edited = SearchSpace.from_supernet_config(cfg, name="tiny")
    with pytest.raises(UserError, match=r"built for another space named 'tiny' \(its supernet_config differs in "
                                        r"resolutions\)") as info:
        synthetic_latency_table().check_space(edited)
    assert "not for space 'tiny'" not in str(info.value)


def test_published_on_a_space_that_cannot_hold_them_is_one_line(tiny_checkpoint: Path, tmp_path: Path) -> None:
    r = run_cli("evaluate", "--checkpoint", str(tiny_checkpoint), "--published", "--data", "digits", "--device", "cpu")
    assert r.code == 2 and "this checkpoint's space 'tiny' cannot hold them" in r.err and r.err.count("\n") == 1
    from attentivenas.config import SearchConfig
    from attentivenas.search import SearchResult, write_search_outputs

    result = SearchResult(pareto=[], config=SearchConfig.model_validate({"published": True}), space_name="tiny")
    with pytest.warns(UserWarning, match=r"--published: .* not plotted beside a front of space 'tiny'"):
        write_search_outputs(tmp_path / "s", result)
