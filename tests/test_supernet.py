"""Supernet: authors' key layout, dynamic ops, eval mode, batch 1, static extraction, TorchScript."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attentivenas.costs import count_flops, count_params
from attentivenas.nn import Supernet
from attentivenas.nn.static import SqueezeExcite
from attentivenas.space import ATTENTIVENAS_SPACE, TINY_SPACE, named_arch

from .official_reference import official_keys


def _randomise_bn(net: torch.nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)


@pytest.fixture(scope="module")
def big_net() -> Supernet:
    torch.manual_seed(0)
    return Supernet(ATTENTIVENAS_SPACE, 1000)


@pytest.fixture(scope="module")
def tiny_net() -> Supernet:
    torch.manual_seed(0)
    net = Supernet(TINY_SPACE, 10)
    _randomise_bn(net)
    return net


def test_state_dict_matches_authors_layout(big_net: Supernet) -> None:
    rows = [r for r in official_keys() if ".bn_tracking." not in r[0]]
    expected = {k: shape for k, shape, _dtype, _kind in rows}
    ours = {k: tuple(v.shape) for k, v in big_net.state_dict().items()}
    assert ours == expected
    assert sum(p.numel() for p in big_net.parameters()) == 23_934_704


def test_authors_init_zeroes_the_last_bn_of_every_block() -> None:
    """The authors' supernet constructor: PyTorch's default init of every layer, then the weight
    (gamma) of the last BN of every block zeroed (every block of theirs and ours has a shortcut): 37
    zero gammas in the attentivenas space, every other gamma 1. Training builds it so by default."""
    from attentivenas.config import parse_config
    from attentivenas.train.loop import build_training_supernet

    torch.manual_seed(0)
    cfg = parse_config({"space": "attentivenas", "runtime": {"reuse_freed_memory": False}})
    net, _ = build_training_supernet(cfg, ATTENTIVENAS_SPACE, 1000, torch.device("cpu"))
    gammas = {k: p for k, p in net.named_parameters() if k.endswith(".bn.weight")}
    zero = sorted(k for k, p in gammas.items() if not p.any())
    assert len(net.blocks) == 37
    assert zero == sorted(f"blocks.{i}.mobile_inverted_conv.point_linear.bn.bn.weight" for i in range(37))
    assert all(bool((p == 1).all()) for k, p in gammas.items() if k not in zero) and len(gammas) > 37
    w = net.classifier.linear.linear.weight.detach()  # PyTorch's default: uniform within 1 / sqrt(fan_in)
    bound = 1 / w.shape[1] ** 0.5
    assert bound * 0.99 < float(w.abs().max()) <= bound
    for init in ("pytorch", "kaiming_fan_out"):
        plain = Supernet(TINY_SPACE, 10, init=init)  # the class default: no gamma zeroed
        assert all(bool(p.all()) for k, p in plain.named_parameters() if k.endswith(".bn.weight"))
        zeroed = Supernet(TINY_SPACE, 10, init=init, zero_init_residual=True)
        assert all(not b.mobile_inverted_conv.point_linear.bn.bn.weight.any() for b in zeroed.blocks)


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_static_subnet_equals_supernet(tiny_net: Supernet, mode: str) -> None:
    rng = np.random.default_rng(1)
    for _ in range(4):
        arch = TINY_SPACE.sample(rng)
        tiny_net.set_arch(arch)
        tiny_net.train(mode == "train")
        sub = tiny_net.extract()
        sub.train(mode == "train")
        x = torch.randn(3, 3, 32, 32)
        # train-mode BN normalises 3 values per channel on the last 1x1 maps, which magnifies the
        # float rounding of the supernet's small-map kernels (matrix products) against nn.Conv2d
        tol = 1e-4 if mode == "train" else 1e-5
        assert (tiny_net(x) - sub(x)).abs().max().item() <= tol
        assert sum(p.numel() for p in sub.parameters()) == count_params(TINY_SPACE, arch, 10)
    tiny_net.eval()


def test_eval_mode_uses_sliced_running_stats(tiny_net: Supernet) -> None:
    tiny_net.eval()
    tiny_net.set_arch(TINY_SPACE.min_arch())
    x = torch.randn(4, 3, 24, 24)
    y_batch = tiny_net(x)
    y_single = torch.cat([tiny_net(x[i : i + 1]) for i in range(4)])
    assert torch.allclose(y_batch, y_single, atol=1e-5)  # eval mode: no batch statistics


def test_any_resolution_and_batch_one(big_net: Supernet) -> None:
    big_net.eval()
    for res in ATTENTIVENAS_SPACE.resolutions:
        arch = named_arch("a0")
        arch = type(arch)(res, arch.width, arch.depth, arch.kernel_size, arch.expand_ratio)
        big_net.set_arch(arch)
        with torch.no_grad():
            out = big_net(torch.randn(1, 3, 64, 64))
        assert out.shape == (1, 1000)


def test_input_is_resized_to_arch_resolution(tiny_net: Supernet) -> None:
    import torch.nn.functional as F

    tiny_net.eval()
    arch = TINY_SPACE.sample(np.random.default_rng(3))
    tiny_net.set_arch(arch)
    x = torch.randn(2, 3, 40, 40)
    resized = F.interpolate(x, size=(arch.resolution, arch.resolution), mode="bicubic", align_corners=False)
    assert torch.allclose(tiny_net(x), tiny_net(resized), atol=1e-6)


def test_set_arch_is_cheap(tiny_net: Supernet) -> None:
    import time

    rng = np.random.default_rng(0)
    archs = [TINY_SPACE.sample(rng) for _ in range(200)]
    t = time.perf_counter()
    for a in archs:
        tiny_net.set_arch(a)
    assert (time.perf_counter() - t) / len(archs) < 2e-3


def test_set_arch_rejects_outside_values(tiny_net: Supernet) -> None:
    from attentivenas.errors import ArchError

    bad = TINY_SPACE.max_arch()
    bad = type(bad)(bad.resolution, bad.width, (9,) * 7, bad.kernel_size, bad.expand_ratio)
    with pytest.raises(ArchError, match="depth"):
        tiny_net.set_arch(bad)


def test_regularization_only_in_train_mode(tiny_net: Supernet) -> None:
    tiny_net.set_arch(TINY_SPACE.max_arch())
    tiny_net.set_regularization(dropout=0.5, drop_connect=0.5)
    rates = [b.drop_connect_rate for b in tiny_net.blocks]
    last_two = set(tiny_net.stage_blocks[-1]) | set(tiny_net.stage_blocks[-2])
    n = len(tiny_net.blocks)
    assert all((r == pytest.approx(0.5 * i / n)) if i in last_two else r == 0 for i, r in enumerate(rates))
    x = torch.randn(4, 3, 32, 32)
    tiny_net.eval()
    a, b = tiny_net(x), tiny_net(x)
    assert torch.equal(a, b)
    tiny_net.train()
    torch.manual_seed(0)
    c = tiny_net(x)
    tiny_net.set_regularization(0.0, 0.0)
    d = tiny_net(x)
    assert not torch.allclose(c, d)
    tiny_net.eval()


def test_bn_momentum_zero_freezes_statistics_even_on_a_nan_batch() -> None:
    """The recipe's BN momentum 0: training never changes the running statistics, not even when a
    non-finite batch (a step the trainer skips) would make ``0 * NaN`` of PyTorch's update NaN."""
    torch.manual_seed(0)
    x = torch.randn(4, 3, 32, 32)
    for momentum in (0.0, 0.1):
        net = Supernet(TINY_SPACE, 10, bn_momentum=momentum).train()
        stats = {k: v.clone() for k, v in net.state_dict().items() if ".running_" in k}
        bad = x.clone()
        bad[0, 0, 0, 0] = float("nan")
        net(x if momentum else bad)
        after = {k: v for k, v in net.state_dict().items() if ".running_" in k}
        same = all(torch.equal(stats[k], after[k]) for k in stats)
        assert same == (momentum == 0.0)
        assert net.first_conv.bn.bn.num_batches_tracked.item() == 1


