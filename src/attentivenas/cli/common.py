"""Shared helpers and option texts of the command line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from ..config import DEFAULT_CALIB_BATCH_SIZE, DEFAULT_CALIB_BATCHES
from ..errors import UserError
from ..io import dumps_json

SPACE_HELP = "Search space: a preset (attentivenas, alphanet, tiny) or a YAML file with a supernet_config block."
ARCH_HELP = ("Model name (a0..a6, alphanet-a5, alphanet-a5-base, min, max), arch JSON file, a subnet of a search's "
             "pareto.json (PARETO.json:best, the most accurate, or PARETO.json:N), or inline JSON.")
DATA_CHOICES = "digits, fashion_mnist[:PATH], cifar10:PATH, cifar100:PATH or an ImageFolder root PATH"
DATA_HELP = (f"{DATA_CHOICES} (train/ and val/). "
             "Default: the data of the checkpoint's training config.")

SPLIT_HELP = ("holdout (the part of the training data held out for search), test (the data set's test split; val = "
              "test: an ImageFolder's val/), or val-search / val-report (seeded disjoint halves of it: search on one, "
              "report on the other). Default: test for a checkpoint that held nothing out (the authors'), else "
              "holdout.")
PIPELINE_HELP = ("authors (default: images resized to data.eval_resize and centre-cropped to data.image_size as "
                 "the checkpoint's training config says, e.g. Resize 256 / CenterCrop 224 for ImageNet, the whole "
                 "image for small images, then resized in the network to each subnet's resolution) or per-resolution (evaluation images prepared at the subnet's resolution r: "
                 "Resize r/0.875, CenterCrop r).")
INTERPOLATION_HELP = ("bilinear or bicubic, for the resize and the calibration crops. Default: the checkpoint's "
                      "evaluation (AttentiveNAS's and ours: bilinear; AlphaNet's: bicubic).")
CALIB_SEED_HELP = ("Seed of the BN-calibration batches (which training crops, their augmentation). Default: the "
                   "checkpoint's evaluation seed (AttentiveNAS: 2, AlphaNet: 5; ours: {ours}). Our batches drawn with "
                   "a seed are not the images the authors' loader draws with it.")
CALIB_BATCHES_HELP = f"Training batches for BN recalibration (published: {DEFAULT_CALIB_BATCHES})."
CALIB_BATCH_SIZE_HELP = f"Training crops per calibration batch (published: {DEFAULT_CALIB_BATCH_SIZE})."


def calib_seed_help(ours: str) -> str:
    """:data:`CALIB_SEED_HELP` with what our checkpoints default to in that command."""
    return CALIB_SEED_HELP.format(ours=ours)


def warn_line(message: str) -> None:
    """A warning as one line on stderr."""
    typer.echo(f"warning: {message}", err=True)


def print_json(obj: Any) -> None:
    """Print one (strict) JSON object on stdout and nothing else."""
    sys.stdout.write(dumps_json(obj) + "\n")
    sys.stdout.flush()


def show(info: dict[str, Any], lines: list[str], as_json: bool) -> None:
    """A command's result: its JSON object (``--json``), else its lines."""
    if as_json:
        print_json(info)
        return
    for line in lines:
        typer.echo(line)


def split_list(text: str) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``."""
    return [t.strip() for t in text.split(",") if t.strip()]


def load_export_source(checkpoint: Path, space: str | None, arch: str | None,
                       pareto: Path | None) -> tuple[Any, dict[str, Any], str | None]:
    """The model ``export`` reads: a supernet, or a fine-tuned subnet (``finetune``), whose ``--arch``
    is then optional (its own) and which refuses ``--pareto``; with a supernet one of ``--arch`` and
    ``--pareto`` is required. Returns the model, its metadata and the arch."""
    from ..nn import load_checkpoint_model  # heavy (torch): loaded when the command runs

    net, meta = load_checkpoint_model(checkpoint, space)
    if meta.get("subnet"):
        if pareto is not None:
            raise UserError(f"checkpoint {checkpoint} is a fine-tuned subnet: --pareto needs a supernet")
        arch = arch if arch is not None else net.arch.to_json()
    elif arch is None and pareto is None:
        raise UserError("give exactly one of --arch ARCH or --pareto PARETO.json")
    return net, meta, arch
