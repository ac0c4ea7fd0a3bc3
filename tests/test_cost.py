"""Tests of the analytic cost model (attentivenas.costs)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from attentivenas.costs import CostModel, count_flops, count_params, flops_batch, layer_specs, params_batch
from attentivenas.space import (
    ATTENTIVENAS_SPACE,
    PUBLISHED_MFLOPS,
    TINY_SPACE,
    make_divisible,
    mid_channels,
    named_arch,
    se_channels,
)

S = ATTENTIVENAS_SPACE

# Published MFLOPs (official counter), hard-coded so the test cannot pass vacuously.
PAPER_MFLOPS = {
    "a0": 203.39,
    "a1": 279.24,
    "a2": 316.73,
    "a3": 356.52,
    "a4": 443.53,
    "a5": 490.52,
    "a6": 709.01,
    "alphanet-a5": 491.48,
    "alphanet-a5-base": 594.79,
}


def test_published_table_is_the_paper_table() -> None:
    assert PUBLISHED_MFLOPS == PAPER_MFLOPS


@pytest.mark.parametrize("name", list(PAPER_MFLOPS))
def test_flops_of_published_models(name: str) -> None:
    arch = named_arch(name)
    assert count_flops(S, arch) == pytest.approx(PAPER_MFLOPS[name], abs=0.005)
    assert round(count_flops(S, arch), 2) == PAPER_MFLOPS[name]
    assert CostModel(S).arch_flops(arch) == pytest.approx(PAPER_MFLOPS[name], abs=0.005)


def test_flops_of_max_and_min_subnets() -> None:
    assert round(count_flops(S, S.max_arch()), 2) == 1939.34
    assert round(count_flops(S, S.min_arch()), 2) == 203.39
    assert count_params(S, S.min_arch()) == 8_954_184
    assert count_params(S, S.max_arch()) == 23_404_080
    # classifier size matters: 1000 vs 10 classes
    assert count_params(S, S.min_arch(), 1000) - count_params(S, S.min_arch(), 10) == 990 * (1792 + 1)


def test_helpers() -> None:
    assert make_divisible(16 * 4.5) == 72
    assert make_divisible(3) == 9 and make_divisible(100) == 104  # the authors' min_value=1 quirk
    assert mid_channels(24, 5) == 120 and mid_channels(16, 1) == 16
    assert se_channels(96) == 24 and se_channels(72) == 24
    assert se_channels(8) == 9  # as the authors' make_divisible (min_value=1) gives
    assert make_divisible(2, 8, min_value=None) == 8  # min_value None means the divisor


def test_narrow_custom_space_vectorised_equals_scalar() -> None:
    """Channels so small that the SE width hits the make_divisible floor."""
    from dataclasses import replace

    from attentivenas.space import StageSpace

    stages = tuple(
        StageSpace(f"mb{i + 1}", (8,), (1, 2), (3,), (1,) if i == 0 else (1, 2), 2 if i in (1, 3) else 1, i >= 2)
        for i in range(7)
    )
    sp = replace(TINY_SPACE, name="narrow", first_conv=(8,), stages=stages, last_conv=(16,))
    genes = sp.sample_genes(np.random.default_rng(3), 40)
    f, p = CostModel(sp, 10).flops_and_params(genes)
    for i, g in enumerate(genes):
        a = sp.decode(g)
        assert f[i] == count_flops(sp, a, 10) and p[i] == count_params(sp, a, 10)
    se = [ls for ls in layer_specs(sp, sp.min_arch(), 10) if ls.kind == "se_reduce"]
    assert se and {ls.c_out for ls in se} == {9}


def test_layer_specs_of_a0() -> None:
    specs = layer_specs(S, named_arch("a0"))
    kinds = [s.kind for s in specs]
    assert kinds[0] == "first_conv" and kinds[-3:] == ["final_expand", "feature_mix", "classifier"]
    assert kinds.count("depthwise") == 1 + 3 + 3 + 3 + 3 + 3 + 1
    assert kinds.count("expand") == 16  # mb1 has t = 1: no expand conv
    assert kinds.count("se_reduce") == 3 + 3 + 3 + 1  # mb3, mb5, mb6, mb7
    first = specs[0]
    assert (first.c_in, first.c_out, first.kernel, first.stride, first.size_out) == (3, 16, 3, 2, 96)
    assert first.macs == 27 * 16 * 96 * 96
    head = [s for s in specs if s.kind == "final_expand"][0]
    assert (head.c_in, head.c_out, head.size_in) == (216, 6 * 216, 6)
    cls = specs[-1]
    assert (cls.c_in, cls.c_out, cls.macs) == (1792, 1000, 1_792_000)
    # shortcut convs only where channels change (first block of mb2..mb7, not mb1: 16 -> 16)
    assert [s.name for s in specs if s.kind == "shortcut"] == [f"stage{i}.block0.shortcut" for i in range(2, 8)]
    assert sum(s.macs for s in specs) / 1e6 == count_flops(S, named_arch("a0"))


def test_vectorised_equals_scalar_on_random_archs() -> None:
    rng = np.random.default_rng(0)
    genes = S.sample_genes(rng, 500)
    cm = CostModel(S)
    flops, params = cm.flops_and_params(genes)
    assert flops.shape == params.shape == (500,)
    ref_f = np.array([count_flops(S, S.decode(g)) for g in genes])
    ref_p = np.array([count_params(S, S.decode(g)) for g in genes])
    assert np.array_equal(flops, ref_f)
    assert np.array_equal(params, ref_p)
    assert np.array_equal(cm.flops(genes), flops) and np.array_equal(cm.params(genes), params)
    assert np.array_equal(flops_batch(S, genes[:10]), flops[:10])
    assert np.array_equal(params_batch(S, genes[:10]), params[:10])
    assert flops.min() >= 203.389 and flops.max() <= 1939.34


def test_vectorised_tiny_space_and_num_classes() -> None:
    rng = np.random.default_rng(1)
    genes = TINY_SPACE.sample_genes(rng, 100)
    cm = CostModel(TINY_SPACE, num_classes=10)
    f, p = cm.flops_and_params(genes)
    for i in range(0, 100, 9):
        a = TINY_SPACE.decode(genes[i])
        assert f[i] == count_flops(TINY_SPACE, a, 10)
        assert p[i] == count_params(TINY_SPACE, a, 10)
    assert round(count_flops(TINY_SPACE, TINY_SPACE.min_arch(), 10), 4) == round(float(cm.flops(np.zeros((1, 31), int))[0]), 4)


def test_flops_monotone_in_every_gene() -> None:
    """Raising any knob never lowers FLOPs or params (the sampler's walk relies on this)."""
    rng = np.random.default_rng(2)
    cm = CostModel(S)
    genes = S.sample_genes(rng, 200)
    base_f, base_p = cm.flops_and_params(genes)
    for j, n in enumerate(S.gene_sizes):
        up = genes.copy()
        up[:, j] = np.minimum(up[:, j] + 1, n - 1)
        f, p = cm.flops_and_params(up)
        assert (f >= base_f).all() and (p >= base_p).all(), j


def _rate(n: int, repeats: int = 3) -> float:
    cm = CostModel(S)
    genes = S.sample_genes(np.random.default_rng(0), n)
    cm.flops(genes[:100])
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        cm.flops(genes)
        best = min(best, time.perf_counter() - t)
    return n / best


def test_vectorised_flops_rate() -> None:
    """Benchmark target (benchmarks/bench_flops.py): >= 100k archs/s on one core."""
    rate = _rate(20_000)
    assert rate >= 100_000, f"{rate:.0f} archs/s"



# --------------------------------------------------------------------------- the flops command's class count
def test_flops_takes_the_class_count_from_a_checkpoint_or_the_flag(tmp_path) -> None:
    """``flops`` counts the classifier of the class count it prints: a checkpoint's (a supernet of ours or
    the authors', a fine-tuned subnet), ``--num-classes``, else 1000."""
    import json

    from attentivenas.io import atomic_torch_save
    from attentivenas.nn import StaticSubnet, Supernet, save_supernet, sealed, subnet_payload

    from .cli_helpers import run_cli
    from .official_reference import save_small_authors_checkpoint

    a = TINY_SPACE.min_arch()
    ours = save_supernet(tmp_path / "tiny.pt", Supernet(TINY_SPACE, 10))
    authors = save_small_authors_checkpoint(tmp_path / "a.pth.tar", TINY_SPACE, 7)
    sub = atomic_torch_save(sealed(subnet_payload(StaticSubnet(TINY_SPACE, a, 3))), tmp_path / "sub.pt")
    for path, n in ((ours, 10), (authors, 7), (sub, 3)):
        r = run_cli("flops", "--arch", "min", "--checkpoint", str(path), "--json")  # the space: the checkpoint's
        assert r.code == 0, r.err
        got = json.loads(r.out)
        assert got["mflops"] == round(count_flops(TINY_SPACE, a, n), 4) and got["num_classes"] == n
        assert got["params_m"] == round(count_params(TINY_SPACE, a, n) / 1e6, 6)
        text = run_cli("flops", "--arch", "min", "--checkpoint", str(path)).out
        assert f"at {n} classes (from {path})" in text
    assert count_flops(TINY_SPACE, a, 10) != pytest.approx(count_flops(TINY_SPACE, a, 1000))
    r = run_cli("flops", "--arch", "min", "--space", "tiny", "--num-classes", "10")
    assert r.code == 0 and f"{count_flops(TINY_SPACE, a, 10):.2f} MFLOPs" in r.out and "at 10 classes (--num-classes)" in r.out
    r = run_cli("flops", "--arch", "min", "--space", "tiny")
    assert "at 1000 classes (the default; pass --checkpoint or --num-classes)" in r.out
    r = run_cli("flops", "--arch", "min", "--checkpoint", str(ours), "--num-classes", "5")
    assert r.code == 2 and "--num-classes 5 differs from the 10 classes of --checkpoint" in r.err
    assert r.err.count("\n") == 1
    r = run_cli("flops", "--arch", "min", "--checkpoint", str(ours), "--space", "attentivenas")
    assert r.code == 2 and "is not the space of --checkpoint" in r.err


def test_flops_without_a_checkpoint_stays_torch_free() -> None:
    import subprocess
    import sys

    code = ("import sys; from attentivenas.cli import main\n"
            "try:\n    main(['flops', '--arch', 'a0', '--num-classes', '10'])\nexcept SystemExit:\n    pass\n"
            "print('torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip().splitlines()[-1] == "False", r.stdout + r.stderr
