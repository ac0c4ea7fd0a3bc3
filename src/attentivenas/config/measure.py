"""How stage 2 measures a subnet (:class:`MeasureSettings`) and how it fits a predictor
(:class:`PredictorFitSettings`, and what ``predictor build`` measures: :class:`PredictorBuildSettings`): one typed
definition each, shared by the search config, the quick
start, the evaluator and the CLI flags of ``evaluate``, ``predictor build``, ``search`` and
``export --calibrate-bn`` (built by :func:`measure_from_flags`).

The defaults are the authors' published evaluation: images Resize 256 / CenterCrop 224, resized in
the network (``pipeline="authors"``), BN recalibrated on 64 x 256 training crops. ``split``,
``interpolation`` and ``calib_seed`` left None are the checkpoint's (:meth:`MeasureSettings.resolved`):
interpolation and seed per checkpoint kind (:data:`KIND_DEFAULTS`), and the split ``test`` for a
checkpoint that held nothing out of its training data (the authors'), else ``holdout``.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import Field, ValidationError, model_validator

from ..errors import UserError
from .base import Section

#: ``holdout``: the seeded part of the training data held out for search; ``test`` (= ``val``): the
#: data set's test split; ``val-search`` / ``val-report`` (= ``test-*``): seeded disjoint halves of it
SplitName = Literal["holdout", "test", "val", "val-search", "val-report", "test-search", "test-report"]
#: ``authors``: the data config's resize and centre crop (ImageNet: Resize 256 / CenterCrop 224), resized in the
#: network; ``per-resolution``: prepared at r
PipelineName = Literal["authors", "per-resolution"]
InterpolationName = Literal["bilinear", "bicubic"]
PredictorKind = Literal["rf", "lgbm", "ridge", "gp"]
FeatureSet = Literal["knobs", "knobs+cost"]

SEED_LIMIT = 2**32  # seeds lie in [0, SEED_LIMIT): numpy's and torch's generators take 0 .. 2**32 - 1
MAX_ARCHS = 100_000  # subnets measured or re-measured
#: calibration images are drawn once and held in memory (64 x 256 at 224 px, the default, are 9.8 GB)
MAX_CALIB_BATCHES = 1_024
MAX_BATCH_SIZE = 4_096
MAX_CALIB_IMAGES_HELD = 32_768
DEFAULT_PIPELINE: PipelineName = "authors"
DEFAULT_CALIB_BATCHES = 64  # published: 64 batches of 256 training crops
DEFAULT_CALIB_BATCH_SIZE = 256
DEFAULT_BATCH_SIZE = 256  # evaluation batch size
#: Predictor kinds cross-validated by default (the Gaussian process is opt-in: it scales poorly).
DEFAULT_PREDICTOR_KINDS = ("rf", "lgbm", "ridge")
DEFAULT_FOLDS = 5

#: checkpoint kind -> (interpolation, calibration seed) of its authors' evaluation; None: the command's seed
KIND_DEFAULTS: dict[str, tuple[str, int | None]] = {
    "attentivenas": ("bilinear", 2),  # configs/eval_attentive_nas_models.yml: interpolation bilinear, seed 2
    "alphanet": ("bicubic", 5),  # configs/eval_alphanet_models.yml: no interpolation (bicubic), seed 5
    "ours": ("bilinear", None),
}


def checkpoint_kind(meta: dict[str, Any] | None) -> str:
    """``ours``, ``attentivenas`` or ``alphanet``; metadata without a kind reads as AttentiveNAS's
    when it is the authors', else as ours."""
    meta = meta or {}
    kind = meta.get("kind")
    if kind in KIND_DEFAULTS:
        return str(kind)
    return "attentivenas" if meta.get("source") == "authors" else "ours"


def held_nothing_out(meta: dict[str, Any] | None) -> bool:
    """Whether the checkpoint trained on all of its training data: the authors' (all of ImageNet
    ``train/``), or ours whose ``holdout`` record says it held out no image and no folder."""
    meta = meta or {}
    if meta.get("source") == "authors":
        return True
    record = meta.get("holdout")
    return isinstance(record, dict) and not record.get("val_dir") and int(record.get("held_out", -1)) == 0


