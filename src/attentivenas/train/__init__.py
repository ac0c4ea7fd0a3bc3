"""Stage 1: supernet training (sandwich rule, attentive sampling, distillation, DDP, resume).

Lives here: ``loop`` (:func:`train`, the :class:`Trainer` built from a :class:`TrainConfig`),
``sandwich`` (one step: max, attentive middles, min; scorers), ``sampling/`` (prior, candidates,
estimators, :class:`ArchSampler`), ``losses``, ``optim``, ``distributed`` (torchrun, the few
collectives), ``state`` (checkpoints: the trainer's payload, save and load, rotation, ``--resume
auto``), ``validate`` (epoch-end evaluation), ``online`` (the accuracy predictor fitted during
training), ``logging``, ``transfer`` (``init_from``: :func:`load_init` starts a supernet from a trained
one) and ``finetune`` (:func:`finetune`: one searched subnet trained alone, KD from the max subnet).

May import: ``attentivenas.space``, ``costs``, ``nn``, ``runtimes``, ``latency``, ``accuracy``, ``export``, ``config``, ``data``,
``rng``, ``devices``, ``host_memory``, ``distributed``, ``io``, ``progress``, ``errors``.
"""

from .finetune import finetune
from .finetune_pareto import finetune_pareto
from .finetune_settings import FinetuneResult, FinetuneSettings
from .loop import TrainingDiverged, TrainResult, default_out_dir, train
from .losses import adaptive_alpha_divergence, build_distill_loss, label_smoothing_ce, soft_target_ce
from .online import OnlinePredictor
from .optim import build_optimizer, build_scheduler, param_groups, scaled_lr, warmup_cosine_factor
from .sandwich import SandwichStep, StepResult
from .state import find_resumable, read_training_checkpoint, resolve_resume
from .transfer import TransferReport, load_init

__all__ = [
    "train", "TrainResult", "TrainingDiverged", "default_out_dir", "SandwichStep", "StepResult",
    "label_smoothing_ce", "soft_target_ce", "adaptive_alpha_divergence", "build_distill_loss",
    "param_groups", "build_optimizer", "build_scheduler", "scaled_lr", "warmup_cosine_factor",
    "find_resumable", "read_training_checkpoint", "resolve_resume", "OnlinePredictor",
    "finetune", "finetune_pareto", "FinetuneSettings", "FinetuneResult", "load_init", "TransferReport",
]
