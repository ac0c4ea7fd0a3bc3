"""The settings of ``attentivenas finetune`` (:class:`FinetuneSettings`): a YAML file (``--config``), ``key=value``
overrides and the command's flags, one strict section that embeds :class:`~attentivenas.config.MeasureSettings`
for the BN calibration and the evaluation (``measure``: its defaults, 64 x 256 crops and batches of 256)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from ..errors import UserError
from .base import Section, load_model
from .measure import SEED_LIMIT, MeasureSettings

DEFAULT_EPOCHS = 10  #: a short schedule
DistillName = Literal["auto", "kd", "none"]
#: where the subnet's weights start: the supernet's (fine-tuning) or a fresh init (training it alone from
#: scratch, as a ranking probe's standalone subnets are: ``attentivenas ranking``)
InitName = Literal["supernet", "scratch"]
DISTILL = ("auto", "kd", "none")
INITS = ("supernet", "scratch")
#: settings a resumed run may change: they do not change what it computes (checkpoint and log cadence,
#: evaluation batch, device, threads, memory layout); keys of :meth:`FinetuneSettings.record`
RESUME_FREE = ("checkpoint_every", "keep_last", "log_every", "eval_batch_size", "device", "threads", "channels_last")
#: the command's flags that set a ``measure`` key (the others set the key of their own name)
MEASURE_FLAGS = {"calib_batches": "calib_batches", "calib_batch_size": "calib_batch_size",
                 "eval_batch_size": "batch_size", "max_images": "max_images", "interpolation": "interpolation",
                 "calib_seed": "calib_seed"}


class FinetuneSettings(Section):
    """How :func:`attentivenas.train.finetune.finetune` trains and measures; None means the default named in
    each description."""

    epochs: int = Field(DEFAULT_EPOCHS, ge=1, description="Epochs of fine-tuning.")
    lr: float | None = Field(None, gt=0, description="Peak LR per optim.lr_reference_batch images, scaled with the "
                             "batch as the recipe does. Default: half the recipe's optim.lr.")
    batch_size: int | None = Field(None, ge=1, description="Training batch size. Default: the recipe's "
                                   "data.batch_size (the authors': 32).")
    distill: DistillName = Field("auto", description="auto (kd when the max subnet's hold-out top-1 is at least 2 "
                                 "points above the subnet's, else none; labels without a hold-out), kd (from the "
                                 "supernet's max subnet) or none (the labels, label-smoothed cross-entropy).")
    temperature: float = Field(1.0, gt=0, description="KD temperature.")
    label_smoothing: float | None = Field(None, ge=0, lt=1, description="--distill none: default the recipe's (0.1).")
    warmup_epochs: float | None = Field(None, ge=0, description="Linear warm-up before the cosine. Default: none "
                                        "from the supernet; the recipe's with --init scratch.")
    init: InitName = Field("supernet", description="supernet (start from its weights: fine-tuning) or scratch (a "
                           "fresh seeded init, the recipe's LR and warm-up: the subnet trained alone, as a ranking "
                           "probe's standalone subnets are; use with --distill none).")
    new_head: bool = Field(False, description="Re-initialise the classifier for the data's classes (seeded by "
                           "--seed; it learns from the labels). Without it, data whose class count or class names "
                           "differ from the checkpoint's classifier is refused.")
    weight_decay: float | None = Field(None, ge=0, description="Default: the recipe's.")
    seed: int = Field(0, ge=0, lt=SEED_LIMIT, description="Seed of the data order and augmentation.")
    steps_per_epoch: int | None = Field(None, ge=1, description="Cap the steps per epoch (quick runs).")
    checkpoint_every: int = Field(100, ge=0, description="Steps between checkpoints (and at every epoch end); 0: "
                                  "epoch ends.")
    keep_last: int = Field(2, ge=1)
    log_every: int = Field(10, ge=1)
    # BN calibration of the teacher, the "before" and the "after" subnets (calib_batches x calib_batch_size),
    # evaluation batches (batch_size) and images per split (max_images); split and pipeline are not used
    # (a fine-tune measures the hold-out and the test split, as the data prepares them)
    measure: MeasureSettings = MeasureSettings()
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N.")
    threads: int | None = Field(None, ge=1, description="CPU threads.")
    # auto: channels-last memory on CPU (the supernet trainer's runtime.channels_last; measured 2.4-2.5x
    # faster standalone steps of the tiny space on one thread); true / false force it
    channels_last: bool | Literal["auto"] = "auto"

    @field_validator("channels_last", mode="before")
    @classmethod
    def _layout(cls, v: Any) -> Any:
        if v != "auto" and not isinstance(v, bool):
            raise ValueError(f"channels_last must be 'auto', True or False, got {v!r}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> FinetuneSettings:
        if self.new_head and self.distill == "kd":
            raise ValueError("--distill kd cannot teach a new head: the teacher's outputs are the checkpoint's "
                             "classes; use --distill none (auto chooses it with --new-head)")
        if self.measure.split is not None or self.measure.pipeline != MeasureSettings().pipeline:
            raise ValueError("measure.split and measure.pipeline are not fine-tuning settings: a fine-tune measures "
                             "the hold-out and the test split as the data prepares them")
        return self

    def record(self) -> dict[str, Any]:
        """The flat record a fine-tuning checkpoint keeps (``config.finetune``) and a resume compares: the keys
        and order of the settings before they embedded ``measure``, so earlier runs resume."""
        out = self.model_dump(mode="json", exclude={"measure", "device", "threads", "channels_last"})
        m = self.measure
        out.update(calib_batches=m.calib_batches, calib_batch_size=m.calib_batch_size, eval_batch_size=m.batch_size,
                   max_images=m.max_images, device=self.device, threads=self.threads, channels_last=self.channels_last)
        return out


def flag_overrides(flags: Mapping[str, Any]) -> dict[str, Any]:
    """The nested settings of the command's flags given (None: not given; ``new_head`` False: not given)."""
    out: dict[str, Any] = {}
    for name, value in flags.items():
        if value is None or (name == "new_head" and value is False):
            continue
        if name in MEASURE_FLAGS:
            out.setdefault("measure", {})[MEASURE_FLAGS[name]] = value
        elif name in FinetuneSettings.model_fields:
            out[name] = value
    return out


