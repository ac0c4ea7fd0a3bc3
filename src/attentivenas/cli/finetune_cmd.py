"""``attentivenas finetune``: one searched subnet (or every subnet of a Pareto set) trained alone, thin over
:func:`attentivenas.train.finetune.finetune`; settings: :class:`attentivenas.config.FinetuneSettings` (``--config``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from ..config.finetune import MEASURE_FLAGS, FinetuneSettings, MeasureSettings, load_finetune_settings
from ..errors import UserError
from ..io import check_output
from .common import ARCH_HELP, DATA_HELP, INTERPOLATION_HELP, SPACE_HELP, calib_seed_help, print_json

#: the defaults as --help states them (config/finetune.py holds the values)
DEFAULTS_TEXT = (
    "Defaults: --distill auto, which distils from the supernet's max subnet (BN recalibrated, frozen; KD at "
    "temperature 1, NVIDIA's practice) only when that teacher's hold-out top-1 is at least 2 points above the "
    "subnet's, and otherwise learns from the labels (docs/results.md measured the labels better where the "
    "teacher led by 0-1.3 points on the hold-out); one line says which it chose and why. Half the supernet recipe's "
    "learning rate (its optim.lr with its batch scaling; the authors' recipe for their checkpoints), a cosine "
    "to zero without warm-up over a short schedule of 10 epochs, the recipe's SGD (momentum, Nesterov, "
    "weight decay, gradient clipping) and batch size; one process, fp32.")
#: the help of the flags that set ``measure`` keys (the others': their setting's description)
MEASURE_HELP = {"calib_batches": "Training batches for BN recalibration (teacher, before, after).",
                "calib_batch_size": "Training crops per calibration batch.", "eval_batch_size": "Evaluation batch size.",
                "max_images": "Evaluate the first N images of each split only.", "interpolation": INTERPOLATION_HELP,
                "calib_seed": calib_seed_help("0")}
OUT_HELP = ("Output folder: checkpoints/last.pt (a subnet checkpoint that evaluate and export take), metrics.jsonl, "
            "result.json; with --pareto one subnet_<i>/ folder per subnet and index.json.")
RESUME_HELP = ("'auto': continue from the newest valid checkpoint in --out (fresh if none); a checkpoint path; "
               "'fresh': start over.")
CONFIG_HELP = "YAML file of fine-tuning settings (docs/training.md); key=value overrides and the flags win over it."


def _opt(name: str) -> Any:
    """The flag of setting ``name``: None when not given (the config's value, else the default)."""
    key = MEASURE_FLAGS.get(name)
    field = MeasureSettings.model_fields[key] if key else FinetuneSettings.model_fields[name]
    return typer.Option(None, "--" + name.replace("_", "-"), help=MEASURE_HELP.get(name, field.description),
                        show_default=False if field.default is None else str(field.default))


def finetune_command(
    ctx: typer.Context,
    checkpoint: Path = typer.Option(..., "--checkpoint", help="The supernet: ours or one the authors released."),
    out: Path = typer.Option(..., "--out", "-o", help=OUT_HELP),
    arch: str | None = typer.Option(None, "--arch", help=ARCH_HELP),
    pareto: Path | None = typer.Option(None, "--pareto", help="Fine-tune every subnet of a pareto.json instead."),
    data: str | None = typer.Option(None, "--data", help=DATA_HELP),
    config: Path | None = typer.Option(None, "--config", "-c", help=CONFIG_HELP),
    overrides: list[str] | None = typer.Argument(None, help="Settings as key=value, e.g. measure.calib_batches=8.",
                                                 show_default=False),
    epochs: int | None = _opt("epochs"), lr: float | None = _opt("lr"), batch_size: int | None = _opt("batch_size"),
    distill: str | None = _opt("distill"), temperature: float | None = _opt("temperature"),
    label_smoothing: float | None = _opt("label_smoothing"), warmup_epochs: float | None = _opt("warmup_epochs"),
    new_head: bool = typer.Option(False, "--new-head", help=FinetuneSettings.model_fields["new_head"].description),
    weight_decay: float | None = _opt("weight_decay"), seed: int | None = _opt("seed"), init: str | None = _opt("init"),
    steps_per_epoch: int | None = _opt("steps_per_epoch"), checkpoint_every: int | None = _opt("checkpoint_every"),
    resume: str | None = typer.Option(None, "--resume", help=RESUME_HELP),
    calib_batches: int | None = _opt("calib_batches"), calib_batch_size: int | None = _opt("calib_batch_size"),
    eval_batch_size: int | None = _opt("eval_batch_size"), max_images: int | None = _opt("max_images"),
    interpolation: str | None = _opt("interpolation"), calib_seed: int | None = _opt("calib_seed"),
    space: str | None = typer.Option(None, "--space", help=SPACE_HELP + " Default: from the checkpoint."),
    device: str | None = _opt("device"), threads: int | None = _opt("threads"),
    as_json: bool = typer.Option(False, "--json", help="Print the result as one JSON object."),
) -> None:
    """Fine-tune a searched subnet alone (KD from the max subnet or the labels, chosen from the teacher's margin
    by default); records the top-1 before and after on the hold-out and the test split in DIR/result.json. The
    data's classes must be the checkpoint classifier's (or pass --new-head); --resume continues only the same
    run (the same supernet file, arch and settings)."""
    from ..train.finetune import finetune  # heavy (torch)
    from ..train.finetune_pareto import finetune_pareto  # heavy (torch)

    if (arch is None) == (pareto is None):
        raise UserError("give exactly one of --arch ARCH or --pareto PARETO.json")
    if pareto is not None and resume not in (None, "auto", "fresh"):
        raise UserError("--pareto resumes with --resume auto (or starts over with --resume fresh), not from a path")
    check_output(out, "dir")
    settings = load_finetune_settings(config, overrides or [], ctx.params)
    if pareto is None:
        _report([finetune(checkpoint, str(arch), out, data, settings, resume, space)], out, as_json, one=True)
    else:
        _report(finetune_pareto(checkpoint, pareto, out, data, settings, resume, space), out, as_json, one=False)


finetune_command.__doc__ = f"{finetune_command.__doc__} {DEFAULTS_TEXT}"


def _report(results: list[Any], out: Path, as_json: bool, one: bool) -> None:
    """The result (one run) or the index (a Pareto set): its JSON, or its lines."""
    if as_json:
        print_json(results[0].result if one else {"subnets": [r.result for r in results],
                                                   "index": str(out / "index.json")})
    elif one:
        typer.echo(f"{_line(results[0].result)}\ncheckpoint: {results[0].checkpoint}\nresult:     {out / 'result.json'}")
    else:
        typer.echo("\n".join([f"{r.out_dir}: {_line(r.result)}" for r in results] + [f"index: {out / 'index.json'}"]))


def _line(result: dict) -> str:
    parts = [f"{k} top-1 {result['before'][k]['top1']:.2f}% -> {result['after'][k]['top1']:.2f}%"
             for k in ("holdout", "test") if result["before"].get(k) and result["after"].get(k)]
    return f"{result['mflops']:.2f} MFLOPs; " + "; ".join(parts)


def register(app: typer.Typer) -> None:
    """Add ``finetune`` to ``app``."""
    app.command("finetune")(finetune_command)
