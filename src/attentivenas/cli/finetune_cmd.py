"""``attentivenas finetune``: one searched subnet (or every subnet of a Pareto set) trained alone,
thin over :func:`attentivenas.train.finetune.finetune`."""

from __future__ import annotations

from pathlib import Path

import typer

from ..config import DEFAULT_CALIB_BATCH_SIZE, DEFAULT_CALIB_BATCHES, measure_from_flags
from ..errors import UserError
from ..io import check_output
from .common import ARCH_HELP, DATA_HELP, INTERPOLATION_HELP, SPACE_HELP, calib_seed_help, print_json

#: the defaults as --help states them (train/finetune.py holds the values)
DEFAULTS_TEXT = (
    "Defaults: --distill auto, which distils from the supernet's max subnet (BN recalibrated, frozen; KD at "
    "temperature 1, NVIDIA's practice) only when that teacher's hold-out top-1 is at least 2 points above the "
    "subnet's, and otherwise learns from the labels (docs/results.md measured the labels better where the "
    "teacher led by 0-1.3 points on the hold-out); one line says which it chose and why. Half the supernet recipe's "
    "learning rate (its optim.lr with its batch scaling; the authors' recipe for their checkpoints), a cosine "
    "to zero without warm-up over a short schedule of 10 epochs, the recipe's SGD (momentum, Nesterov, "
    "weight decay, gradient clipping) and batch size; one process, fp32.")


