"""``attentivenas predictor build|fit|eval``: (arch, accuracy) data, fitted predictors, their metrics. Thin: parse,
call :mod:`attentivenas.accuracy`, print; ``build`` reads :class:`~attentivenas.config.PredictorBuildSettings`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from ..config import DEFAULT_FOLDS, DEFAULT_PREDICTOR_KINDS, MeasureSettings, PredictorBuildSettings
from ..io import check_output, json_safe
from ..space import get_space
from . import common

#: the help of ``predictor build``'s measurement flags (:class:`~attentivenas.config.MeasureSettings` keys)
BUILD_HELP = {"split": common.SPLIT_HELP, "pipeline": common.PIPELINE_HELP, "interpolation": common.INTERPOLATION_HELP,
              "calib_batches": common.CALIB_BATCHES_HELP, "calib_batch_size": common.CALIB_BATCH_SIZE_HELP,
              "calib_seed": common.calib_seed_help("--seed"), "data": f"{common.DATA_CHOICES} (default: the checkpoint's "
              "training data).", "max_images": "Measure each subnet on the first N images of the split only."}
predictor_app = typer.Typer(help="Accuracy predictors: build (arch, accuracy) data, fit, evaluate.", no_args_is_help=True)


def _opt(name: str, default: Any = None) -> Any:
    """The flag of ``predictor build``'s setting ``name`` (a :class:`MeasureSettings` key or one of its own)."""
    field = MeasureSettings.model_fields.get(name) or PredictorBuildSettings.model_fields[name]
    return typer.Option(default, "--" + name.replace("_", "-"), help=BUILD_HELP.get(name, field.description),
                        show_default=False if default is not None or field.default is None else str(field.default))


@predictor_app.command("build")
def predictor_build(
    ctx: typer.Context, checkpoint: Path = _opt("checkpoint", ...), out: Path = _opt("out", ...),
    num_archs: int | None = _opt("num_archs"), space: str | None = _opt("space"), data: str | None = _opt("data"),
    split: str | None = _opt("split"), pipeline: str | None = _opt("pipeline"), spread: str | None = _opt("spread"),
    interpolation: str | None = _opt("interpolation"), calib_batches: int | None = _opt("calib_batches"),
    calib_batch_size: int | None = _opt("calib_batch_size"), calib_seed: int | None = _opt("calib_seed"),
    max_images: int | None = _opt("max_images"), device: str | None = _opt("device"), seed: int | None = _opt("seed"),
    fresh: bool = typer.Option(False, "--fresh", help=PredictorBuildSettings.model_fields["fresh"].description),
    ranks: int | None = typer.Option(None, "--ranks", min=1, help="Processes measuring subnets (default: as launched "
                                     "by torchrun, else 1; N starts N local processes)."),
    threads: int | None = typer.Option(None, "--threads", min=1, help="Torch threads per process."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Measure (arch, top-1) pairs of BN-recalibrated subnets on the validation split (shared over the
    ranks under torchrun or with --ranks; a killed build run again measures nothing twice)."""
    from ..accuracy import build_from_checkpoint  # heavy (torch): loaded when the command runs

    check_output(out)
    settings = PredictorBuildSettings.from_flags(**{k: v for k, v in ctx.params.items()
                                                    if k not in ("ranks", "threads", "as_json")})
    summary = build_from_checkpoint(settings, ranks=ranks, threads=threads, progress=not as_json,
                                    warn=common.warn_line, log=None if as_json else lambda m: typer.echo(m, err=True))
    if summary is not None:  # rank 0
        common.show(summary, [f"wrote {out}: {summary['archs']} archs, top-1 {summary['top1_min']:.2f}-"
                              f"{summary['top1_max']:.2f} %"], as_json)


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
    kinds_t = check_kinds(common.split_list(kinds))
    ds = ArchDataset.load(dataset, get_space(space) if space else None)
    pred, report = fit_best(ds, kinds_t, folds=folds, seed=seed, feature_set=features, progress=not as_json)
    pred.save(out)
    report = json_safe({**report, "predictor": str(out)})
    if as_json:
        common.print_json(report)
    else:
        _print_cv_table(report, out)


def _print_cv_table(report: dict[str, Any], out: Path) -> None:
    """The cross-validation table and the kind kept."""
    table = Table(title=f"{report['folds']}-fold CV on {report['n']} archs ({report['feature_set']} features)")
    for col in ("kind", "Kendall tau", "Spearman rho", "RMSE", "fit s", "predict ms / 50"):
        table.add_column(col, justify="right")
    for kind, r in report["kinds"].items():
        table.add_row(kind, _pm(r, "kendall_tau"), _pm(r, "spearman_rho"), _pm(r, "rmse"),
                      _num(r.get("fit_seconds"), 2), _num(r.get("predict_ms_50"), 3))
    Console().print(table)
    Console().print(f"best: [bold]{report['best']}[/bold]; saved {out}")


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
    from ..accuracy import ArchDataset, evaluate_predictor, load_predictor  # heavy (torch)

    pred = load_predictor(predictor)
    ds = ArchDataset.load(dataset, get_space(space) if space else pred.space)
    metrics = json_safe({"kind": pred.kind, **evaluate_predictor(pred, ds)})
    if as_json:
        common.print_json(metrics)
        return
    Console().print(f"{pred.kind} on {metrics['n']} archs: Kendall tau {_num(metrics['kendall_tau'], 3)}, "
                    f"Spearman rho {_num(metrics['spearman_rho'], 3)}, RMSE {_num(metrics['rmse'], 3)}")


def register(app: typer.Typer) -> None:
    """Add the ``predictor`` group to ``app``."""
    app.add_typer(predictor_app, name="predictor")
