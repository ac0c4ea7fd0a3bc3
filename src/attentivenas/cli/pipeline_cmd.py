"""``attentivenas quickstart``: the whole pipeline on the embedded digits (or any training config)."""

from __future__ import annotations

from pathlib import Path

import typer

from ..config import PipelineConfig, parse_model
from ..io import check_output

#: the quick start's stage-2 defaults (the options' defaults)
DEFAULTS = PipelineConfig()


def quickstart_command(
    out: Path = typer.Option(Path("runs/quickstart"), "--out", "-o", help="Output folder (resumed if it holds a run)."),
    config: Path | None = typer.Option(None, "--config", "-c",
                                       help="Training config (default: the packaged quickstart config)."),
    overrides: list[str] | None = typer.Argument(None, help="Config overrides, e.g. optim.epochs=1.",
                                                 show_default=False),
    num_archs: int = typer.Option(DEFAULTS.predictor.num_archs, "--num-archs",
                                  help="Subnets measured to fit the accuracy predictor."),
    pop_size: int = typer.Option(DEFAULTS.search.evolution.pop_size, "--pop-size", help="NSGA-II population."),
    generations: int = typer.Option(DEFAULTS.search.evolution.generations, "--generations",
                                    help="NSGA-II generations."),
    remeasure_top: int = typer.Option(DEFAULTS.search.accuracy.remeasure_top, "--remeasure-top",
                                      help="Predicted-best archs re-measured."),
    folds: int = typer.Option(DEFAULTS.predictor.folds, "--folds", help="Predictor cross-validation folds."),
    seed: int = typer.Option(DEFAULTS.seed, "--seed", help="Seed of the stage-2 choices (training uses the config's)."),
) -> None:
    """Train the tiny supernet, fit a predictor, search the Pareto front and export its models."""
    from ..pipeline import (  # heavy (torch): loaded when the command runs
        format_summary,
        load_quickstart_config,
        run_pipeline,
    )

    check_output(out, "dir")
    cfg = load_quickstart_config(config, overrides or [])
    settings = parse_model(PipelineConfig, {
        "seed": seed,
        "predictor": {"num_archs": num_archs, "folds": folds},
        "search": DEFAULTS.search.model_dump(mode="json") | {
            "seed": seed,
            "evolution": {"pop_size": pop_size, "generations": generations},
            "accuracy": {"source": "predicted+remeasure", "remeasure_top": remeasure_top},
        },
    }, "quickstart options")
    result = run_pipeline(cfg, out, settings, log=typer.echo)
    typer.echo("")
    typer.echo(format_summary(result))


def register(app: typer.Typer) -> None:
    """Add ``quickstart`` to ``app``."""
    app.command("quickstart")(quickstart_command)
