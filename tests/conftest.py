"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from threadpoolctl import threadpool_limits

from attentivenas.nn import Supernet
from attentivenas.space import TINY_SPACE

from .official_reference import official_keys, random_authors_state, save_authors_checkpoint

#: the longest test files, longest first (about 64 s down to 14 s each on CI's 2-core machine, estimated from
#: `--durations` of `make test` and of each file alone): `make test` (--dist loadfile --no-loadscope-reorder)
#: hands whole files to its two workers in collection order, so these start first and the short files fill the
#: end, instead of a long file starting last while the other worker idles. Other files keep their order after
#: these. It is only an order: a stale list costs time, never a result.
LONG_FILES = ("test_export_runtimes.py", "test_runtimes.py", "test_quantize.py",
              "test_measured_provenance.py", "test_search_scale.py", "test_reproduce_sampling.py",
              "test_reliability.py", "test_imagenet_path.py", "test_user_journey.py", "test_export_defaults.py",
              "test_quickstart.py",
              "test_evaluate.py", "test_latency_kit_executorch.py",
              "test_latency_kit.py", "test_bundle.py", "test_distributed.py", "test_int8_recipe.py",
              "test_runtime_records.py",
              "test_train.py", "test_finetune.py", "test_cli_foundation.py", "test_augment.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The files of :data:`LONG_FILES` first, in its order (a stable sort: tests keep their order in a file)."""
    rank = {name: i for i, name in enumerate(LONG_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """One intra-op thread for the whole suite: CI has 2 cores, and OpenMP spinning on an
    oversubscribed machine makes the tiny convolutions of these tests many times slower. The same
    for numpy's and scipy's BLAS (the predictors' fits): with the other worker busy, OpenBLAS's second
    thread made the user journey's logistic regression 15 times slower, for the same result."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1, user_api="blas"):
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
