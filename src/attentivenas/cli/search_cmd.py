"""``attentivenas predictor fit|eval`` and ``attentivenas search``.

Thin: parse, call :mod:`attentivenas.predictor` / :mod:`attentivenas.search`, print.
Register with ``register(app)``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import typer

from ..errors import ConfigError
from ..predictor import (
    DEFAULT_KINDS,
    ArchDataset,
    Predictor,
    _clean,
    check_kinds,
    evaluate_predictor,
    fit_best,
    load_predictor,
)
from ..search import ACCURACY_SOURCES, Budgets, SearchResult, check_objectives, parse_budget_points, run_search
from ..space import Arch, SearchSpace, get_space
from .common import print_json

MAX_ROWS = 30
predictor_app = typer.Typer(help="Accuracy predictors: build (arch, accuracy) data, fit, evaluate.", no_args_is_help=True)


def _split(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _console() -> Any:
    from rich.console import Console

    return Console()


# =========================================================================== predictor
@predictor_app.command("build")
def predictor_build(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="Trained supernet checkpoint."),
    out: Path = typer.Option(..., "--out", help="Dataset JSONL (archs already in it are not measured again)."),
    num_archs: int = typer.Option(100, "--num-archs", min=1, help="Archs to measure, spread over the FLOPs range."),
    space: str | None = typer.Option(None, "--space", help="Space name or YAML (default: the checkpoint's)."),
    data: str | None = typer.Option(None, "--data", help="digits, cifar10:PATH, cifar100:PATH or an ImageFolder PATH "
                                    "(default: the checkpoint's training data)."),
    calib_batches: int = typer.Option(64, "--calib-batches", min=1, help="BN calibration batches per subnet."),
    spread: str = typer.Option("flops", "--spread", help="flops (stratified over the FLOPs range) or uniform."),
    device: str | None = typer.Option(None, "--device", help="cpu, cuda or cuda:N (default: cuda if present)."),
    seed: int = typer.Option(0, "--seed"),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Measure (arch, top-1) pairs of BN-recalibrated subnets on the validation split."""
    from ..predictor import build_arch_dataset

    evaluate_fn, num_classes, the_space = measured_evaluate_fn(
        checkpoint, get_space(space) if space else None, data, calib_batches, device, seed)
    ds = build_arch_dataset(the_space, evaluate_fn, num_archs, seed=seed, cache_path=out, spread=spread,
                            num_classes=num_classes, progress=not as_json)
    acc = ds.accuracies()
    summary = {"dataset": str(out), "archs": len(acc), "top1_min": float(acc.min()), "top1_max": float(acc.max())}
    if as_json:
        print_json(summary)
    else:
        typer.echo(f"wrote {out}: {len(acc)} archs, top-1 {acc.min():.2f}-{acc.max():.2f} %")