def default_split(meta: dict[str, Any] | None) -> str:
    """The split measured when none is asked for: ``test`` when the checkpoint held nothing out, else ``holdout``."""
    return "test" if held_nothing_out(meta) else "holdout"


class MeasureSettings(Section):
    """Stage 2's measurement settings; ``None`` is the checkpoint's (:meth:`resolved`)."""

    split: SplitName | None = None
    pipeline: PipelineName = DEFAULT_PIPELINE
    # resize and calibration crops; null: the checkpoint's evaluation (AttentiveNAS's, ours: bilinear; AlphaNet's: bicubic)
    interpolation: InterpolationName | None = None
    # seed of the BN-calibration batches; null: the checkpoint's (AttentiveNAS 2, AlphaNet 5; ours: the command's seed)
    calib_seed: int | None = Field(None, ge=0, lt=SEED_LIMIT)
    calib_batches: int = Field(DEFAULT_CALIB_BATCHES, ge=1, le=MAX_CALIB_BATCHES)  # BN calibration batches per subnet
    calib_batch_size: int = Field(DEFAULT_CALIB_BATCH_SIZE, ge=1, le=MAX_BATCH_SIZE)
    batch_size: int = Field(DEFAULT_BATCH_SIZE, ge=1, le=MAX_BATCH_SIZE)  # evaluation batch size
    max_images: int | None = Field(None, ge=1)  # measure on the first N images of the split

    @model_validator(mode="after")
    def _calibration_held(self) -> MeasureSettings:
        held = self.calib_batches * self.calib_batch_size
        if held > MAX_CALIB_IMAGES_HELD:
            raise ValueError(f"calib_batches x calib_batch_size = {held:,} calibration images, held in memory; at most "
                             f"{MAX_CALIB_IMAGES_HELD:,}")
        return self

    @property
    def per_resolution(self) -> bool:
        return self.pipeline == "per-resolution"

    def measurement(self) -> MeasureSettings:
        """These settings alone (a section that embeds them, e.g. ``accuracy``, without its own keys)."""
        return MeasureSettings(**{k: getattr(self, k) for k in MeasureSettings.model_fields})

    def resolved(self, meta: dict[str, Any] | None, seed: int = 0) -> MeasureSettings:
        """The settings with ``split``, ``interpolation`` and ``calib_seed`` filled in for the checkpoint
        of ``meta`` where they are None; ``seed`` is our checkpoints' calibration seed."""
        interpolation, calib_seed = KIND_DEFAULTS[checkpoint_kind(meta)]
        return self.measurement().model_copy(update={
            "split": self.split if self.split is not None else default_split(meta),
            "interpolation": self.interpolation or interpolation,
            "calib_seed": self.calib_seed if self.calib_seed is not None else
            (calib_seed if calib_seed is not None else int(seed))})

    def describe(self, eval_images: str | None = None) -> str:
        """One line for logs: split, pipeline and calibration. ``eval_images``: the evaluation transform
        that ran (``attentivenas.data.describe_eval`` of the data config; without it the line says the
        data config's, never a fixed recipe's)."""
        prep = ("images prepared per resolution (Resize r/0.875, CenterCrop r)" if self.per_resolution
                else f"images {eval_images or 'as the data config prepares them'}, resized in the network")
        return (f"split {self.split}; {prep}, {self.interpolation}; BN recalibrated on {self.calib_batches} x "
                f"{self.calib_batch_size} training crops (seed {self.calib_seed})")


def _choices(name: str, model: type[Section]) -> list[str]:
    return [a for arg in get_args(model.model_fields[name].annotation) for a in (get_args(arg) or (arg,))
            if isinstance(a, str)]


