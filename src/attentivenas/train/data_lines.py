"""What a training run says about its data before it starts: which images are which split, the
transforms that run, and one-line warnings (:func:`announce_data`), and the printed name of the split
its epoch-end checks measure (:func:`split_name`)."""

from __future__ import annotations

import sys
import warnings

from ..config import TrainConfig
from ..data import (
    HOLDOUT_NAME,
    TEST_NAME,
    DataBundle,
    data_warnings,
    pipeline_lines,
    split_lines,
)


def split_name(cfg: TrainConfig) -> str:
    """The printed name of the split epoch-end checks measure: ``hold-out`` (carved from the training
    data) or ``test``."""
    return HOLDOUT_NAME if cfg.eval.split == "holdout" else TEST_NAME


def split_sizes(data: DataBundle) -> dict[str, int]:
    """Images per split: ``train`` (trained on), ``holdout``, ``test``."""
    return {"train": len(data.train), "holdout": len(data.val), "test": len(data.test)}  # type: ignore[arg-type]


def announce_data(cfg: TrainConfig, data: DataBundle) -> None:
    """Say on stderr which images are which split and the transforms that run, and warn (one line
    each) about an evaluation that crops most of each image or a hold-out too small to rank on."""
    n = split_sizes(data)
    for line in split_lines(cfg.data, n["train"], n["holdout"], n["test"]) + pipeline_lines(cfg.data):
        print(line, file=sys.stderr, flush=True)
    for message in data_warnings(cfg.data, n["holdout"]):
        warnings.warn(message, RuntimeWarning, stacklevel=2)
