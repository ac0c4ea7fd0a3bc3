"""Supernet transfer (``train ... init_from=CKPT``): what fits is kept, a changed classifier is new, a
checkpoint of another space is refused with one line, a resumed run ignores init_from, and a short
transfer on the digits runs end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from attentivenas.config import OptimConfig, load_config
from attentivenas.errors import CheckpointError
from attentivenas.nn import Supernet, read_checkpoint, save_supernet
from attentivenas.space import TINY_SPACE, SearchSpace
from attentivenas.train.optim import build_optimizer
from attentivenas.train.transfer import load_init

from .cli_helpers import run_cli

ROOT = Path(__file__).resolve().parents[1]
TRANSFER = str(ROOT / "configs" / "transfer.yaml")
QUICK = str(ROOT / "src" / "attentivenas" / "configs" / "quickstart.yaml")
#: a couple of steps, no epoch-end evaluation, nothing written but the checkpoints
SHORT = ["runtime.max_steps=2", "runtime.device=cpu", "eval.every_epochs=0", "log.progress=false",
         "log.tensorboard=false", "sampler.prior_samples=2000"]


def _ckpt(tmp_path: Path, num_classes: int = 10, space: SearchSpace = TINY_SPACE, name: str = "src.pt") -> Path:
    torch.manual_seed(1)
    return save_supernet(tmp_path / name, Supernet(space, num_classes))


def _wider_tiny() -> SearchSpace:
    """The tiny space with every width choice doubled: the same blocks, other shapes."""
    cfg = json.loads(json.dumps(TINY_SPACE.to_supernet_config()))

    def double(node: object) -> object:
        if isinstance(node, dict):
            return {k: ([2 * int(w) for w in v] if k == "c" else double(v)) for k, v in node.items()}
        if isinstance(node, list):
            return [double(v) for v in node]
        return node

    return SearchSpace.from_supernet_config(double(cfg), name="tiny-wide")  # type: ignore[arg-type]


def test_every_fitting_tensor_is_kept_and_a_changed_classifier_is_new(tmp_path: Path) -> None:
    path = _ckpt(tmp_path, 10)
    saved = read_checkpoint(path)["model"]
    torch.manual_seed(2)
    net = Supernet(TINY_SPACE, 5)
    fresh = {k: v.clone() for k, v in net.state_dict().items()}
    report = load_init(net, path)
    state = net.state_dict()
    for k, v in state.items():
        if k.startswith("classifier."):
            assert torch.equal(v, fresh[k]), k  # re-initialised: the new net's own (seeded) init
        else:
            assert torch.equal(v, saved[k]), k
    assert report.classifier_new and (report.classes_from, report.classes_to) == (10, 5)
    assert (report.kept, report.new, report.skipped) == (len(state) - 2, 2, 2)
    assert "kept 364 of 366 tensors, 2 new" in report.line() and "re-initialised for 5 classes" in report.line()


def test_the_classifier_is_kept_when_it_fits_unless_asked_new(tmp_path: Path) -> None:
    path = _ckpt(tmp_path, 10)
    saved = read_checkpoint(path)["model"]
    net = Supernet(TINY_SPACE, 10)
    report = load_init(net, path)
    assert not report.classifier_new and report.new == 0 and report.skipped == 0
    assert all(torch.equal(v, saved[k]) for k, v in net.state_dict().items())
    torch.manual_seed(3)
    other = Supernet(TINY_SPACE, 10)
    cls = other.classifier.linear.linear.weight.clone()
    assert load_init(other, path, classifier="new").classifier_new
    assert torch.equal(other.classifier.linear.linear.weight, cls)


def test_the_authors_layout_transfers(tmp_path: Path) -> None:
    path = _ckpt(tmp_path, 10)
    model = read_checkpoint(path)["model"]
    authors = tmp_path / "authors.pth.tar"
    torch.save({"epoch": 1, "args": {"supernet_config": TINY_SPACE.to_supernet_config()},
                "state_dict": {f"module.{k}": v for k, v in model.items()}}, authors)
    net = Supernet(TINY_SPACE, 3)
    report = load_init(net, authors)
    assert report.kind == "attentivenas" and report.classifier_new and report.kept == len(model) - 2


def _error_line(err: str) -> str:
    """The one error line, the last on stderr (``train`` describes its data on the lines before it)."""
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and err.splitlines()[-1] == errors[0], err
    return errors[0]


def test_a_checkpoint_of_another_space_is_refused(tmp_path: Path) -> None:
    path = _ckpt(tmp_path, 10, _wider_tiny(), "wide.pt")
    with pytest.raises(CheckpointError, match=r"is a supernet of another space: \d+ of the \d+ tensors of space "
                                              r"'tiny' fit it \(it stores space 'tiny-wide'"):
        load_init(Supernet(TINY_SPACE, 10), path)
    out = tmp_path / "run"
    r = run_cli("train", "--config", QUICK, "--out", str(out), f"init_from={path}", *SHORT)
    assert r.code == 2 and _error_line(r.err).count("is a supernet of another space") == 1
    assert not (out / "checkpoints").exists()


def test_the_classifier_lr_scale_gives_the_classifier_its_own_groups() -> None:
    net = Supernet(TINY_SPACE, 10)
    opt = build_optimizer(net, OptimConfig(classifier_lr_scale=10.0), 256)
    scaled = [g for g in opt.param_groups if "lr_scale" in g]
    assert len(opt.param_groups) == 4 and len(scaled) == 2
    assert all(g["lr"] == pytest.approx(1.0) for g in scaled) and opt.param_groups[0]["lr"] == pytest.approx(0.1)
    assert sum(len(g["params"]) for g in scaled) == 2  # the classifier's weight and bias
    assert len(build_optimizer(net, OptimConfig(), 256).param_groups) == 2


def test_a_short_transfer_on_the_digits_end_to_end(tmp_path: Path) -> None:
    """A supernet trained two steps on the digits, carried into the transfer config with 12 classes."""
    src = tmp_path / "src"
    r = run_cli("train", "--config", QUICK, "--out", str(src), *SHORT)
    assert r.code == 0, r.err
    ckpt = src / "checkpoints" / "last.pt"
    out = tmp_path / "transfer"
    r = run_cli("train", "--config", TRANSFER, "--out", str(out), f"init_from={ckpt}", "model.num_classes=12",
                "optim.classifier_lr_scale=10", *SHORT)
    assert r.code == 0, r.err
    line = next(ln for ln in r.err.splitlines() if ln.startswith("init_from"))
    assert "kept 364 of 366 tensors, 2 new" in line and "re-initialised for 12 classes" in line
    done = read_checkpoint(out / "checkpoints" / "last.pt")
    assert done["num_classes"] == 12 and done["progress"]["global_step"] == 2
    assert load_config(out / "config.yaml").init_from == str(ckpt)
    start = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert start["kind"] == "start" and start["init_from"]["kept"] == 364 and start["init_from"]["classifier_new"]
    # a resumed run continues from its own checkpoint: init_from is not read again (here: gone)
    ckpt.unlink()
    r = run_cli("train", "--config", TRANSFER, "--out", str(out), "--resume", "auto", f"init_from={ckpt}",
                "model.num_classes=12", *SHORT[1:], "runtime.max_steps=3")
    assert r.code == 2 and _error_line(r.err).count("cannot switch between 1 and another value") == 1
    r = run_cli("train", "--config", TRANSFER, "--out", str(out), "--resume", "auto", f"init_from={ckpt}",
                "model.num_classes=12", "optim.classifier_lr_scale=10", *SHORT[1:], "runtime.max_steps=3")
    assert r.code == 0, r.err
    assert "init_from" not in r.err
    assert read_checkpoint(out / "checkpoints" / "last.pt")["progress"]["global_step"] == 3
