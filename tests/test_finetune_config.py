"""``finetune``'s typed settings (issue 39, item 4): a YAML file, ``key=value`` overrides and the flags, one strict
section embedding ``MeasureSettings``; the record a checkpoint keeps is the one earlier releases wrote."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import pytest

from attentivenas.accuracy.measure import SPREADS
from attentivenas.config import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_CALIB_BATCH_SIZE,
    DEFAULT_CALIB_BATCHES,
    FinetuneSettings,
    MeasureSettings,
    PredictorBuildSettings,
    load_finetune_settings,
)
from attentivenas.config.finetune import DISTILL, INITS, RESUME_FREE
from attentivenas.errors import ConfigError, UserError

#: the keys (in order) of the settings record fine-tuning checkpoints of earlier releases hold
OLD_RECORD = ["epochs", "lr", "batch_size", "distill", "temperature", "label_smoothing", "warmup_epochs", "init",
              "new_head", "weight_decay", "seed", "steps_per_epoch", "checkpoint_every", "keep_last", "log_every",
              "calib_batches", "calib_batch_size", "eval_batch_size", "max_images", "device", "threads", "channels_last"]


def test_the_defaults_are_measure_settings_and_the_record_is_the_old_one() -> None:
    s = FinetuneSettings()
    assert s.measure == MeasureSettings()  # embedded, not re-declared
    record = s.record()
    assert list(record) == OLD_RECORD and set(RESUME_FREE) <= set(record)
    assert (record["calib_batches"], record["calib_batch_size"], record["eval_batch_size"]) == (
        DEFAULT_CALIB_BATCHES, DEFAULT_CALIB_BATCH_SIZE, DEFAULT_BATCH_SIZE)
    assert (record["epochs"], record["distill"], record["init"], record["channels_last"]) == (10, "auto", "supernet",
                                                                                              "auto")
    assert get_args(FinetuneSettings.model_fields["distill"].annotation) == DISTILL
    assert get_args(FinetuneSettings.model_fields["init"].annotation) == INITS
    assert get_args(PredictorBuildSettings.model_fields["spread"].annotation) == SPREADS


def test_file_then_overrides_then_flags(tmp_path: Path) -> None:
    path = tmp_path / "ft.yaml"
    path.write_text("epochs: 3\ndistill: none\nmeasure: {calib_batches: 8, interpolation: bicubic}\n")
    s = load_finetune_settings(path, ["epochs=4", "measure.max_images=100"],
                               {"epochs": None, "calib_batches": 2, "eval_batch_size": 32, "seed": 5,
                                "new_head": False, "out": "ignored", "data": "digits"})
    assert (s.epochs, s.distill, s.seed, s.new_head) == (4, "none", 5, False)
    m = s.measure
    assert (m.calib_batches, m.interpolation, m.max_images, m.batch_size) == (2, "bicubic", 100, 32)
    assert load_finetune_settings(path, [], {"new_head": True}).new_head


@pytest.mark.parametrize(("source", "message"), [
    ({"flags": {"distill": "soft"}}, "--distill 'soft' is not one of"),
    ({"flags": {"eval_batch_size": 0}}, "--eval-batch-size"),
    ({"flags": {"new_head": True, "distill": "kd"}}, "--distill kd cannot teach a new head"),
    ({"overrides": ["measure.calib_batchs=3"]}, "did you mean 'measure.calib_batches'"),
    ({"overrides": ["channels_last=sometimes"]}, "channels_last must be 'auto', True or False"),
    ({"overrides": ["measure.split=test"]}, "measure.split and measure.pipeline are not fine-tuning settings"),
])
def test_a_bad_setting_is_one_line_naming_it(source: dict, message: str) -> None:
    with pytest.raises((UserError, ConfigError), match=message) as info:
        load_finetune_settings(None, source.get("overrides", ()), source.get("flags"))
    assert "\n" not in str(info.value)
