"""The training config's BN-calibration count: ``eval.calib_batches`` (stage 2's spelling) with the one
default of ``config.measure``; ``eval.calibration_batches``, the old spelling, still loads (older runs'
``config.yaml``, old overrides) with a DeprecationWarning, and resuming such a run works."""

from __future__ import annotations

import inspect
import warnings
from pathlib import Path

import pytest
import yaml

from attentivenas.config import DEFAULT_CALIB_BATCHES, MeasureSettings, TrainConfig, load_config, parse_config
from attentivenas.errors import ConfigError
from attentivenas.nn import cache_calibration_batches

from .cli_helpers import run_cli

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "configs" / "quickstart.yaml"


def test_every_calibration_count_defaults_to_the_one_constant() -> None:
    assert TrainConfig().eval.calib_batches == DEFAULT_CALIB_BATCHES
    assert MeasureSettings().calib_batches == DEFAULT_CALIB_BATCHES
    # nn may not import config: its literal is held equal here
    assert inspect.signature(cache_calibration_batches).parameters["num_batches"].default == DEFAULT_CALIB_BATCHES


def test_the_new_key_loads_without_a_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cfg = parse_config({"eval": {"calib_batches": 3}})
    assert cfg.eval.calib_batches == 3
    assert "calibration_batches" not in cfg.to_dict()["eval"]


def test_the_old_key_loads_with_a_deprecation_warning_and_is_written_new() -> None:
    with pytest.warns(DeprecationWarning, match=r"eval\.calibration_batches.*eval\.calib_batches"):
        cfg = parse_config({"eval": {"calibration_batches": 3, "max_batches": 1}})
    assert (cfg.eval.calib_batches, cfg.eval.max_batches) == (3, 1)
    dumped = cfg.to_dict()["eval"]
    assert dumped["calib_batches"] == 3 and "calibration_batches" not in dumped
    assert parse_config(cfg.to_dict()) == cfg  # the resolved config loads back, without the old key


def test_a_bad_old_value_is_an_error_naming_the_key() -> None:
    with pytest.warns(DeprecationWarning), pytest.raises(ConfigError, match=r"'eval\.calib_batches'"):
        parse_config({"eval": {"calibration_batches": 0}})


def test_the_config_files_use_the_new_key() -> None:
    files = [*sorted((ROOT / "configs").glob("*.yaml")), ROOT / "src" / "attentivenas" / "configs" / "quickstart.yaml"]
    for path in files:
        section = (yaml.safe_load(path.read_text()) or {}).get("eval")
        assert not (isinstance(section, dict) and "calibration_batches" in section), path


def test_an_override_wins_over_the_file_in_either_spelling(tmp_path: Path) -> None:
    # a new file with an old override (e.g. an old command line)
    with pytest.warns(DeprecationWarning):
        cfg = load_config(QUICKSTART, ["eval.calibration_batches=2"])
    assert cfg.eval.calib_batches == 2
    # an old file (an older run's config.yaml) with a new override
    old = yaml.safe_load(QUICKSTART.read_text())
    old["eval"] = {"calibration_batches": 5, **{k: v for k, v in old["eval"].items() if k != "calib_batches"}}
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump(old, sort_keys=False))
    with pytest.warns(DeprecationWarning):
        assert load_config(path).eval.calib_batches == 5
        assert load_config(path, ["eval.calib_batches=2"]).eval.calib_batches == 2


def _tiny(calib_key: str) -> dict:
    return {
        "seed": 0, "space": "tiny",
        "data": {"name": "digits", "image_size": 32, "batch_size": 8, "eval_batch_size": 128},
        "optim": {"epochs": 2, "warmup_epochs": 0.5, "lr": 0.4},
        "sampler": {"method": "uniform", "num_middle": 2, "prior_samples": 2000},
        "eval": {calib_key: 1, "max_batches": 1},
        "checkpoint": {"every_steps": 1, "keep_last": 2},
        "runtime": {"device": "cpu", "threads": 1, "steps_per_epoch": 2},
        "log": {"progress": False, "tensorboard": False},
    }


def test_a_run_resumes_from_an_older_config_yaml(tmp_path: Path) -> None:
    out = tmp_path / "run"
    first = tmp_path / "first.yaml"
    first.write_text(yaml.safe_dump(_tiny("calib_batches"), sort_keys=False))
    res = run_cli("train", "--config", str(first), "--out", str(out), "runtime.max_steps=2")
    assert res.code == 0, res.err
    written = yaml.safe_load((out / "config.yaml").read_text())
    assert written["eval"]["calib_batches"] == 1 and "calibration_batches" not in written["eval"]

    # the run's config.yaml as an older version wrote it: the old key
    (out / "config.yaml").write_text(yaml.safe_dump(_tiny("calibration_batches"), sort_keys=False))
    with pytest.warns(DeprecationWarning):
        res = run_cli("train", "--config", str(out / "config.yaml"), "--out", str(out), "--resume", "auto")
    assert res.code == 0, res.err
    assert res.err.splitlines()[-1].startswith("completed: 4 steps")  # after the data lines (issue 38)
    again = yaml.safe_load((out / "config.yaml").read_text())
    assert again["eval"]["calib_batches"] == 1 and "calibration_batches" not in again["eval"]
