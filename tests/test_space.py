"""Tests of the search space and the Arch value (attentivenas.space)."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import numpy as np
import pytest
import yaml

from attentivenas.errors import ArchError, SpaceError, UserError
from attentivenas.space import (
    ARCH_KEYS,
    ATTENTIVENAS_SPACE,
    MODEL_NAMES,
    NAMED_ARCHS,
    TINY_SPACE,
    Arch,
    SearchSpace,
    get_space,
    named_arch,
    resolve_arch,
)

S = ATTENTIVENAS_SPACE

# The authors' `supernet_config` block (train config of AttentiveNAS / AlphaNet), pasted unchanged.
AUTHORS_YAML = """
supernet_config:
    use_v3_head: True
    resolutions: [192, 224, 256, 288]
    first_conv:
        c: [16, 24]
        act_func: 'swish'
        s: 2
    mb1:
        c: [16, 24]
        d: [1, 2]
        k: [3, 5]
        t: [1]
        s: 1
        act_func: 'swish'
        se: False
    mb2:
        c: [24, 32]
        d: [3, 4, 5]
        k: [3, 5]
        t: [4, 5, 6]
        s: 2
        act_func: 'swish'
        se: False
    mb3:
        c: [32, 40]
        d: [3, 4, 5, 6]
        k: [3, 5]
        t: [4, 5, 6]
        s: 2
        act_func: 'swish'
        se: True
    mb4:
        c: [64, 72]
        d: [3, 4, 5, 6]
        k: [3, 5]
        t: [4, 5, 6]
        s: 2
        act_func: 'swish'
        se: False
    mb5:
        c: [112, 120, 128]
        d: [3, 4, 5, 6, 7, 8]
        k: [3, 5]
        t: [4, 5, 6]
        s: 1
        act_func: 'swish'
        se: True
    mb6:
        c: [192, 200, 208, 216]
        d: [3, 4, 5, 6, 7, 8]
        k: [3, 5]
        t: [6]
        s: 2
        act_func: 'swish'
        se: True
    mb7:
        c: [216, 224]
        d: [1, 2]
        k: [3, 5]
        t: [6]
        s: 1
        act_func: 'swish'
        se: True
    last_conv:
        c: [1792, 1984]
        act_func: 'swish'
