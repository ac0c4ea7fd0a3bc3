"""The stage-1 schema: :class:`TrainConfig` and its sections (data, model, loss, optim, sampler, eval,
checkpoint, runtime, log). ``attentivenas train --config FILE [key=value ...]`` reads it."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, SerializerFunctionWrapHandler, field_validator, model_serializer, model_validator

from .base import Section, load_model, model_to_yaml, override_model, parse_model, save_model
from .measure import DEFAULT_CALIB_BATCHES, ArchCount, FeatureSet, PredictorFitSettings, PredictorKind

#: the keys of ``sampler.online`` in the order a written config lists them
ONLINE_KEY_ORDER = ("start_epoch", "refit_every", "num_archs", "kinds", "folds", "feature_set", "calibration_batches",
                    "max_batches")

#: the old name of ``eval.calib_batches`` (read, with a DeprecationWarning, never written)
OLD_CALIB_KEY = "calibration_batches"

#: Default bin width of the prior per named cost constraint (MFLOPs, millions of parameters); the
#: callable constraints (latency, memory) get (max - min) / 40 of their range over the space.
DEFAULT_BIN_WIDTH = {"flops": 25.0, "params": 0.25}


class DataConfig(Section):
    """Dataset, transforms and loaders."""

    name: Literal["digits", "fashion_mnist", "imagefolder", "imagenet", "cifar10", "cifar100"] = "digits"
    # dataset root; required for everything but digits and fashion_mnist (default: the folder of
    # Debian's dataset-fashion-mnist package, /usr/share/datasets/fashion-mnist)
    path: str | None = None
    train_dir: str = "train"  # imagefolder: sub-folder with the training classes
    test_dir: str = "val"  # imagefolder: sub-folder used as the test split (the official val/)
    val_dir: str | None = None  # imagefolder: held-out folder for search; else a seeded fraction of train
    val_fraction: float | None = Field(None, ge=0.0, lt=1.0)  # held out of train for search; 0: none (train on all)
    val_size: int | None = Field(None, ge=0)  # instead of val_fraction: number of held-out images (0: none)
    split_seed: int = 0  # seed of the held-out split (kept apart from the training seed)
    train_size: int | None = Field(None, ge=1)  # train on a seeded, class-stratified subset of this many images
    download: bool = False  # CIFAR: let torchvision download the files (never in tests)
    image_size: int = Field(224, ge=8, le=4096)  # train crop size (digits, fashion_mnist (28 if unset): image size)
    # eval: resize the shorter side to this, then centre-crop image_size; null: follows image_size (the
    # whole image under 64 px, else image_size / 0.875 as ImageNet's 256 for 224); see data/augment_plan.py
    eval_resize: int | None = Field(None, ge=8, le=4096)
    interpolation: Literal["bicubic", "bilinear"] = "bicubic"
    # training crop. none: the evaluation's resize and centre crop (the whole image); random_resized:
    # RandomResizedCrop(image_size, scale=crop_scale); pad_random_crop: pad by random_shift pixels
    # (image_size // 8 when 0) and crop image_size at random (a random translation). auto:
    # pad_random_crop when random_shift > 0, else none under 64 px and for digits / fashion_mnist,
    # else random_resized
    crop: Literal["auto", "none", "random_resized", "pad_random_crop"] = "auto"
    crop_scale: tuple[float, float] = (0.08, 1.0)  # random_resized: range of the crop's area fraction
    # v0: the authors' (timm's TF ImageNet policy v0); randaugment: timm's RandAugment;
    # imagenet | cifar10 | svhn: torchvision's original AutoAugment policies; none; auto: none under
    # 64 px and for digits / fashion_mnist, else v0
    auto_augment: Literal["auto", "v0", "randaugment", "imagenet", "cifar10", "svhn", "none"] = "auto"
    augment_magnitude_std: float = Field(0.5, ge=0.0, le=10.0)  # v0 / randaugment: noise on the magnitude
    rand_augment_ops: int = Field(2, ge=1, le=15)  # randaugment: ops per image
    rand_augment_magnitude: int = Field(9, ge=0, le=30)  # randaugment: magnitude (timm's scale, 10 = max)
    random_erasing: float = Field(0.0, ge=0.0, le=1.0)  # probability of timm's RandomErasing (per-pixel noise)
    random_flip: bool | Literal["auto"] = "auto"  # left-right flips; auto: on, except for digits
    # random translation by up to this many pixels (crop pad_random_crop's padding; seeded per sample)
    random_shift: int = Field(0, ge=0, le=1024)
    # images BN is recalibrated on (epoch-end checks, stage 2): the training images through the
    # evaluation transform (eval) or the training transform (train); auto: train for digits and
    # fashion_mnist (shift / flip only, as measured), eval for image files
    calib_transform: Literal["auto", "eval", "train"] = "auto"
    batch_size: int = Field(32, ge=1)  # per process
    eval_batch_size: int = Field(64, ge=1)
    num_workers: int = Field(0, ge=0)
    pin_memory: bool = True
    # keep the whole training set on the device and make each batch there (seeded shift / flip as the
    # CPU path, see data/device.py): auto: on for digits and fashion_mnist on CUDA; true also on CPU
    on_device: bool | Literal["auto"] = "auto"

    @model_validator(mode="after")
    def _check(self) -> DataConfig:
        if self.name not in ("digits", "fashion_mnist") and not self.path:
            raise ValueError(f"data.path is required for data.name={self.name!r} (the dataset root folder)")
        if self.on_device is True and self.name not in ("digits", "fashion_mnist"):
            raise ValueError(f"data.on_device=true needs an in-memory data set (digits, fashion_mnist), not "
                             f"data.name={self.name!r}; use auto or false")
        if self.name == "fashion_mnist" and "image_size" not in self.model_fields_set:
            self.image_size = 28  # the images' own size, not ImageNet's crop
        lo, hi = self.crop_scale
        if not 0.0 < lo <= hi <= 1.0:
            raise ValueError(f"data.crop_scale must be [low, high] with 0 < low <= high <= 1, got [{lo}, {hi}]")
        if self.random_shift and self.crop in ("none", "random_resized"):
            raise ValueError(f"data.random_shift={self.random_shift} is the padding of data.crop=pad_random_crop; "
                             f"with data.crop={self.crop} it does nothing (set it to 0, or data.crop=pad_random_crop)")
        if self.random_shift >= self.image_size:
            raise ValueError(f"data.random_shift={self.random_shift} must be below data.image_size={self.image_size}")
        return self


class ModelConfig(Section):
    """Supernet construction and regularisation of the max subnet."""

    num_classes: int | None = Field(None, ge=2)  # default: from the dataset
    bn_momentum: float = Field(0.0, ge=0.0, le=1.0)  # 0: statistics frozen in training (recalibrated for eval)
    bn_eps: float = Field(1e-5, gt=0.0)
    dropout: float = Field(0.2, ge=0.0, lt=1.0)  # max subnet only
    drop_connect: float = Field(0.2, ge=0.0, lt=1.0)  # max subnet only, scaled by block index / num blocks
    drop_connect_only_last_two_stages: bool = True
    # pytorch: PyTorch's default init of every layer (the authors'); kaiming_fan_out: He-normal
    # fan-out convs, N(0, 0.01) classifier, unit BN (torchvision's MobileNetV3)
    init: Literal["pytorch", "kaiming_fan_out"] = "pytorch"
    # then zero the weight (gamma) of the last BN of every block, so each block starts as its shortcut
    # (the authors' supernet constructor: 37 blocks in the attentivenas space); false: the plain init
    zero_init_residual: bool = True


class LossConfig(Section):
    """Losses of the sandwich step."""

    label_smoothing: float = Field(0.1, ge=0.0, lt=1.0)  # max subnet vs the labels
    distill: Literal["kd", "alpha_divergence"] = "kd"  # other subnets vs the max net's detached logits
    temperature: float = Field(1.0, gt=0.0)  # kd only
    # the middle and min subnets learn from the labels (label-smoothed CE) for the first this many
    # epochs (fractions allowed), then from the max subnet (in-place distillation); 0: distil from
    # step 0 (the authors' recipe). An untrained teacher pulls small-data supernets toward flat outputs.
    distill_warmup_epochs: float = Field(0.0, ge=0.0, le=1000.0)
    alpha_min: float = Field(-1.0, ge=-1.0, le=1.0)  # alpha_divergence (AlphaNet)
    alpha_max: float = Field(1.0, ge=-1.0, le=1.0)
    iw_clip: float = Field(5.0, gt=0.0)  # clip of the importance weight (p / q) ** alpha

    @model_validator(mode="after")
    def _check(self) -> LossConfig:
        if self.alpha_min > self.alpha_max:
            raise ValueError(f"loss.alpha_min ({self.alpha_min}) must not exceed loss.alpha_max ({self.alpha_max})")
        return self


class OptimConfig(Section):
    """SGD and the warm-up + cosine schedule (per iteration)."""

    lr: float = Field(0.1, gt=0.0)  # per lr_reference_batch images (the peak lr: see lr_scaling)
    lr_reference_batch: int = Field(256, ge=1)
    # linear: lr * total_batch / reference (0.0125 at batch 32, 0.8 at 2048); authors: their
    # lr * max(1, total_batch // reference) (0.1 at batch 32 or 300, 0.8 at 2048; train_attentive_nas.py)
    lr_scaling: Literal["linear", "authors"] = "linear"
    # warmup_then_cosine: linear warm-up from warmup_start_factor to 1, reached at the end of the
    # warm-up, then a cosine from 1 to min_lr over the remaining iterations. authors: their
    # WarmupCosineLR: at iteration i of T, warm-up factor w(i) = s (1 - i / W) + i / W (1 after the W
    # warm-up iterations, s = warmup_start_factor) times a cosine over the WHOLE run,
    # 0.5 (1 + cos(pi i / T)); min_lr is their clamp_lr, a floor from iteration W + 1 on
    schedule: Literal["warmup_then_cosine", "authors"] = "warmup_then_cosine"
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    nesterov: bool = True
    weight_decay: float = Field(1e-5, ge=0.0)
    no_decay_bn_bias: bool = True
    epochs: int = Field(360, ge=1)
    warmup_epochs: float = Field(5.0, ge=0.0)
    # warm-up starts at this fraction of the lr (the authors': 0.001, their default warmup_lr)
    warmup_start_factor: float = Field(0.0, ge=0.0, le=1.0)
    min_lr: float = Field(0.0, ge=0.0)  # end of the cosine (schedule authors: the floor after warm-up)
    grad_clip_value: float | None = Field(1.0, gt=0.0)  # clip by value; null: no clipping
    # the classifier's LR as a multiple of the others' (transfer: e.g. 10 for a re-initialised classifier)
    classifier_lr_scale: float = Field(1.0, gt=0.0)


class OnlinePredictorConfig(PredictorFitSettings):
    """``sampler.estimator=online``: an accuracy predictor fitted during training (see docs/training.md).

    Epochs before ``start_epoch`` sample the middle subnets uniformly. After ``start_epoch`` epochs
    (and every ``refit_every`` epochs after that, but not after the last one) ``num_archs`` subnets
    spread over the FLOPs range are BN-recalibrated and measured on the validation split, a
    predictor is fitted (the best of ``kinds`` by cross-validated Kendall tau, :class:`PredictorFitSettings`)
    and written to ``DIR/predictors/epoch_XXX.json``; from then on ``sampler.method`` (BestUp/WorstUp) ranks
    the candidates by predicted accuracy.
    """

    section: ClassVar[str] = "sampler.online"
    start_epoch: int = Field(1, ge=1)  # epochs of uniform sampling before the first fit
    refit_every: int = Field(1, ge=1)  # epochs between fits
    num_archs: ArchCount = 50  # subnets measured per fit (min and max included)
    kinds: list[PredictorKind] = Field(default_factory=lambda: ["ridge", "rf"], min_length=1)
    feature_set: FeatureSet = "knobs"
    calibration_batches: int | None = Field(None, ge=1)  # BN-calibration batches per subnet (None: eval.calib_batches)
    max_batches: int | None = Field(None, ge=1)  # cap of validation batches per subnet (None: eval's)

    @model_validator(mode="after")
    def _enough(self) -> OnlinePredictorConfig:  # replaces PredictorFitSettings' check (its message)
        if self.num_archs < 2 * self.folds:
            raise ValueError(f"sampler.online.num_archs ({self.num_archs}) must be at least 2 x "
                             f"sampler.online.folds ({self.folds})")
        return self

    @model_serializer(mode="wrap")
    def _ordered(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)  # a written config lists the keys as before they were PredictorFitSettings'
        return {**{k: data[k] for k in ONLINE_KEY_ORDER if k in data}, **data}


class SamplerConfig(Section):
    """Which middle subnets each step trains (AttentiveNAS)."""

    method: Literal["uniform", "bestup", "worstup"] = "bestup"
    k: int = Field(3, ge=1)  # candidates per middle subnet
    num_middle: int = Field(2, ge=0)  # middle subnets per step (4 subnets in all with max and min)
    prior: Literal["empirical", "uniform"] = "empirical"  # over the constraint's bins
    # bin width in the constraint's unit; None: 25 (MFLOPs) for flops, 0.25 (M) for params, and
    # (max - min) / 40 of the space's range for latency (ms) and memory (MB)
    bin_width: float | None = Field(None, gt=0.0)
    constraint: Literal["flops", "params", "latency", "memory"] = "flops"
    latency_table: str | None = None  # constraint latency: a table from `attentivenas latency build-table`
    estimator: Literal["loss", "predictor", "online"] = "loss"
    # estimator loss: score the candidates on this fraction of each batch (1: all of it, as the authors;
    # 0.25 cuts the scoring forwards 4x at the cost of a noisier ranking)
    score_fraction: float = Field(1.0, gt=0.0, le=1.0)
    predictor: str | None = None  # path of a fitted predictor (estimator: predictor)
    online: OnlinePredictorConfig = OnlinePredictorConfig()  # estimator: online
    prior_samples: int = Field(100_000, ge=100)  # uniform archs for the empirical histogram
    target_min: float | None = None  # restrict targets to [target_min, target_max] of the constraint
    target_max: float | None = None
    # the choices in metrics.jsonl (kind "sampler": candidates' FLOPs, scores, the pick; read by
    # `attentivenas sampling-report`): every record_every steps, widened to at most record_max records; 0: none
    record_every: int = Field(10, ge=0)
    record_max: int = Field(200, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _default_bin_width(cls, data: Any) -> Any:
        """Fill the bin width of the named cost constraints, so the resolved config shows it."""
        if isinstance(data, Mapping) and data.get("bin_width") is None:
            width = DEFAULT_BIN_WIDTH.get(data.get("constraint", "flops"))  # type: ignore[arg-type]
            if width is not None:
                data = {**data, "bin_width": width}
        return data

    @model_validator(mode="after")
    def _check(self) -> SamplerConfig:
        if self.estimator == "predictor" and not self.predictor:
            raise ValueError("sampler.predictor (a predictor file) is required when sampler.estimator=predictor")
        if self.estimator == "online":
            if self.method == "uniform":
                raise ValueError("sampler.estimator=online ranks candidates for sampler.method=bestup or worstup, "
                                 "not uniform")
            if self.predictor:
                raise ValueError("sampler.predictor is read only by sampler.estimator=predictor; "
                                 "sampler.estimator=online fits its own (set sampler.predictor=null)")
        if self.constraint == "latency" and not self.latency_table:
            raise ValueError("sampler.latency_table (a table from `attentivenas latency build-table`) is required "
                             "when sampler.constraint=latency")
        if self.target_min is not None and self.target_max is not None and self.target_min >= self.target_max:
            raise ValueError(f"sampler.target_min ({self.target_min}) must be below sampler.target_max")
        return self


class EvalConfig(Section):
    """Epoch-end validation of the min and max subnets (BN recalibrated)."""

    every_epochs: int = Field(1, ge=0)  # 0: never
    # BN-calibration batches per check (stage 2's name; ``calibration_batches``, the old one, still loads)
    calib_batches: int = Field(DEFAULT_CALIB_BATCHES, ge=1)
    calibration_batch_size: int | None = Field(None, ge=1)  # None: data.batch_size
    # seed of the BN-calibration batches (drawn from the training split, the same every epoch; each rank
    # draws its own); None: the run's seed. The authors' evaluation configs seed 2 (AttentiveNAS) and 5
    # (AlphaNet); their epoch-end checks calibrate on the first batches of that epoch's training loader
    calibration_seed: int | None = Field(None, ge=0)
    max_batches: int | None = Field(None, ge=1)  # cap the validation batches (None: whole split)
    # holdout: the part of the training data held out (data.val_fraction); test: the test split
    # (an ImageFolder's val/: the authors validate there, having trained on all of train/)
    split: Literal["holdout", "test"] = "holdout"

    @model_validator(mode="before")
    @classmethod
    def _old_calib_name(cls, data: Any) -> Any:
        """``eval.calibration_batches``, the old spelling of ``eval.calib_batches``, still loads (older
        runs' ``config.yaml``, old overrides), with a :class:`DeprecationWarning`. Given both (an old
        file with a new override, or the other way round), the one written later wins."""
        if not isinstance(data, Mapping) or OLD_CALIB_KEY not in data:
            return data
        warnings.warn(f"config key 'eval.{OLD_CALIB_KEY}' is deprecated: write 'eval.calib_batches'",
                      DeprecationWarning, stacklevel=2)
        keys = list(data)
        out = {k: v for k, v in data.items() if k not in (OLD_CALIB_KEY, "calib_batches")}
        later = max((k for k in (OLD_CALIB_KEY, "calib_batches") if k in data), key=keys.index)
        out["calib_batches"] = data[later]
        return out

    @field_validator("split", mode="before")
    @classmethod
    def _old_split_name(cls, value: Any) -> Any:
        """``val`` was this setting's name for the hold-out before stage 2 gave ``val`` its
        ImageFolder meaning (the official val/ = test); old configs still load."""
        return "holdout" if value == "val" else value


class CheckpointConfig(Section):
    """When to write checkpoints and how many to keep."""

    every_steps: int = Field(1000, ge=0)  # 0: only at epoch ends
    keep_last: int = Field(3, ge=1)


class RuntimeConfig(Section):
    """Device, precision, threads and run limits."""

    device: Literal["auto", "cpu", "cuda"] = "auto"
    # auto: bf16 autocast on CUDA (where the GPU supports it), none on CPU (measured there: bf16 adds
    # nothing once channels-last is on); none (fp32, the authors' precision; the ImageNet recipes) |
    # bf16 | fp16 force it
    amp: Literal["auto", "none", "bf16", "fp16"] = "auto"
    # auto: channels-last memory on CPU (measured 1.7-2.4x faster steps there, see docs/training.md),
    # the default contiguous format on CUDA (not measured yet); true / false force it
    channels_last: bool | Literal["auto"] = "auto"
    # auto: on CPU, glibc keeps freed memory for reuse instead of mapping every large activation
    # afresh (page faults cost 40% of an ImageNet-recipe step there, see docs/training.md); the
    # process keeps its peak memory. ATTENTIVENAS_REUSE_FREED_MEMORY=0/1 overrides auto
    reuse_freed_memory: bool | Literal["auto"] = "auto"
    threads: int | None = Field(None, ge=1)  # torch CPU threads per process
    steps_per_epoch: int | None = Field(None, ge=1)  # cap iterations per epoch (quick runs)
    max_steps: int | None = Field(None, ge=1)  # stop (with a checkpoint) after this many steps in all
    nan_patience: int = Field(5, ge=1)  # stop after this many non-finite losses in a row
    dist_timeout_s: int | None = Field(None, ge=10)  # null: 600 on CPU (gloo), 1800 on CUDA (NCCL)


class LogConfig(Section):
    """Progress bar, metrics file and TensorBoard."""

    every_steps: int = Field(10, ge=1)
    progress: bool = True
    tensorboard: bool = True


class TrainConfig(Section):
    """The whole stage-1 configuration."""

    seed: int = 0
    space: str = "attentivenas"  # preset name or a YAML file with a supernet_config block
    # a supernet checkpoint (ours or the authors') to start from: every tensor that fits is kept, the
    # classifier re-initialised when the class count differs; ignored when a run resumes (see train/transfer.py)
    init_from: str | None = None
    # init_from's classifier: auto (kept when its shape fits, i.e. the class count is the same) or new
    # (always re-initialised: new data whose classes mean something else, e.g. Fashion-MNIST -> digits)
    init_classifier: Literal["auto", "new"] = "auto"
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    loss: LossConfig = LossConfig()
    optim: OptimConfig = OptimConfig()
    sampler: SamplerConfig = SamplerConfig()
    eval: EvalConfig = EvalConfig()
    checkpoint: CheckpointConfig = CheckpointConfig()
    runtime: RuntimeConfig = RuntimeConfig()
    log: LogConfig = LogConfig()

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.data.val_fraction == 0 or self.data.val_size == 0:
            needs = [k for k, on in (("eval.split=holdout", self.eval.split == "holdout" and self.eval.every_epochs),
                                     ("sampler.estimator=online", self.sampler.estimator == "online")) if on]
            if needs and not self.data.val_dir:
                raise ValueError(f"{needs[0]} measures on the hold-out, but data.val_fraction/val_size=0 holds out "
                                 "nothing; set eval.split=test or hold out some training images")
        on = self.sampler.online
        if self.sampler.estimator == "online" and on.start_epoch >= self.optim.epochs:
            raise ValueError(f"sampler.online.start_epoch ({on.start_epoch}) must be below optim.epochs "
                             f"({self.optim.epochs}): the predictor is fitted after start_epoch epochs")
        return self


def parse_config(data: Mapping[str, Any] | None, source: str = "config") -> TrainConfig:
    """Validate a nested dict into a :class:`TrainConfig` (errors name the key)."""
    return parse_model(TrainConfig, data, source)


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> TrainConfig:
    """Load a YAML training config (or the defaults when ``path`` is None) and apply ``key=value`` overrides."""
    return load_model(TrainConfig, path, overrides)


def override_config(config: TrainConfig, overrides: Sequence[str]) -> TrainConfig:
    """A new config with ``key=value`` overrides applied to ``config``."""
    return override_model(config, overrides)


def config_to_yaml(config: TrainConfig) -> str:
    """The resolved config as YAML text (loads back to an equal config)."""
    return model_to_yaml(config)


def save_config(config: TrainConfig, path: str | Path) -> Path:
    """Write the resolved config atomically."""
    return save_model(config, path)
