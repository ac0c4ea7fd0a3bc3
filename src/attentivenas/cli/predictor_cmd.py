"""``attentivenas predictor build|fit|eval``: (arch, accuracy) data, fitted predictors, their metrics.

Thin: parse, call :mod:`attentivenas.accuracy`, print.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from ..config import (
    DEFAULT_CALIB_BATCH_SIZE,
    DEFAULT_CALIB_BATCHES,
    DEFAULT_FOLDS,
    DEFAULT_PIPELINE,
    DEFAULT_PREDICTOR_KINDS,
)
from ..io import check_output, json_safe
from ..space import get_space
from .common import (
    CALIB_BATCH_SIZE_HELP,
    CALIB_BATCHES_HELP,
    DATA_CHOICES,
    INTERPOLATION_HELP,
    PIPELINE_HELP,
    SPLIT_HELP,
    calib_seed_help,
    print_json,
    split_list,
    warn_line,
)

predictor_app = typer.Typer(help="Accuracy predictors: build (arch, accuracy) data, fit, evaluate.", no_args_is_help=True)


@predictor_app.command("build")
def predictor_build(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="Trained supernet checkpoint."),
    out: Path = typer.Option(..., "--out", help="Dataset JSONL (archs already in it are not measured again)."),
    num_archs: int = typer.Option(100, "--num-archs", min=1, help="Archs to measure, spread over the FLOPs range."),
    space: str | None = typer.Option(None, "--space", help="Space name or YAML (default: the checkpoint's)."),
    data: str | None = typer.Option(None, "--data", help=f"{DATA_CHOICES} "
                                    "(default: the checkpoint's training data)."),
    split: str | None = typer.Option(None, "--split", help=SPLIT_HELP, show_default=False),
    pipeline: str = typer.Option(DEFAULT_PIPELINE, "--pipeline", help=PIPELINE_HELP),
    interpolation: str | None = typer.Option(None, "--interpolation", help=INTERPOLATION_HELP, show_default=False),
    calib_batches: int = typer.Option(DEFAULT_CALIB_BATCHES, "--calib-batches", min=1, help=CALIB_BATCHES_HELP),
    calib_batch_size: int = typer.Option(DEFAULT_CALIB_BATCH_SIZE, "--calib-batch-size", min=1,
                                         help=CALIB_BATCH_SIZE_HELP),
    calib_seed: int | None = typer.Option(None, "--calib-seed", show_default=False,
                                          help=calib_seed_help("--seed")),
    max_images: int | None = typer.Option(None, "--max-images", min=1, help="Measure each subnet on the first N "
                                          "images of the split only."),
    spread: str = typer.Option("flops", "--spread", help="flops (stratified over the FLOPs range) or uniform."),
    device: str | None = typer.Option(None, "--device", help="cpu, cuda or cuda:N (default: cuda if present)."),
    ranks: int | None = typer.Option(None, "--ranks", min=1, help="Processes measuring subnets (default: as launched "
                                     "by torchrun, else 1; N starts N local processes)."),
    threads: int | None = typer.Option(None, "--threads", min=1, help="Torch threads per process."),
    seed: int = typer.Option(0, "--seed", help="Seed of the archs measured (and of the calibration batches of our "
                             "checkpoints, unless --calib-seed)."),
    fresh: bool = typer.Option(False, "--fresh", help="Start --out over (the old file is kept as FILE.stale-<hash>); "
                               "needed when it was measured on another checkpoint, data or settings."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Measure (arch, top-1) pairs of BN-recalibrated subnets on the validation split (shared over the
    ranks under torchrun or with --ranks; a killed build run again measures nothing twice)."""
    from ..accuracy import build_from_checkpoint  # heavy (torch): loaded when the command runs

    check_output(out)
    settings = {"checkpoint": str(checkpoint), "out": str(out), "num_archs": num_archs, "space": space, "data": data,
                "split": split, "pipeline": pipeline, "interpolation": interpolation, "calib_batches": calib_batches,
                "calib_batch_size": calib_batch_size, "max_images": max_images, "spread": spread, "device": device,
                "seed": seed, "calib_seed": calib_seed, "fresh": fresh}
    summary = build_from_checkpoint(settings, ranks=ranks, threads=threads, progress=not as_json,
                                    warn=warn_line, log=None if as_json else lambda m: typer.echo(m, err=True))
    if summary is None:  # a rank other than 0
        return
    if as_json:
        print_json(summary)
    else:
        typer.echo(f"wrote {out}: {summary['archs']} archs, top-1 {summary['top1_min']:.2f}-{summary['top1_max']:.2f} %")


