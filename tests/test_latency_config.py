"""The latency table's settings are one typed section: the keyword builder and the CLI flags take
their defaults from it."""

from __future__ import annotations

import inspect

import pytest

from attentivenas.config import LatencyTableConfig, parse_model
from attentivenas.errors import ConfigError
from attentivenas.latency import build_latency_table


def test_keyword_builder_defaults_are_the_sections() -> None:
    params = inspect.signature(build_latency_table).parameters
    defaults = LatencyTableConfig()
    shared = [k for k in LatencyTableConfig.model_fields if k in params and k != "archs"]
    assert len(shared) >= 14
    assert {k: params[k].default for k in shared} == {k: getattr(defaults, k) for k in shared}
    assert params["archs"].default is defaults.archs is None


def test_build_table_flags_default_to_the_section() -> None:
    from attentivenas.cli.latency_cmd import latency_build_cmd

    defaults = LatencyTableConfig()
    for name, p in inspect.signature(latency_build_cmd).parameters.items():
        if name in LatencyTableConfig.model_fields:
            assert p.default.default == getattr(defaults, name), name


def test_section_names_an_unknown_key() -> None:
    with pytest.raises(ConfigError, match="unknown config key 'repeat'; did you mean 'repeats'"):
        parse_model(LatencyTableConfig, {"repeat": 3})


@pytest.mark.parametrize(("flags", "words"), [
    (["--calibration-archs", "100000"], ["--calibration-archs", "300"]),
    (["--holdout-archs", "1000000"], ["--holdout-archs", "300"]),
    (["--calibration-archs", "200", "--holdout-archs", "200"], ["400", "at most 300"]),
    (["--seed", "-1"], ["--seed"]),
    (["--repeats", "100000000"], ["--repeats"]),
])
def test_build_table_counts_are_bounded_before_any_measuring(flags: list[str], words: list[str], tmp_path) -> None:
    from tests.cli_helpers import run_cli

    r = run_cli("latency", "build-table", "--space", "tiny", "--out", str(tmp_path / "t.json"), *flags)
    assert r.code == 2 and r.err.count("\n") == 1 and "Traceback" not in r.err, r
    assert all(w in r.err for w in words), r.err
    assert not (tmp_path / "t.json").exists()


def test_a_built_table_stays_refittable() -> None:
    from attentivenas.config import MAX_REFIT_SUBNETS

    LatencyTableConfig(calibration_archs=MAX_REFIT_SUBNETS - 10, holdout_archs=10)
    with pytest.raises(ValueError, match="at most"):
        LatencyTableConfig(calibration_archs=MAX_REFIT_SUBNETS - 10, holdout_archs=11)
