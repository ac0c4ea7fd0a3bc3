"""The result of ``attentivenas finetune`` and the supernet recipe a fine-tune scales its optimiser from
(:func:`recipe_of`) and initialises a subnet trained from scratch as (:func:`fresh_supernet`); its settings are
:class:`attentivenas.config.FinetuneSettings` (re-exported here)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import OptimConfig
from ..config.finetune import DEFAULT_EPOCHS, DISTILL, INITS, RESUME_FREE, FinetuneSettings
from ..nn import Supernet

__all__ = ["DEFAULT_EPOCHS", "DISTILL", "INITS", "RESUME_FREE", "FinetuneSettings", "FinetuneResult", "recipe_of",
           "fresh_supernet",
           "AUTHORS_RECIPE", "AUTHORS_BATCH", "AUTO_KD_MARGIN", "DEFAULT_LR_FACTOR", "RESULT"]

DEFAULT_LR_FACTOR = 0.5  #: the fine-tuning LR as a fraction of the supernet recipe's
#: the authors' recipe (configs/attentivenas_imagenet.yaml) for checkpoints without a config of ours
AUTHORS_RECIPE = OptimConfig(lr=0.1, lr_scaling="authors", schedule="authors", warmup_start_factor=0.001)
AUTHORS_BATCH = 32  #: the authors' images per GPU
RESULT = "result.json"
#: ``distill="auto"``: KD when the teacher's hold-out top-1 is at least this many points above the subnet's.
#: The one measured case (docs/results.md: hold-out margins of 0-1.3 points) found the labels better; the
#: threshold is a choice above that range, not a measured crossover
AUTO_KD_MARGIN = 2.0


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


def fresh_supernet(supernet: Supernet, meta: dict[str, Any]) -> Supernet:
    """A supernet of ``supernet``'s space and classes initialised as the checkpoint's training config
    says (``model.init``, ``model.zero_init_residual``; PyTorch's default for the authors'), from the
    global RNG (the caller seeds it): the weights a subnet trained alone from scratch starts from."""
    cfg = meta.get("config") if isinstance(meta.get("config"), dict) else {}
    model = (cfg or {}).get("model") or {}
    init = model.get("init", "pytorch") if model.get("init") in ("pytorch", "kaiming_fan_out") else "pytorch"
    return Supernet(supernet.space, supernet.num_classes, init=init,
                    zero_init_residual=bool(model.get("zero_init_residual", True)))