@predictor_app.command("fit")
def predictor_fit(
    dataset: Path = typer.Option(..., "--dataset", help="Arch dataset, JSON lines (arch, accuracy)."),
    out: Path = typer.Option(..., "--out", help="Where to write the predictor JSON."),
    kinds: str = typer.Option(",".join(DEFAULT_KINDS), "--kinds", help="Comma list of rf, lgbm, ridge, gp."),
    folds: int = typer.Option(5, "--folds", help="Cross-validation folds."),
    seed: int = typer.Option(0, "--seed"),
    space: str | None = typer.Option(None, "--space", help="Space name or YAML (default: the dataset's)."),
    features: str = typer.Option("knobs", "--features", help="knobs or knobs+cost (adds log MFLOPs, params)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Cross-validate predictor kinds, refit the best (by Kendall tau) on all data and save it."""
    kinds_t = check_kinds(_split(kinds))
    ds = ArchDataset.load(dataset, get_space(space) if space else None)
    pred, report = fit_best(ds, kinds_t, folds=folds, seed=seed, feature_set=features, progress=not as_json)
    pred.save(out)
    report = _clean({**report, "predictor": str(out)})
    if as_json:
        print_json(report)
        return
    _print_cv_table(report)
    _console().print(f"best: [bold]{report['best']}[/bold]; saved {out}")


def _print_cv_table(report: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=f"{report['folds']}-fold CV on {report['n']} archs ({report['feature_set']} features)")
    for col in ("kind", "Kendall tau", "Spearman rho", "RMSE", "fit s", "predict ms / 50"):
        table.add_column(col, justify="right")
    for kind, r in report["kinds"].items():
        table.add_row(kind, _pm(r, "kendall_tau"), _pm(r, "spearman_rho"), _pm(r, "rmse"),
                      _num(r.get("fit_seconds"), 2), _num(r.get("predict_ms_50"), 3))
    _console().print(table)


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
    pred = load_predictor(predictor)
    ds = ArchDataset.load(dataset, get_space(space) if space else pred.space)
    metrics = _clean({"kind": pred.kind, **evaluate_predictor(pred, ds)})
    if as_json:
        print_json(metrics)
        return
    _console().print(
        f"{pred.kind} on {metrics['n']} archs: Kendall tau {_num(metrics['kendall_tau'], 3)}, "
        f"Spearman rho {_num(metrics['spearman_rho'], 3)}, RMSE {_num(metrics['rmse'], 3)}"
    )


# =========================================================================== hooks the lead wires
def measured_evaluate_fn(checkpoint: Path, space: SearchSpace | None, data: str | None = None,
                         calib_batches: int = 64, device: str | None = None,
                         seed: int = 0) -> tuple[Callable[[Arch], float], int, SearchSpace]:
    """``evaluate_fn(arch) -> top-1 (%)`` of a supernet checkpoint (BN recalibrated on cached training
    batches, validation split), its number of classes and its space."""
    from ..evaluate import SubnetEvaluator
    from ..latency import resolve_device

    ev = SubnetEvaluator.from_checkpoint(checkpoint, space, data, calib_batches=calib_batches,
                                         device=resolve_device(device), seed=seed)
    return ev, ev.supernet.num_classes, ev.supernet.space


def latency_fn_from_table(path: Path, space: SearchSpace, num_classes: int) -> Callable[[np.ndarray], np.ndarray]:
    """``genes -> latency ms`` from a table of ``attentivenas latency build-table`` (checks the space)."""
    from ..latency import LatencyTable

    return LatencyTable.load(path).gene_fn(space)


def memory_fn_for(space: SearchSpace, num_classes: int) -> Callable[[np.ndarray], np.ndarray]:
    """``genes -> memory MB``: weights plus peak activations at batch 1, float32."""
    from ..memory import MemoryModel

    return MemoryModel(space, num_classes).memory_mb


# =========================================================================== search
def _default_source(predictor: Path | None, checkpoint: Path | None) -> str:
    if predictor is not None and checkpoint is not None:
        return "predicted+remeasure"
    if checkpoint is not None:
        return "measured"
    if predictor is not None:
        return "predicted"
    raise ConfigError("search needs --predictor PRED.json (predicted accuracy) and/or --checkpoint CKPT (measured)")


def search_command(
    predictor: Path | None = typer.Option(None, "--predictor", help="Accuracy predictor JSON."),
    checkpoint: Path | None = typer.Option(None, "--checkpoint", help="Supernet checkpoint (measured accuracy)."),
    space: str | None = typer.Option(None, "--space", help="Space name or YAML (default: the checkpoint's or the "
                                     "predictor's)."),
    data: str | None = typer.Option(None, "--data", help="Data for measured accuracy: digits, cifar10:PATH, "
                                    "cifar100:PATH or an ImageFolder PATH (default: the checkpoint's training data)."),
    calib_batches: int = typer.Option(64, "--calib-batches", min=1, help="BN calibration batches (measured)."),
    device: str | None = typer.Option(None, "--device", help="cpu, cuda or cuda:N (default: cuda if present)."),
    out: Path = typer.Option(Path("runs/search"), "--out", help="Output folder."),
    objectives: str = typer.Option("mflops", "--objectives", help="Comma list of mflops, params, latency, memory."),
    accuracy: str | None = typer.Option(None, "--accuracy", help="predicted, measured or predicted+remeasure."),
    remeasure_top: int = typer.Option(10, "--remeasure-top", help="Candidates re-measured (predicted+remeasure)."),
    max_mflops: float | None = typer.Option(None, "--max-mflops"),
    max_params_m: float | None = typer.Option(None, "--max-params-m"),
    max_latency_ms: float | None = typer.Option(None, "--max-latency-ms"),
    max_memory_mb: float | None = typer.Option(None, "--max-memory-mb"),
    budgets: str | None = typer.Option(None, "--budgets", help="Comma list of budgets: best arch under each."),
    budget_metric: str = typer.Option("mflops", "--budget-metric", help="Metric of --budgets."),
    latency_table: Path | None = typer.Option(None, "--latency-table", help="Latency table (latency objective)."),
    pop_size: int = typer.Option(50, "--pop-size"),
    generations: int = typer.Option(30, "--generations"),
    seed: int = typer.Option(0, "--seed"),
    published: bool = typer.Option(False, "--published/--no-published", help="Plot the authors' A0-A6 (ImageNet)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (the summary)."),
) -> None:
    """Stage 2: NSGA-II search for the accuracy / cost Pareto front under budgets."""
    objs = check_objectives(_split(objectives))
    source = accuracy or _default_source(predictor, checkpoint)
    if source not in ACCURACY_SOURCES:
        raise ConfigError(f"unknown accuracy source {source!r}; allowed: {list(ACCURACY_SOURCES)}")
    pred = load_predictor(predictor) if predictor is not None else None
    the_space = get_space(space) if space else (pred.space if pred is not None else get_space(None))
    num_classes = pred.num_classes if pred is not None else 1000
    evaluate_fn = None
    if source != "predicted":
        if checkpoint is None:
            raise ConfigError(f"accuracy source '{source}' needs --checkpoint CKPT")
        evaluate_fn, num_classes, the_space = measured_evaluate_fn(
            checkpoint, get_space(space) if space else None, data, calib_batches, device, seed)
    if source != "measured" and pred is None:
        raise ConfigError(f"accuracy source '{source}' needs --predictor PRED.json")
    if pred is not None:
        from ..predictor import check_space

        check_space(pred, the_space)
    wants = set(objs) | {budget_metric}
    latency_fn = None
    if "latency" in wants or max_latency_ms is not None or latency_table is not None:
        if latency_table is None:
            raise ConfigError("latency objectives and budgets need --latency-table FILE")
        latency_fn = latency_fn_from_table(latency_table, the_space, num_classes)
    memory_fn = memory_fn_for(the_space, num_classes) if ("memory" in wants or max_memory_mb is not None) else None
    result = run_search(
        the_space, _accuracy_fn(pred), objectives=objs,
        budgets=Budgets(max_mflops, max_params_m, max_latency_ms, max_memory_mb),
        budget_points=parse_budget_points(budgets), budget_metric=budget_metric, accuracy_source=source,
        evaluate_fn=evaluate_fn, measured_cache=out / "measured.jsonl" if evaluate_fn else None,
        remeasure_top=remeasure_top, latency_fn=latency_fn, memory_fn=memory_fn, num_classes=num_classes,
        pop_size=pop_size, generations=generations, seed=seed, progress=not as_json, out_dir=out,
        show_published=published,
    )
    _report(result, out, as_json)


def _accuracy_fn(pred: Predictor | None) -> Callable[[np.ndarray], np.ndarray] | None:
    return pred.predict_genes if pred is not None else None


def _report(result: SearchResult, out: Path, as_json: bool) -> None:
    if as_json:
        from ..search import _json_safe

        print_json(_json_safe({**result.summary(), "out": str(out)}))
        return
    from rich.table import Table

    table = Table(title=f"Pareto front: {len(result.pareto)} archs, hypervolume {result.hypervolume:.4f}")
    for col in ("MFLOPs", "params (M)", "latency (ms)", "top-1 (%)", "source"):
        table.add_column(col, justify="right")
    shown = result.pareto if len(result.pareto) <= MAX_ROWS else result.pareto[:: -(-len(result.pareto) // MAX_ROWS)]
    for e in shown:
        lat = "-" if e.get("latency_ms") is None else f"{e['latency_ms']:.2f}"
        table.add_row(f"{e['mflops']:.2f}", f"{e['params_m']:.2f}", lat, f"{e['accuracy']:.2f}", e["accuracy_source"])
    console = _console()
    console.print(table)
    if len(shown) < len(result.pareto):
        console.print(f"(showing {len(shown)} of {len(result.pareto)} archs, evenly spaced; all are in pareto.csv)")
    for w in result.budget_winners:
        if w.get("arch") is None:
            console.print(f"{w['metric']} <= {w['budget']:g}: no arch found")
        else:
            console.print(f"{w['metric']} <= {w['budget']:g}: {w['accuracy']:.2f}% at {w['mflops']:.2f} MFLOPs")
    console.print(f"wrote {out}/pareto.json, pareto.csv, pareto.png, summary.json")


def register(app: typer.Typer) -> None:
    """Add ``predictor fit|eval`` and ``search`` to the ``attentivenas`` app."""
    app.add_typer(predictor_app, name="predictor")
    app.command("search")(search_command)