def test_torchscript_matches_eager(tiny_net: Supernet) -> None:
    tiny_net.eval()
    sub = tiny_net.extract(TINY_SPACE.sample(np.random.default_rng(5))).eval()
    from attentivenas.export.formats import script_subnet

    scripted = script_subnet(sub)
    x = torch.randn(2, 3, 32, 32)
    assert torch.allclose(scripted(x), sub(x), atol=1e-6)


def test_analytic_flops_match_module_count(tiny_net: Supernet) -> None:
    """Count MACs from the real modules with forward hooks and compare to the cost model."""
    rng = np.random.default_rng(7)
    for _ in range(5):
        arch = TINY_SPACE.sample(rng)
        sub = tiny_net.extract(arch).eval()
        macs: list[int] = []

        def hook(m, _inp, out, macs=macs):
            if isinstance(m, SqueezeExcite):  # its two 1x1 convs run as matrix products (batch 1)
                macs.append(2 * m.fc.reduce.in_channels * m.fc.reduce.out_channels)
            elif isinstance(m, torch.nn.Conv2d):
                macs.append(m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1] * out.numel())
            else:
                macs.append(m.in_features * m.out_features)

        handles = [m.register_forward_hook(hook) for m in sub.modules()
                   if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear, SqueezeExcite))]
        with torch.no_grad():
            sub(torch.randn(1, 3, arch.resolution, arch.resolution))
        for h in handles:
            h.remove()
        assert sum(macs) / 1e6 == pytest.approx(count_flops(TINY_SPACE, arch, 10), abs=1e-9)


