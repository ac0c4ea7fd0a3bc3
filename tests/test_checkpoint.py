"""The authors' checkpoints load safely and give the logits of their network; our format round-trips."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from attentivenas.errors import CheckpointError
from attentivenas.nn import Supernet, load_supernet, save_supernet
from attentivenas.nn.checkpoint import authors_kind
from attentivenas.space import ATTENTIVENAS_SPACE, TINY_SPACE, named_arch

from .official_reference import (
    ALPHANET_ARGS,
    ATTENTIVENAS_ARGS,
    official_keys,
    random_authors_state,
    reference_forward,
    save_authors_checkpoint,
    save_small_authors_checkpoint,
)

SPACE = ATTENTIVENAS_SPACE
LAYOUT = dict(
    stage_depths=[s.max_depth for s in SPACE.stages],
    stage_strides=[s.stride for s in SPACE.stages],
    stage_se=[s.se for s in SPACE.stages],
    stage_has_expand=[s.has_expand_conv for s in SPACE.stages],
)


@pytest.fixture(scope="module")
def authors_ckpt(authors_checkpoint) -> tuple[Path, dict]:
    return authors_checkpoint


@pytest.fixture(scope="module")
def authors_net(authors_checkpoint) -> Supernet:
    net, meta = load_supernet(authors_checkpoint[0])
    assert meta["source"] == "authors" and net.num_classes == 1000
    return net


def test_plain_weights_only_load_refuses_authors_file(authors_ckpt) -> None:
    path, _ = authors_ckpt
    with pytest.raises(Exception, match="AttrDict"):
        torch.load(path, weights_only=True)


@pytest.mark.parametrize("name", ["a0", "a3", "a6", "alphanet-a5-base"])
def test_authors_checkpoint_gives_their_logits(authors_ckpt, authors_net: Supernet, name: str) -> None:
    _path, state = authors_ckpt
    arch = named_arch(name)
    sub = authors_net.extract(arch).eval()
    x = torch.randn(2, 3, 160, 160, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = sub(x)
        ref = reference_forward(state, arch.to_dict(), x, **LAYOUT)
    assert (ours - ref).abs().max().item() <= 1e-4
    assert ref.abs().max().item() > 1e-2  # not a trivially zero output


def test_authors_config_in_args_selects_space(tmp_path: Path) -> None:
    state = random_authors_state(official_keys(), seed=2)
    path = tmp_path / "with_args.pth"
    save_authors_checkpoint(path, state, supernet_config=SPACE.to_supernet_config())
    net, _ = load_supernet(path)
    assert net.space is ATTENTIVENAS_SPACE


def test_round_trip_through_our_format(authors_net: Supernet, tmp_path: Path) -> None:
    net = authors_net
    ours = save_supernet(tmp_path / "ours.pt", net, extra={"epoch": 3})
    raw = torch.load(ours, weights_only=True)
    assert raw["format"] == "attentivenas" and raw["epoch"] == 3
    net2, meta = load_supernet(ours)
    assert meta["source"] == "attentivenas" and net2.space.to_dict() == net.space.to_dict()
    for (k1, v1), (k2, v2) in zip(net.state_dict().items(), net2.state_dict().items(), strict=False):
        assert k1 == k2 and torch.equal(v1, v2)
    arch = named_arch("a1")
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(net2.extract(arch).eval()(x), net.extract(arch).eval()(x))


def test_missing_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_supernet(tmp_path / "nope.pt")


def test_corrupt_checkpoint(tmp_path: Path) -> None:
    p = tmp_path / "bad.pt"
    p.write_bytes(b"this is not a checkpoint at all")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_supernet(p)


def test_truncated_checkpoint(tmp_path: Path) -> None:
    net = Supernet(TINY_SPACE, 10)
    p = save_supernet(tmp_path / "t.pt", net)
    p.write_bytes(p.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_supernet(p)


def test_checkpoint_of_another_space(authors_ckpt) -> None:
    path, _ = authors_ckpt
    with pytest.raises(CheckpointError, match="does not match space 'tiny'"):
        load_supernet(path, space="tiny")


def test_unsafe_pickle_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "evil.pt"
    torch.save({"state_dict": {}, "payload": Path("x")}, p)
    with pytest.raises(CheckpointError, match="cannot be loaded safely"):
        load_supernet(p)


def test_unknown_layout(tmp_path: Path) -> None:
    p = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, p)
    with pytest.raises(CheckpointError, match="neither"):
        load_supernet(p)


@pytest.mark.parametrize(("args", "kind"), [
    (None, "attentivenas"), ({}, "attentivenas"), (ATTENTIVENAS_ARGS, "attentivenas"), (ALPHANET_ARGS, "alphanet"),
    ({"exp_name": "AlphaNet_run2"}, "alphanet"), ({"iw_clip": 5.0}, "alphanet"), ({"exp_name": 3}, "attentivenas"),
])
def test_authors_kind_from_their_training_args(args, kind: str) -> None:
    assert authors_kind(args) == kind


def test_loaded_metadata_names_the_checkpoint_kind(authors_ckpt, tmp_path: Path) -> None:
    _net, meta = load_supernet(authors_ckpt[0])  # args without exp_name: AttentiveNAS's
    assert (meta["source"], meta["kind"], meta["exp_name"]) == ("authors", "attentivenas", None)
    alpha = save_small_authors_checkpoint(tmp_path / "alphanet.pth.tar", TINY_SPACE, 10, ALPHANET_ARGS)
    net, meta = load_supernet(alpha)
    assert (meta["source"], meta["kind"], meta["exp_name"]) == ("authors", "alphanet", "alphanet")
    assert net.space.same_as(TINY_SPACE) and net.num_classes == 10
    att = save_small_authors_checkpoint(tmp_path / "attentivenas.pth.tar", TINY_SPACE, 10, ATTENTIVENAS_ARGS)
    assert load_supernet(att)[1]["kind"] == "attentivenas"
    ours = save_supernet(tmp_path / "ours.pt", net)
    assert load_supernet(ours)[1]["kind"] == "ours"
