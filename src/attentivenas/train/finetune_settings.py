"""The settings of ``attentivenas finetune`` (:class:`FinetuneSettings`, defaults and checks), its result,
and the supernet recipe a fine-tune scales its optimiser from (:func:`recipe_of`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import OptimConfig
from ..errors import ConfigError

DEFAULT_EPOCHS = 10  #: a short schedule
DEFAULT_LR_FACTOR = 0.5  #: the fine-tuning LR as a fraction of the supernet recipe's
#: the authors' recipe (configs/attentivenas_imagenet.yaml) for checkpoints without a config of ours
AUTHORS_RECIPE = OptimConfig(lr=0.1, lr_scaling="authors", schedule="authors", warmup_start_factor=0.001)
AUTHORS_BATCH = 32  #: the authors' images per GPU
RESULT = "result.json"
DISTILL = ("auto", "kd", "none")
#: ``distill="auto"``: KD when the teacher's hold-out top-1 is at least this many points above the subnet's.
#: The one measured case (docs/results.md: hold-out margins of 0-1.3 points) found the labels better; the
#: threshold is a choice above that range, not a measured crossover
AUTO_KD_MARGIN = 2.0
#: settings a resumed run may change: they do not change what it computes (checkpoint and log cadence,
#: evaluation batch, device, threads, memory layout)
RESUME_FREE = ("checkpoint_every", "keep_last", "log_every", "eval_batch_size", "device", "threads", "channels_last")
#: where the subnet's weights start: the supernet's (fine-tuning) or a fresh init (training it alone from
#: scratch, as a ranking probe's standalone subnets are: ``attentivenas ranking``)
INITS = ("supernet", "scratch")


@dataclass
class FinetuneSettings:
    """How :func:`finetune` trains and measures; None means the default named in each comment."""

    epochs: int = DEFAULT_EPOCHS
    lr: float | None = None  # peak LR per optim.lr_reference_batch images; None: half the recipe's optim.lr
    batch_size: int | None = None  # None: the checkpoint's data.batch_size (the authors': 32)
    distill: str = "auto"  # kd: from the max subnet; none: the labels (label-smoothed CE); auto: choose_distill
    temperature: float = 1.0  # kd
    label_smoothing: float | None = None  # distill none; None: the recipe's loss.label_smoothing (0.1)
    warmup_epochs: float | None = None  # None: 0 from the supernet; the recipe's warm-up from scratch
    init: str = "supernet"  # supernet: its weights (fine-tuning); scratch: a fresh seeded init, the recipe's LR
    new_head: bool = False  # re-initialise the classifier for the data's classes (seeded); the labels teach it
    weight_decay: float | None = None  # None: the recipe's
    seed: int = 0
    steps_per_epoch: int | None = None  # cap of steps per epoch (quick runs)
    checkpoint_every: int = 100  # steps between checkpoints (and every epoch end); 0: epoch ends only
    keep_last: int = 2
    log_every: int = 10
    calib_batches: int = 64  # BN calibration of the teacher, the "before" and the "after" subnets
    calib_batch_size: int = 256
    eval_batch_size: int = 256
    max_images: int | None = None  # cap of the images evaluated per split
    device: str = "auto"
    threads: int | None = None
    # auto: channels-last memory on CPU (the supernet trainer's runtime.channels_last; measured 2.4-2.5x
    # faster standalone steps of the tiny space on one thread); True / False force it
    channels_last: bool | str = "auto"

    def check(self) -> None:
        """One :class:`ConfigError` line for a value out of range."""
        if self.distill not in DISTILL:
            raise ConfigError(f"--distill {self.distill!r} is not one of {list(DISTILL)}")
        if self.init not in INITS:
            raise ConfigError(f"--init {self.init!r} is not one of {list(INITS)}")
        for name, low in (("epochs", 1), ("calib_batches", 1), ("calib_batch_size", 1), ("eval_batch_size", 1),
                          ("keep_last", 1), ("log_every", 1), ("checkpoint_every", 0)):
            if getattr(self, name) < low:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= {low}, got {getattr(self, name)}")
        for name in ("lr", "batch_size", "steps_per_epoch", "max_images", "threads"):
            v = getattr(self, name)
            if v is not None and v <= 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be > 0, got {v}")
        if self.temperature <= 0 or (self.warmup_epochs is not None and self.warmup_epochs < 0):
            raise ConfigError("--temperature must be > 0 and --warmup-epochs >= 0")
        if self.channels_last not in ("auto", True, False):
            raise ConfigError(f"channels_last must be 'auto', True or False, got {self.channels_last!r}")
        if self.new_head and self.distill == "kd":
            raise ConfigError("--distill kd cannot teach a new head: the teacher's outputs are the checkpoint's "
                              "classes; use --distill none (auto chooses it with --new-head)")


@dataclass
class FinetuneResult:
    """Where a fine-tuning run wrote its files and what it measured."""

    out_dir: Path
    checkpoint: Path
    result: dict[str, Any]


def recipe_of(meta: dict[str, Any]) -> tuple[OptimConfig, int, float]:
    """The supernet recipe's optimiser settings, batch size (per process) and label smoothing: the
    checkpoint's training config (ours), else the authors' recipe."""
    cfg = meta.get("config") if isinstance(meta.get("config"), dict) else None
    if cfg is None:
        return AUTHORS_RECIPE, AUTHORS_BATCH, 0.1
    try:
        optim = OptimConfig.model_validate(cfg.get("optim") or {})
    except ValueError:  # a config of another release: the schema's defaults
        optim = OptimConfig()
    data, loss = cfg.get("data") or {}, cfg.get("loss") or {}
    return optim, int(data.get("batch_size", 32)), float(loss.get("label_smoothing", 0.1))