def test_analytic_flops_match_torch_flop_counter() -> None:
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    net = Supernet(ATTENTIVENAS_SPACE, 1000).eval()
    for name in ("a0", "a3"):
        arch = named_arch(name)
        sub = net.extract(arch).eval()
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            sub(torch.randn(1, 3, arch.resolution, arch.resolution))
        # torch counts 2 FLOPs per MAC and the SE / classifier biases not at all
        assert counter.get_total_flops() / 2 / 1e6 == pytest.approx(count_flops(ATTENTIVENAS_SPACE, arch), abs=0.01)


def test_tiny_space_is_cpu_sized() -> None:
    """Forward + backward of the tiny space's largest subnet at batch 64 well under a second, in the
    memory format training uses on CPU (channels-last)."""
    import time

    torch.manual_seed(0)
    net = Supernet(TINY_SPACE, 10).to(memory_format=torch.channels_last)
    net.set_arch(TINY_SPACE.max_arch())
    x = torch.randn(64, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        net(x).logsumexp(1).mean().backward()
        best = min(best, time.perf_counter() - t)
    assert best < 0.8


def test_shared_slice_gradients_equal_autograd_slicing() -> None:
    """Sliced parameters add their gradient into ``param.grad`` in place: the same values, element
    for element, as autograd's zero-filled whole-parameter gradients, over a sandwich of subnets."""
    from attentivenas.nn import layers

    rng = np.random.default_rng(0)
    archs = [TINY_SPACE.max_arch(), TINY_SPACE.sample(rng), TINY_SPACE.sample(rng), TINY_SPACE.min_arch()]
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))

    def grads() -> dict[str, torch.Tensor]:
        torch.manual_seed(0)
        net = Supernet(TINY_SPACE, 10).train()
        for a in archs[::-1]:  # the min subnet first: its slices meet parameters without a gradient yet
            net.set_arch(a)
            net(x).square().mean().backward()
        return {k: p.grad.clone() for k, p in net.named_parameters() if p.grad is not None}

    shared = grads()
    p = torch.nn.Parameter(torch.ones(4, 4))
    with layers.autograd_slices():  # autograd's slicing
        plain = grads()
        assert layers.take(p, (slice(0, 2),))._base is p  # a view: autograd's slice backward
    assert layers.take(p, (slice(0, 2),))._base is None  # the in-place slice's copy again after the block
    assert shared.keys() == plain.keys() and len(plain) > 50
    for k in plain:
        assert torch.equal(shared[k], plain[k]), k


def test_slices_outside_training_are_views() -> None:
    from attentivenas.nn.layers import first, slice_weight

    w = torch.nn.Parameter(torch.randn(8, 6, 1, 1))
    assert first(w, 8) is w and slice_weight(w, 8, 6) is w
    with torch.no_grad():
        assert slice_weight(w, 4, 3)._base is w  # a view: BN statistics are updated through them
    buf = torch.zeros(8)
    first(buf, 3).add_(1)
    assert buf.sum() == 3