def _flag_error(err: Mapping[str, Any]) -> str:
    """One line naming the flag of a bad value."""
    loc = [str(p) for p in err.get("loc", ())]
    name = loc[-1] if loc else "settings"
    if loc[:1] == ["measure"]:
        name = next((f for f, k in MEASURE_FLAGS.items() if k == name), name)
    flag, value, ctx = "--" + name.replace("_", "-"), err.get("input"), err.get("ctx") or {}
    if err.get("type") == "literal_error":
        return f"{flag} {value!r} is not one of {ctx.get('expected')}"
    if err.get("type") == "value_error":
        return str(err.get("msg", "")).removeprefix("Value error, ")
    return f"{flag}: {err.get('msg', 'invalid value')} (got {value!r})"


def load_finetune_settings(path: str | Path | None = None, overrides: Sequence[str] = (),
                           flags: Mapping[str, Any] | None = None) -> FinetuneSettings:
    """The settings of a YAML file (None: the defaults), its ``key=value`` overrides, then the command's flags
    given (:func:`flag_overrides`; a flag wins). Errors are one line naming the key, or the flag."""
    settings = load_model(FinetuneSettings, path, overrides)
    given = flag_overrides(flags or {})
    if not given:
        return settings
    merged = _merged(settings.model_dump(mode="json", exclude_unset=True), given)
    try:
        return FinetuneSettings.model_validate(merged)
    except ValidationError as exc:
        raise UserError(_flag_error(dict(exc.errors()[0]))) from None


def _merged(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``top``'s keys (nested sections merged key by key)."""
    out = dict(base)
    for k, v in top.items():
        out[k] = _merged(out.get(k) or {}, v) if isinstance(v, Mapping) else v
    return out