"""

A0 = {
    "resolution": 192,
    "width": [16, 16, 24, 32, 64, 112, 192, 216, 1792],
    "depth": [1, 3, 3, 3, 3, 3, 1],
    "kernel_size": [3, 3, 3, 3, 3, 3, 3],
    "expand_ratio": [1, 4, 4, 4, 4, 6, 6],
}


# --------------------------------------------------------------------------- structure
def test_space_size_and_structure() -> None:
    # 4 res * 2^2 (first, last) * width 2*2*2*2*3*4*2 * depth 2*3*4*4*6*6*2 * kernel 2^7 * expand 1*3^4*1*1
    expected = 4 * 4 * (2 * 2 * 2 * 2 * 3 * 4 * 2) * (2 * 3 * 4 * 4 * 6 * 6 * 2) * 2**7 * 3**4
    assert S.size() == expected == 440_301_256_704
    assert 4.3e11 < S.size() < 4.5e11
    assert S.log10_size() == pytest.approx(np.log10(expected))
    assert S.num_genes == 1 + 9 + 7 + 7 + 7 == 31
    assert S.num_blocks == 2 + 5 + 6 + 6 + 8 + 8 + 2 == 37
    assert list(S.gene_sizes[:10]) == [4, 2, 2, 2, 2, 2, 3, 4, 2, 2]
    assert S.gene_choices[0] == (192, 224, 256, 288)
    assert [s.stride for s in S.stages] == [1, 2, 2, 2, 1, 2, 1]
    assert [s.se for s in S.stages] == [False, False, True, False, True, True, True]
    assert [s.has_expand_conv for s in S.stages] == [False] + [True] * 6
    assert get_space("alphanet") is S and get_space("AttentiveNAS") is S and get_space(None) is S


def test_tiny_space_sanity() -> None:
    t = TINY_SPACE
    assert t.num_genes == 31
    assert t.size() == int(np.prod(t.gene_sizes.astype(float)))
    assert t.size() < S.size()
    assert max(t.resolutions) <= 32
    rng = np.random.default_rng(0)
    for _ in range(20):
        a = t.sample(rng)
        assert t.validate(a) is a
    assert t.min_arch().width[0] == 8 and t.max_arch().width[-1] == 320
    assert get_space("tiny") is t
    with pytest.raises(ArchError):
        t.validate(named_arch("a0"))  # widths of the big space are not in tiny


def test_get_space_unknown() -> None:
    with pytest.raises(SpaceError, match="unknown space 'nope'.*attentivenas"):
        get_space("nope")


# --------------------------------------------------------------------------- validation
def test_validation_message_names_field_value_allowed() -> None:
    bad = dict(A0, resolution=200)
    with pytest.raises(ArchError) as exc:
        S.arch_from_dict(bad)
    msg = str(exc.value)
    assert "'resolution'" in msg and "200" in msg and "[192, 224, 256, 288]" in msg

    bad = dict(A0, width=[16, 16, 24, 32, 64, 112, 192, 216, 2000])
    with pytest.raises(ArchError, match=re.escape("'width[8]' (last_conv) = 2000")) as exc:
        S.arch_from_dict(bad)
    assert "[1792, 1984]" in str(exc.value)

    bad = dict(A0, kernel_size=[3, 3, 7, 3, 3, 3, 3])
    with pytest.raises(ArchError, match=re.escape("'kernel_size[2]' (mb3) = 7")) as exc:
        S.arch_from_dict(bad)
    assert "allowed: [3, 5]" in str(exc.value)

    bad = dict(A0, expand_ratio=[1, 4, 4, 4, 4, 4, 6])
    with pytest.raises(ArchError, match=re.escape("'expand_ratio[5]' (mb6) = 4")):
        S.arch_from_dict(bad)

    bad = dict(A0, depth=[1, 3, 3, 3, 3, 9, 1])
    with pytest.raises(ArchError, match=re.escape("allowed: [3, 4, 5, 6, 7, 8]")):
        S.arch_from_dict(bad)


def test_wrong_list_length() -> None:
    with pytest.raises(ArchError, match="'depth' has 6 values; space 'attentivenas' needs 7"):
        S.arch_from_dict(dict(A0, depth=[1, 3, 3, 3, 3, 3]))
    with pytest.raises(ArchError, match="'width' has 10 values.*needs 9"):
        S.arch_from_dict(dict(A0, width=A0["width"] + [16]))


def test_from_dict_shape_errors() -> None:
    with pytest.raises(ArchError, match="missing key.*'depth'"):
        Arch.from_dict({k: v for k, v in A0.items() if k != "depth"})
    with pytest.raises(ArchError, match="unknown key.*'colour'"):
        Arch.from_dict(dict(A0, colour=1))
    with pytest.raises(ArchError, match="'resolution' must be an integer"):
        Arch.from_dict(dict(A0, resolution="big"))
    with pytest.raises(ArchError, match="'width' must be a list"):
        Arch.from_dict(dict(A0, width=16))
    with pytest.raises(ArchError, match="'depth' must hold numbers"):
        Arch.from_dict(dict(A0, depth=[1, "3", 3, 3, 3, 3, 1]))
    with pytest.raises(ArchError, match="must be a JSON object"):
        Arch.from_dict([1, 2])  # type: ignore[arg-type]
    with pytest.raises(ArchError, match="not valid JSON"):
        Arch.from_json("{nope")
    assert issubclass(ArchError, UserError)


# --------------------------------------------------------------------------- (de)serialisation
def test_json_round_trip_authors_keys() -> None:
    a = S.arch_from_dict(A0)
    d = a.to_dict()
    assert list(d) == list(ARCH_KEYS) == ["resolution", "width", "depth", "kernel_size", "expand_ratio"]
    assert d == A0
    text = a.to_json()
    assert json.loads(text) == A0
    assert '"expand_ratio": [1, 4, 4, 4, 4, 6, 6]' in text  # ints, not 4.0
    b = Arch.from_json(text)
    assert b == a and hash(b) == hash(a)
    assert Arch.from_dict(dict(A0, flops=203.39)) == a  # extra metadata keys tolerated
    assert a.key() == "r192_w16-16-24-32-64-112-192-216-1792_d1333331_k3333333_e1-4-4-4-4-6-6"
    # float-typed numbers from other tools
    c = Arch.from_dict(dict(A0, resolution=192.0, expand_ratio=[1.0, 4, 4, 4, 4, 6.0, 6]))
    assert c == a and isinstance(c.resolution, int) and isinstance(c.expand_ratio[0], int)


def test_encode_decode_round_trip() -> None:
    rng = np.random.default_rng(1)
    genes = S.sample_genes(rng, 200)
    assert genes.shape == (200, 31) and genes.dtype == np.int64
    assert (genes >= 0).all() and (genes < S.gene_sizes).all()
    for g in genes:
        a = S.decode(g)
        S.validate(a)
        assert np.array_equal(S.encode(a), g)
    a0 = S.arch_from_dict(A0)
    assert S.decode(S.encode(a0)) == a0
    assert S.encode(S.min_arch()).sum() == 0
    assert np.array_equal(S.encode(S.max_arch()), S.gene_sizes - 1)


def test_uniform_sampling_covers_all_values() -> None:
    rng = np.random.default_rng(2)
    genes = S.sample_genes(rng, 6000)
    for j, n in enumerate(S.gene_sizes):
        freq = np.bincount(genes[:, j], minlength=n) / len(genes)
        assert len(freq) == n
        assert np.abs(freq - 1 / n).max() < 0.03, (j, freq)
    archs = [S.sample(rng) for _ in range(400)]
    assert {a.resolution for a in archs} == set(S.resolutions)
    assert {a.depth[4] for a in archs} == {3, 4, 5, 6, 7, 8}
    assert {a.width[6] for a in archs} == {192, 200, 208, 216}
    # seeded
    assert S.sample(np.random.default_rng(7)) == S.sample(np.random.default_rng(7))


def test_min_max_arch() -> None:
    mn, mx = S.min_arch(), S.max_arch()
    assert mn.to_dict() == {
        "resolution": 192,
        "width": [16, 16, 24, 32, 64, 112, 192, 216, 1792],
        "depth": [1, 3, 3, 3, 3, 3, 1],
        "kernel_size": [3] * 7,
        "expand_ratio": [1, 4, 4, 4, 4, 6, 6],
    }
    assert mn == named_arch("a0") == named_arch("min")
    assert mx.to_dict() == {
        "resolution": 288,
        "width": [24, 24, 32, 40, 72, 128, 216, 224, 1984],
        "depth": [2, 5, 6, 6, 8, 8, 2],
        "kernel_size": [5] * 7,
        "expand_ratio": [1, 6, 6, 6, 6, 6, 6],
    }
    assert named_arch("MAX") == mx


def test_mutate() -> None:
    rng = np.random.default_rng(3)
    a = S.arch_from_dict(A0)
    assert S.mutate(a, rng, prob=0.0) == a
    g0 = S.encode(a)
    changed = []
    for _ in range(300):
        b = S.mutate(a, rng, prob=0.2)
        S.validate(b)
        changed.append((S.encode(b) != g0).sum())
    movable = int((S.gene_sizes > 1).sum())  # 28 of 31 genes have a choice (not t of mb1, mb6, mb7)
    assert movable == 28
    # each movable gene changes with prob 0.2, to a different value
    assert np.mean(changed) == pytest.approx(0.2 * movable, rel=0.15)
    full = S.mutate(a, rng, prob=1.0)
    assert (S.encode(full) != g0).sum() == movable


def test_crossover_takes_genes_from_parents() -> None:
    rng = np.random.default_rng(4)
    a, b = S.min_arch(), S.max_arch()
    ga, gb = S.encode(a), S.encode(b)
    from_a = []
    for _ in range(100):
        c = S.crossover(a, b, rng)
        gc = S.encode(c)
        assert ((gc == ga) | (gc == gb)).all()
        diff = ga != gb
        from_a.append(np.mean(gc[diff] == ga[diff]))
    assert np.mean(from_a) == pytest.approx(0.5, abs=0.05)
    assert S.crossover(a, b, rng, prob=1.0) == a
    assert S.crossover(a, b, rng, prob=0.0) == b


def test_features() -> None:
    a = S.arch_from_dict(A0)
    f = S.features(a)
    assert f.shape == (31,) and f.dtype == np.float64
    assert list(f) == [192, 16, 16, 24, 32, 64, 112, 192, 216, 1792, 1, 3, 3, 3, 3, 3, 1] + [3] * 7 + [
        1, 4, 4, 4, 4, 6, 6]
    names = S.feature_names()
    assert len(names) == 31 and names[0] == "resolution" and names[1] == "width[first_conv]"
    assert names[9] == "width[last_conv]" and names[-1] == "expand_ratio[mb7]"
    rng = np.random.default_rng(5)
    genes = S.sample_genes(rng, 50)
    F = S.features_from_genes(genes)
    assert F.shape == (50, 31)
    assert np.array_equal(F[7], S.features(S.decode(genes[7])))


# --------------------------------------------------------------------------- authors' YAML
def test_from_supernet_config_authors_block() -> None:
    cfg = yaml.safe_load(AUTHORS_YAML)["supernet_config"]
    sp = SearchSpace.from_supernet_config(cfg, name="attentivenas")
    assert sp.choices == S.choices
    assert sp.gene_choices == S.gene_choices
    assert [(s.stride, s.se, s.act) for s in sp.stages] == [(s.stride, s.se, s.act) for s in S.stages]
    assert sp == S
    # and back: our block is the authors' block
    assert sp.to_supernet_config() == cfg


def test_from_yaml_file(tmp_path) -> None:
    p = tmp_path / "train_attentive.yml"
    p.write_text("arch: attentive_nas_dynamic_model\nbatch_size: 32\n" + AUTHORS_YAML)
    sp = SearchSpace.from_yaml(p)
    assert sp.name == "train_attentive"
    assert sp.choices == S.choices
    assert get_space(str(p)).choices == S.choices
    # the block's contents at top level work too
    q = tmp_path / "block.yaml"
    q.write_text(yaml.safe_dump(S.to_supernet_config()))
    assert SearchSpace.from_yaml(q).choices == S.choices


def test_from_yaml_errors(tmp_path) -> None:
    with pytest.raises(SpaceError, match="space file not found"):
        SearchSpace.from_yaml(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("supernet_config: [1, 2\n")
    with pytest.raises(SpaceError, match="not valid YAML"):
        SearchSpace.from_yaml(bad)
    cfg = yaml.safe_load(AUTHORS_YAML)

    def write(mod) -> str:
        c = json.loads(json.dumps(cfg))
        mod(c["supernet_config"])
        p = tmp_path / "c.yaml"
        p.write_text(yaml.safe_dump(c))
        return str(p)

    with pytest.raises(SpaceError, match=r"mb3.k must hold odd kernel sizes, got 4"):
        SearchSpace.from_yaml(write(lambda c: c["mb3"].update(k=[3, 4])))
    with pytest.raises(SpaceError, match=r"mb2.c must hold positive integers, got -24"):
        SearchSpace.from_yaml(write(lambda c: c["mb2"].update(c=[-24, 32])))
    with pytest.raises(SpaceError, match=r"mb4.s = 3; allowed: \[1, 2\]"):
        SearchSpace.from_yaml(write(lambda c: c["mb4"].update(s=3)))
    with pytest.raises(SpaceError, match=r"mb5.act_func = 'gelu'"):
        SearchSpace.from_yaml(write(lambda c: c["mb5"].update(act_func="gelu")))
    with pytest.raises(SpaceError, match=r"supernet_config.mb1 is missing 'd'"):
        SearchSpace.from_yaml(write(lambda c: c["mb1"].pop("d")))
    with pytest.raises(SpaceError, match=r"resolutions has repeated values"):
        SearchSpace.from_yaml(write(lambda c: c.update(resolutions=[224, 224])))
    with pytest.raises(SpaceError, match="use_v3_head"):
        SearchSpace.from_yaml(write(lambda c: c.update(use_v3_head=False)))
    with pytest.raises(SpaceError, match="must hold integers, got 'x'"):
        SearchSpace.from_yaml(write(lambda c: c["last_conv"].update(c=["x"])))
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("3\n")
    with pytest.raises(SpaceError, match="must hold a mapping"):
        SearchSpace.from_yaml(scalar)


def test_custom_space_dataclass_replace() -> None:
    sp = replace(S, name="narrow", resolutions=(224,))
    assert sp.size() == S.size() // 4
    with pytest.raises(ArchError, match="space 'narrow'"):
        sp.validate(named_arch("a0"))


# --------------------------------------------------------------------------- resolve_arch
def test_resolve_arch_names_json_files(tmp_path) -> None:
    for name in NAMED_ARCHS:
        assert resolve_arch(name, S) == S.arch_from_dict(NAMED_ARCHS[name])
    assert resolve_arch("A3", S) == named_arch("a3")
    assert resolve_arch("min", S) == S.min_arch() and resolve_arch("max", S) == S.max_arch()
    assert set(MODEL_NAMES) >= {"a0", "a6", "alphanet-a5", "alphanet-a5-base", "min", "max"}
    assert resolve_arch(json.dumps(A0), S) == named_arch("a0")
    assert resolve_arch("  " + json.dumps(A0) + "\n", S) == named_arch("a0")
    assert resolve_arch(A0, S) == named_arch("a0")
    a0 = named_arch("a0")
    assert resolve_arch(a0, S) is a0

    plain = tmp_path / "a0.json"
    plain.write_text(json.dumps(A0))
    assert resolve_arch(str(plain), S) == a0
    wrapped = tmp_path / "entry.json"
    wrapped.write_text(json.dumps({"arch": A0, "mflops": 203.39, "accuracy": 77.3}))
    assert resolve_arch(str(wrapped), S) == a0


def test_resolve_arch_errors(tmp_path) -> None:
    with pytest.raises(ArchError, match="unknown arch 'a9'.*model name"):
        resolve_arch("a9", S)
    with pytest.raises(ArchError, match="unknown model name 'b1'"):
        named_arch("b1")
    with pytest.raises(ArchError, match="arch file not found"):
        resolve_arch(str(tmp_path / "none.json"), S)
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(ArchError, match="not valid JSON"):
        resolve_arch(str(broken), S)
    with pytest.raises(ArchError, match="not valid JSON"):
        resolve_arch("{resolution: 1}", S)
    with pytest.raises(ArchError, match="'resolution' = 100"):
        resolve_arch(json.dumps(dict(A0, resolution=100)), S)
    with pytest.raises(ArchError):
        resolve_arch("a0", TINY_SPACE)


def test_an_arch_can_be_a_subnet_of_a_search_pareto_file(tmp_path) -> None:
    space = get_space("tiny")
    lo, hi = space.min_arch(), space.max_arch()
    pareto = tmp_path / "pareto.json"
    pareto.write_text(json.dumps([{"arch": lo.to_dict(), "accuracy": 91.5}, {"arch": hi.to_dict(), "accuracy": 93.0}]))
    assert resolve_arch(f"{pareto}:best", space) == hi  # the most accurate
    assert resolve_arch(f"{pareto}:0", space) == lo and resolve_arch(f"{pareto}:1", space) == hi
    with pytest.raises(ArchError, match="has 2 subnets"):
        resolve_arch(f"{pareto}:2", space)
    pareto.write_text(json.dumps([{"arch": lo.to_dict(), "accuracy": None}]))
    with pytest.raises(ArchError, match="finite 'accuracy'"):
        resolve_arch(f"{pareto}:best", space)
    pareto.write_text(json.dumps({"arch": lo.to_dict()}))
    with pytest.raises(ArchError, match="not a Pareto file"):
        resolve_arch(f"{pareto}:best", space)
