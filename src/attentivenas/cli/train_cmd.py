"""The ``train`` command: stage 1 (supernet training), thin over :func:`attentivenas.train.train`."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from ..config import load_config
from ..io import check_output

CONFIG_HELP = "YAML config (e.g. configs/quickstart.yaml, configs/attentivenas_imagenet.yaml)."
OVERRIDES_HELP = ("Config overrides as dotted key=value pairs, e.g. optim.lr=0.05 sampler.k=5; init_from=CKPT starts "
                  "from a trained supernet (ours or the authors'), see configs/transfer.yaml.")
RESUME_HELP = ("'auto': continue from the newest valid checkpoint in --out (fresh if none); a checkpoint path "
               "(a rewind into --out sets the later checkpoints aside); 'fresh': start over (likewise). A resume "
               "continues the same run: overrides that change what it computes (seed, space, data, model, loss, "
               "sampler, eval, optim.epochs, ...) are refused in one line naming the keys; log, checkpoint, threads "
               "and workers may change, and optim.lr / momentum / weight_decay and runtime.amp as a recorded change "
               "of course (docs/training.md).")
OUT_HELP = "Output folder (default: runs/train-<space>-<data>-<time>)."


def train_command(
    config: Path = typer.Option(..., "--config", "-c", help=CONFIG_HELP),
    overrides: list[str] | None = typer.Argument(None, help=OVERRIDES_HELP, show_default=False),
    resume: str | None = typer.Option(None, "--resume", help=RESUME_HELP),
    out: Path | None = typer.Option(None, "--out", "-o", help=OUT_HELP),
) -> None:
    """Train a supernet (sandwich rule, attentive sampling). Works under torchrun for DDP."""
    from ..train import train  # heavy (torch): loaded when the command runs

    if out is not None:
        check_output(out, "dir")
    cfg = load_config(config, overrides or [])
    result = train(cfg, out, resume=resume)
    if result.model is not None and _is_main():
        ev = result.final_eval
        split = "hold-out" if cfg.eval.split == "holdout" else "test"
        acc = (f"; {split} top-1 min {ev['min_top1']:.2f}% / max {ev['max_top1']:.2f}%"
               if "min_top1" in ev and "max_top1" in ev else "")
        print(f"{result.status}: {result.global_step} steps in {result.wall_s:.1f}s{acc}", file=sys.stderr)
        print(f"checkpoint: {result.checkpoint}")
        print(f"metrics:    {result.metrics}")
        print(f"config:     {result.out_dir / 'config.yaml'}")
        print(f"tensorboard: tensorboard --logdir {result.out_dir / 'tb'}")
    if result.status == "interrupted":
        if _is_main():
            print(f"interrupted: resume with --resume auto --out {result.out_dir}", file=sys.stderr)
        raise typer.Exit(130)


def _is_main() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def register(app: typer.Typer) -> None:
    """Add the ``train`` command to ``app``."""
    app.command("train")(train_command)