def finetune_command(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="The supernet: our checkpoint or one released by "
                                    "the authors."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: checkpoints/last.pt (a subnet checkpoint that "
                             "evaluate and export take), metrics.jsonl, result.json; with --pareto one "
                             "subnet_<i>/ folder per subnet and index.json."),
    arch: str | None = typer.Option(None, "--arch", help=ARCH_HELP),
    pareto: Path | None = typer.Option(None, "--pareto", help="Fine-tune every subnet of a pareto.json instead."),
    data: str | None = typer.Option(None, "--data", help=DATA_HELP),
    epochs: int = typer.Option(10, "--epochs", min=1, help="Epochs of fine-tuning."),
    lr: float | None = typer.Option(None, "--lr", show_default=False,
                                    help="Peak LR per optim.lr_reference_batch images, scaled with the batch as the "
                                    "recipe does. Default: half the recipe's optim.lr."),
    batch_size: int | None = typer.Option(None, "--batch-size", min=1, show_default=False,
                                          help="Training batch size. Default: the recipe's data.batch_size (the "
                                          "authors': 32)."),
    distill: str = typer.Option("auto", "--distill", help="auto (kd when the max subnet's hold-out top-1 is at least "
                                "2 points above the subnet's, else none; labels without a hold-out), kd (from the "
                                "supernet's max subnet) or none (the labels, label-smoothed cross-entropy)."),
    temperature: float = typer.Option(1.0, "--temperature", help="KD temperature."),
    label_smoothing: float | None = typer.Option(None, "--label-smoothing", show_default=False,
                                                 help="--distill none: default the recipe's (0.1)."),
    warmup_epochs: float | None = typer.Option(None, "--warmup-epochs", show_default=False,
                                               help="Linear warm-up before the cosine. Default: none from the "
                                               "supernet; the recipe's with --init scratch."),
    init: str = typer.Option("supernet", "--init", help="supernet (start from its weights: fine-tuning) or scratch "
                             "(a fresh seeded init, the recipe's LR and warm-up: the subnet trained alone, as a "
                             "ranking probe's standalone subnets are; use with --distill none)."),
    new_head: bool = typer.Option(False, "--new-head", help="Re-initialise the classifier for the data's classes "
                                  "(seeded by --seed; it learns from the labels). Without it, data whose class "
                                  "count or class names differ from the checkpoint's classifier is refused."),
    weight_decay: float | None = typer.Option(None, "--weight-decay", show_default=False,
                                              help="Default: the recipe's."),
    seed: int = typer.Option(0, "--seed", help="Seed of the data order and augmentation."),
    steps_per_epoch: int | None = typer.Option(None, "--steps-per-epoch", min=1, show_default=False,
                                               help="Cap the steps per epoch (quick runs)."),
    checkpoint_every: int = typer.Option(100, "--checkpoint-every", min=0,
                                         help="Steps between checkpoints (and at every epoch end); 0: epoch ends."),
    resume: str | None = typer.Option(None, "--resume", help="'auto': continue from the newest valid checkpoint "
                                      "in --out (fresh if none); a checkpoint path; 'fresh': start over."),
    calib_batches: int = typer.Option(DEFAULT_CALIB_BATCHES, "--calib-batches", min=1,
                                      help="Training batches for BN recalibration (teacher, before, after)."),
    calib_batch_size: int = typer.Option(DEFAULT_CALIB_BATCH_SIZE, "--calib-batch-size", min=1,
                                         help="Training crops per calibration batch."),
    eval_batch_size: int = typer.Option(256, "--eval-batch-size", min=1, help="Evaluation batch size."),
    max_images: int | None = typer.Option(None, "--max-images", min=1, help="Evaluate the first N images of each "
                                          "split only."),
    interpolation: str | None = typer.Option(None, "--interpolation", show_default=False, help=INTERPOLATION_HELP),
    calib_seed: int | None = typer.Option(None, "--calib-seed", show_default=False, help=calib_seed_help("0")),
    space: str | None = typer.Option(None, "--space", help=SPACE_HELP + " Default: from the checkpoint."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    threads: int | None = typer.Option(None, "--threads", min=1, help="CPU threads."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as one JSON object."),
) -> None:
    """Fine-tune a searched subnet alone (KD from the max subnet or the labels, chosen from the teacher's margin
    by default); records the top-1 before and after on the hold-out and the test split in DIR/result.json. The
    data's classes must be the checkpoint classifier's (or pass --new-head); --resume continues only the same
    run (the same supernet file, arch and settings)."""
    from ..train.finetune import finetune  # heavy (torch)
    from ..train.finetune_pareto import finetune_pareto  # heavy (torch)
    from ..train.finetune_settings import FinetuneSettings  # heavy (torch)

    if (arch is None) == (pareto is None):
        raise UserError("give exactly one of --arch ARCH or --pareto PARETO.json")
    if pareto is not None and resume not in (None, "auto", "fresh"):
        raise UserError("--pareto resumes with --resume auto (or starts over with --resume fresh), not from a path")
    check_output(out, "dir")
    measure = measure_from_flags(interpolation=interpolation, calib_seed=calib_seed)
    settings = FinetuneSettings(
        epochs=epochs, lr=lr, batch_size=batch_size, distill=distill, temperature=temperature,
        label_smoothing=label_smoothing, warmup_epochs=warmup_epochs, weight_decay=weight_decay, seed=seed, init=init,
        new_head=new_head,
        steps_per_epoch=steps_per_epoch, checkpoint_every=checkpoint_every, calib_batches=calib_batches,
        calib_batch_size=calib_batch_size, eval_batch_size=eval_batch_size, max_images=max_images, device=device,
        threads=threads)
    if pareto is not None:
        results = finetune_pareto(checkpoint, pareto, out, data, settings, resume, space, measure)
        if as_json:
            print_json({"subnets": [r.result for r in results], "index": str(out / "index.json")})
            return
        for r in results:
            typer.echo(f"{r.out_dir}: {_line(r.result)}")
        typer.echo(f"index: {out / 'index.json'}")
        return
    res = finetune(checkpoint, str(arch), out, data, settings, resume, space, measure)
    if as_json:
        print_json(res.result)
        return
    typer.echo(_line(res.result))
    typer.echo(f"checkpoint: {res.checkpoint}")
    typer.echo(f"result:     {out / 'result.json'}")


finetune_command.__doc__ = f"{finetune_command.__doc__} {DEFAULTS_TEXT}"


def _line(result: dict) -> str:
    parts = []
    for split in ("holdout", "test"):
        b, a = result["before"].get(split), result["after"].get(split)
        if b is not None and a is not None:
            parts.append(f"{split} top-1 {b['top1']:.2f}% -> {a['top1']:.2f}%")
    return f"{result['mflops']:.2f} MFLOPs; " + "; ".join(parts)


def register(app: typer.Typer) -> None:
    """Add ``finetune`` to ``app``."""
    app.command("finetune")(finetune_command)
