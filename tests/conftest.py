"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from attentivenas.nn import Supernet
from attentivenas.space import TINY_SPACE

from .official_reference import official_keys, random_authors_state, save_authors_checkpoint


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """One intra-op thread for the whole suite: CI has 2 cores, and OpenMP spinning on an
    oversubscribed machine makes the tiny convolutions of these tests many times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_net() -> Supernet:
    """A freshly initialised tiny-space supernet (10 classes) in eval mode."""
    torch.manual_seed(0)
    return Supernet(TINY_SPACE, 10).eval()


@pytest.fixture(scope="session")
def authors_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    """A checkpoint in the authors' layout (random weights and BN statistics) and its state dict."""
    state = random_authors_state(official_keys(), seed=1)
    path = tmp_path_factory.mktemp("authors") / "attentive_nas_supernet.pth.tar"
    save_authors_checkpoint(path, state)
    return path, state