@predictor_app.command("fit")
def predictor_fit(
    dataset: Path = typer.Option(..., "--dataset", help="Arch dataset, JSON lines (arch, accuracy)."),
    out: Path = typer.Option(..., "--out", help="Where to write the predictor JSON."),
    kinds: str = typer.Option(",".join(DEFAULT_PREDICTOR_KINDS), "--kinds", help="Comma list of rf, lgbm, ridge, gp."),
    folds: int = typer.Option(DEFAULT_FOLDS, "--folds", help="Cross-validation folds."),
    seed: int = typer.Option(0, "--seed"),
    space: str | None = typer.Option(None, "--space", help="Space name or YAML (default: the dataset's)."),
    features: str = typer.Option("knobs", "--features", help="knobs or knobs+cost (adds log MFLOPs, params)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Cross-validate predictor kinds, refit the best (by Kendall tau) on all data and save it."""
    from ..accuracy import ArchDataset, check_kinds, fit_best  # heavy (torch): loaded when the command runs

    check_output(out)
    kinds_t = check_kinds(split_list(kinds))
    ds = ArchDataset.load(dataset, get_space(space) if space else None)
    pred, report = fit_best(ds, kinds_t, folds=folds, seed=seed, feature_set=features, progress=not as_json)
    pred.save(out)
    report = json_safe({**report, "predictor": str(out)})
    if as_json:
        print_json(report)
        return
    _print_cv_table(report)
    Console().print(f"best: [bold]{report['best']}[/bold]; saved {out}")


def _print_cv_table(report: dict[str, Any]) -> None:
    table = Table(title=f"{report['folds']}-fold CV on {report['n']} archs ({report['feature_set']} features)")
    for col in ("kind", "Kendall tau", "Spearman rho", "RMSE", "fit s", "predict ms / 50"):
        table.add_column(col, justify="right")
    for kind, r in report["kinds"].items():
        table.add_row(kind, _pm(r, "kendall_tau"), _pm(r, "spearman_rho"), _pm(r, "rmse"),
                      _num(r.get("fit_seconds"), 2), _num(r.get("predict_ms_50"), 3))
    Console().print(table)


def _num(v: Any, digits: int) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def _pm(r: dict[str, Any], key: str) -> str:
    mean, std = r.get(key), r.get(f"{key}_std")
    return "n/a" if mean is None else f"{mean:.3f} ± {std or 0:.3f}"


@predictor_app.command("eval")
def predictor_eval(
    predictor: Path = typer.Option(..., "--predictor", help="Predictor JSON."),
    dataset: Path = typer.Option(..., "--dataset", help="Arch dataset, JSON lines (arch, accuracy)."),
    space: str | None = typer.Option(None, "--space", help="Space name or YAML (default: the predictor's)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Kendall tau, Spearman rho and RMSE of a saved predictor on a dataset."""
    from ..accuracy import (  # heavy (torch): loaded when the command runs
        ArchDataset,
        evaluate_predictor,
        load_predictor,
    )

    pred = load_predictor(predictor)
    ds = ArchDataset.load(dataset, get_space(space) if space else pred.space)
    metrics = json_safe({"kind": pred.kind, **evaluate_predictor(pred, ds)})
    if as_json:
        print_json(metrics)
        return
    Console().print(
        f"{pred.kind} on {metrics['n']} archs: Kendall tau {_num(metrics['kendall_tau'], 3)}, "
        f"Spearman rho {_num(metrics['spearman_rho'], 3)}, RMSE {_num(metrics['rmse'], 3)}"
    )


def register(app: typer.Typer) -> None:
    """Add the ``predictor`` group to ``app``."""
    app.add_typer(predictor_app, name="predictor")
