"""Each config ``Literal`` allows exactly the values the library handles (issue 28, item 1)."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from attentivenas.accuracy import DEFAULT_KINDS, FEATURE_SETS, INTERPOLATIONS, PIPELINES, SPLITS
from attentivenas.accuracy import KINDS as PREDICTOR_KINDS
from attentivenas.config import (
    DEFAULT_PREDICTOR_KINDS,
    OBJECTIVES,
    AccuracyConfig,
    AutoPredictorConfig,
    BudgetsConfig,
    DataConfig,
    LatencyTableConfig,
    MeasureSettings,
    OnlinePredictorConfig,
    PipelineConfig,
    PredictorConfig,
    PredictorFitSettings,
    SamplerConfig,
    SearchConfig,
    TrainConfig,
)
from attentivenas.config.search import Int8Config
from attentivenas.data import BUILDERS
from attentivenas.errors import UserError
from attentivenas.export.formats import FORMATS
from attentivenas.pipeline import run_pipeline
from attentivenas.runtimes.quantize import INT8_RUNTIMES, PRECISIONS
from attentivenas.search import search_from_config
from attentivenas.train.sampling.constraints import PRIOR_CONSTRAINTS
from attentivenas.train.sampling.prior import PRIOR_KINDS
from attentivenas.train.sampling.sampler import METHODS

from .cli_helpers import run_cli


def literal_values(model: type[BaseModel], field: str) -> tuple[Any, ...]:
    """The values of the ``Literal`` in a field's annotation (inside ``X | None`` or ``list[X]``)."""

    def find(ann: Any) -> tuple[Any, ...]:
        if typing.get_origin(ann) is typing.Literal:
            return typing.get_args(ann)
        return tuple(v for arg in typing.get_args(ann) for v in find(arg))

    return find(model.model_fields[field].annotation)


#: (section, field) -> the library's tuple of the values it handles, in the order messages list them
ORDERED = [
    (MeasureSettings, "split", SPLITS),
    (MeasureSettings, "pipeline", PIPELINES),
    (MeasureSettings, "interpolation", INTERPOLATIONS),
    (AccuracyConfig, "split", SPLITS),
    (AccuracyConfig, "report_split", SPLITS),
    (AccuracyConfig, "pipeline", PIPELINES),
    (AccuracyConfig, "interpolation", INTERPOLATIONS),
    (PredictorFitSettings, "kinds", PREDICTOR_KINDS),
    (PredictorFitSettings, "feature_set", FEATURE_SETS),
    (PredictorConfig, "kinds", PREDICTOR_KINDS),
    (PredictorConfig, "feature_set", FEATURE_SETS),
    (AutoPredictorConfig, "kinds", PREDICTOR_KINDS),
    (AutoPredictorConfig, "feature_set", FEATURE_SETS),
    (OnlinePredictorConfig, "kinds", PREDICTOR_KINDS),
    (OnlinePredictorConfig, "feature_set", FEATURE_SETS),
    (BudgetsConfig, "metric", tuple(OBJECTIVES)),
    (SearchConfig, "precision", PRECISIONS),
    (LatencyTableConfig, "precision", PRECISIONS),
    (SamplerConfig, "method", METHODS),
    (SamplerConfig, "prior", PRIOR_KINDS),
    (SamplerConfig, "constraint", PRIOR_CONSTRAINTS),
    (DataConfig, "name", tuple(BUILDERS)),
]


@pytest.mark.parametrize(("model", "field", "allowed"), ORDERED, ids=[f"{m.__name__}.{f}" for m, f, _ in ORDERED])
def test_a_config_literal_is_the_librarys_tuple(model: type[BaseModel], field: str, allowed: tuple) -> None:
    assert literal_values(model, field) == tuple(allowed)


def test_the_int8_runtime_is_a_record_name_checked_before_anything_runs(tmp_path: Path) -> None:
    """``int8.runtime`` is no ``Literal`` (config sits below the records): a search, from the CLI or the
    library, and the quick start refuse a runtime without an INT8 quantizer in one line naming the key
    and the records' INT8 runtimes, before anything is read, trained or started."""
    assert INT8_RUNTIMES == ("executorch", "onnxruntime", "openvino") and Int8Config().runtime in INT8_RUNTIMES
    allowed = "precision int8 is available for runtimes executorch, onnxruntime, openvino"
    for bad in ("bogus", "torch"):  # torch: a runtime, without an INT8 quantizer
        r = run_cli("search", "--precision", "int8", "--int8-runtime", bad, "--predictor", str(tmp_path / "none.json"),
                    "--out", str(tmp_path / "s"))
        assert r.code == 2 and r.err.strip().splitlines() == [f"error: config key 'int8.runtime': {allowed}, not {bad!r}"]
    config = SearchConfig.model_validate({"int8": {"runtime": "bogus"}, "predictor": str(tmp_path / "none.json")})
    with pytest.raises(UserError, match=f"^config key 'int8.runtime': {allowed}, not 'bogus'$"):
        search_from_config(config, tmp_path / "lib")  # fp32 too: the setting is refused wherever it is given
    settings = PipelineConfig(search=config)
    with pytest.raises(UserError, match=f"^config key 'search.int8.runtime': {allowed}, not 'bogus'$"):
        run_pipeline(TrainConfig(), tmp_path / "qs", settings, log=lambda _: None)  # before training
    assert not (tmp_path / "s").exists() and not (tmp_path / "qs" / "checkpoints").exists()


def test_data_interpolation_allows_the_stage2_interpolations() -> None:
    assert set(literal_values(DataConfig, "interpolation")) == set(INTERPOLATIONS)


def test_the_quick_start_exports_formats_the_exporter_writes_without_extras() -> None:
    allowed = literal_values(PipelineConfig, "export_format")
    assert set(allowed) <= set(FORMATS) and allowed == FORMATS[:4]  # executorch: `export` only
    assert PipelineConfig().export_format == allowed[0] == "torch-export"  # the default


def test_the_default_predictor_kinds_are_the_librarys() -> None:
    assert DEFAULT_PREDICTOR_KINDS == DEFAULT_KINDS


def test_every_stage2_literal_is_checked() -> None:
    """A new ``Literal`` in a stage-2 section needs its entry above."""
    checked = {(m, f) for m, f, _ in ORDERED} | {(PipelineConfig, "export_format")}
    sections = (MeasureSettings, AccuracyConfig, PredictorFitSettings, PredictorConfig, AutoPredictorConfig,
                BudgetsConfig, PipelineConfig, SearchConfig, Int8Config)
    found = {(m, f) for m in sections for f in m.model_fields if literal_values(m, f)}
    assert found <= checked, sorted((m.__name__, f) for m, f in found - checked)


def test_the_accuracy_section_is_the_measure_settings_plus_its_own_keys() -> None:
    assert issubclass(AccuracyConfig, MeasureSettings) and issubclass(PredictorConfig, PredictorFitSettings)
    assert AccuracyConfig().measurement() == MeasureSettings()  # the same defaults, written once
    acc = SearchConfig.model_validate({"accuracy": {"split": "val-search", "calib_batches": 3, "source": "measured"}})
    assert acc.accuracy.measurement() == MeasureSettings(split="val-search", calib_batches=3)
    assert (PredictorConfig().num_archs, AutoPredictorConfig().num_archs) == (40, 60)  # each section's default
