"""Memory model: weight bytes and peak activation bytes, analytic vs traced on real subnets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attentivenas.costs import (
    MemoryModel,
    activation_steps,
    count_params,
    memory_mb,
    peak_activation_bytes,
    weight_bytes,
)
from attentivenas.errors import UserError
from attentivenas.nn import Supernet, measure_peak_activation_bytes, measure_weight_bytes
from attentivenas.space import ATTENTIVENAS_SPACE, TINY_SPACE, named_arch


def _archs(n: int, seed: int) -> list:
    rng = np.random.default_rng(seed)
    return [TINY_SPACE.min_arch(), TINY_SPACE.max_arch()] + [TINY_SPACE.sample(rng) for _ in range(n)]


def test_analytic_peak_equals_traced_peak(tiny_net: Supernet) -> None:
    # The analytic liveness model describes exactly the tensors PyTorch eager keeps alive in the
    # static subnet's forward, and the CPU tracer sees exactly those op outputs, so the tolerance is
    # zero bytes (kernel-internal scratch buffers are outside both).
    for arch in _archs(6, seed=3):
        sub = tiny_net.extract(arch)
        for batch in (1, 3):
            shape = (batch, 3, arch.resolution, arch.resolution)
            measured = measure_peak_activation_bytes(sub, shape)
            assert measured == peak_activation_bytes(TINY_SPACE, arch, batch, num_classes=10)


def test_resized_input_counts_the_resized_copy(tiny_net: Supernet) -> None:
    arch = TINY_SPACE.min_arch()  # resolution 24
    sub = tiny_net.extract(arch)
    measured = measure_peak_activation_bytes(sub, (2, 3, 32, 32))
    analytic = peak_activation_bytes(TINY_SPACE, arch, 2, num_classes=10, input_size=32)
    assert measured == analytic
    # the resized copy (2 x 3 x 24 x 24 floats) is live during the first conv only
    steps = dict(activation_steps(TINY_SPACE, arch, 2, num_classes=10))
    assert analytic >= steps["first_conv"] - 4 * 2 * 3 * 24 * 24


def test_first_conv_step_by_hand() -> None:
    arch = TINY_SPACE.min_arch()  # r=24, first conv 8 channels at 12x12
    steps = activation_steps(TINY_SPACE, arch, batch=1, num_classes=10)
    assert steps[0] == ("first_conv", 4 * (3 * 24 * 24 + 2 * 8 * 12 * 12))
    assert max(v for _, v in steps) == peak_activation_bytes(TINY_SPACE, arch, 1, num_classes=10)


def test_peak_is_linear_in_batch_and_itemsize() -> None:
    arch = TINY_SPACE.sample(np.random.default_rng(0))
    one = peak_activation_bytes(TINY_SPACE, arch, 1)
    assert peak_activation_bytes(TINY_SPACE, arch, 8) == 8 * one
    assert peak_activation_bytes(TINY_SPACE, arch, 1, torch.float16) * 2 == one
    assert peak_activation_bytes(TINY_SPACE, arch, 1, "bfloat16") * 2 == one


def test_weight_bytes_match_the_subnet(tiny_net: Supernet) -> None:
    for arch in _archs(3, seed=5):
        sub = tiny_net.extract(arch)
        assert weight_bytes(TINY_SPACE, arch, num_classes=10) == measure_weight_bytes(sub)
        assert weight_bytes(TINY_SPACE, arch, num_classes=10, include_buffers=True) == measure_weight_bytes(sub, True)
        assert weight_bytes(TINY_SPACE, arch, torch.float16, 10) == 2 * count_params(TINY_SPACE, arch, 10)


def test_vectorised_model_matches_per_arch_functions() -> None:
    rng = np.random.default_rng(11)
    for space in (TINY_SPACE, ATTENTIVENAS_SPACE):
        genes = space.sample_genes(rng, 40)
        model = MemoryModel(space, num_classes=1000, batch=2)
        peaks = model.peak_activation_bytes(genes)
        weights = model.weight_bytes(genes)
        for row, p, w in zip(genes, peaks, weights, strict=True):
            arch = space.decode(row)
            assert p == peak_activation_bytes(space, arch, 2)
            assert w == weight_bytes(space, arch)
        mb = memory_mb(space, genes, batch=2)
        np.testing.assert_allclose(mb, (peaks + weights) / 1e6)
        assert model(genes).shape == (40,)


def test_a0_memory_footprint() -> None:
    a0 = named_arch("a0")
    # 192x192 input; the peak is in mb2's first block (expand to 96 channels at 96x96)
    peak = peak_activation_bytes(ATTENTIVENAS_SPACE, a0, 1)
    steps = dict(activation_steps(ATTENTIVENAS_SPACE, a0, 1))
    assert max(steps, key=steps.get) == "mb2.block0"
    # live: the input, the first conv's output (argument of the block sequence), the block input
    # (mb1's output, kept for the residual) and the expand output twice (conv output + BN output)
    x, a, b = 3 * 192 * 192, 16 * 96 * 96, 16 * 96 * 96
    e, d = 64 * 96 * 96, 64 * 48 * 48  # expand output (16 x 4 channels), depthwise output
    assert peak == 4 * (x + a + b + max(2 * e, e + 2 * d))
    assert weight_bytes(ATTENTIVENAS_SPACE, a0) == 4 * count_params(ATTENTIVENAS_SPACE, a0)


def test_bad_dtype_and_batch() -> None:
    arch = TINY_SPACE.min_arch()
    with pytest.raises(UserError, match="unknown dtype"):
        weight_bytes(TINY_SPACE, arch, "float7")
    with pytest.raises(UserError, match="batch"):
        MemoryModel(TINY_SPACE, batch=0)