def _flag_error(err: dict[str, Any], model: type[Section] = MeasureSettings) -> str:
    name = str(err["loc"][0]) if err.get("loc") else "settings"
    flag, value, ctx = "--" + name.replace("_", "-"), err.get("input"), err.get("ctx") or {}
    if err.get("type") == "literal_error":
        return f"{flag} {value!r} is not one of {_choices(name, model)}"
    if err.get("type") == "greater_than_equal":
        return f"{flag} must be >= {ctx.get('ge')}, got {value}"
    return f"{flag}: {err.get('msg', 'invalid value')} (got {value!r})"


def measure_from_flags(**flags: Any) -> MeasureSettings:
    """The settings of a stage-2 command's flags (a flag left None takes the default); a bad value
    raises :class:`~attentivenas.errors.UserError` naming the flag."""
    try:
        return MeasureSettings(**{k: v for k, v in flags.items() if v is not None})
    except ValidationError as exc:
        raise UserError(_flag_error(dict(exc.errors()[0]))) from None


ArchCount = Annotated[int, Field(ge=4, le=MAX_ARCHS)]
SpreadName = Literal["flops", "uniform"]  # = accuracy.measure.SPREADS


class PredictorBuildSettings(Section):
    """``predictor build``: the subnets of ``checkpoint`` measured (as ``measure`` says) into the dataset file
    ``out``; None is the checkpoint's (space, data) or the default (device: cuda if present)."""

    checkpoint: str = Field(description="Trained supernet checkpoint.")
    out: str = Field(description="Dataset JSONL (archs already in it are not measured again).")
    num_archs: int = Field(100, ge=1, le=MAX_ARCHS, description="Archs to measure, spread over the FLOPs range.")
    space: str | None = Field(None, description="Space name or YAML (default: the checkpoint's).")
    data: str | None = None  # as --data says (None: the checkpoint's training data)
    spread: SpreadName = Field("flops", description="flops (stratified over the FLOPs range) or uniform.")
    device: str | None = Field(None, description="cpu, cuda or cuda:N (default: cuda if present).")
    seed: int = Field(0, ge=0, lt=SEED_LIMIT, description="Seed of the archs measured (and of the calibration "
                      "batches of our checkpoints, unless --calib-seed).")
    fresh: bool = Field(False, description="Start --out over (the old file is kept as FILE.stale-<hash>); needed "
                        "when it was measured on another checkpoint, data or settings.")
    measure: MeasureSettings = MeasureSettings()

    @classmethod
    def from_flags(cls, **flags: Any) -> PredictorBuildSettings:
        """The settings of the command's flags (the keys of :class:`MeasureSettings` go to ``measure``; a flag
        left None takes the default); a bad value raises :class:`~attentivenas.errors.UserError` naming the flag."""
        measure = measure_from_flags(**{k: flags.pop(k) for k in list(flags) if k in MeasureSettings.model_fields})
        given = {k: str(v) if k in ("checkpoint", "out") else v for k, v in flags.items() if v is not None}
        try:
            return cls(measure=measure, **given)
        except ValidationError as exc:
            raise UserError(_flag_error(dict(exc.errors()[0]), cls)) from None


class PredictorFitSettings(Section):
    """How a predictor is fitted on measured subnets: the kinds cross-validated (the best kept), the
    features and the folds; ``num_archs`` (subnets measured) defaults per section."""

    num_archs: ArchCount = 60
    kinds: list[PredictorKind] = Field(default_factory=lambda: list(DEFAULT_PREDICTOR_KINDS), min_length=1)
    feature_set: FeatureSet = "knobs+cost"  # better ranks on few archs
    folds: int = Field(DEFAULT_FOLDS, ge=2)
    section: ClassVar[str] = "predictor"  #: the config section's name, for messages

    @model_validator(mode="after")
    def _enough(self) -> PredictorFitSettings:
        if 2 * self.folds > self.num_archs:  # cross-validation holds out 2 subnets per fold at least
            raise ValueError(f"{self.section}.num_archs={self.num_archs} is too few for {self.section}.folds="
                             f"{self.folds}: the fit needs 2 subnets per fold ({2 * self.folds})")
        return self
