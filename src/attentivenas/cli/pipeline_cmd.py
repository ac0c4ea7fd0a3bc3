"""``attentivenas quickstart``: the whole pipeline on the embedded digits (or any training config)."""

from __future__ import annotations

from pathlib import Path

import typer

from ..config import PipelineConfig, parse_model


def quickstart_command(
    out: Path = typer.Option(Path("runs/quickstart"), "--out", "-o", help="Output folder (resumed if it holds a run)."),
    config: Path | None = typer.Option(None, "--config", "-c",
                                       help="Training config (default: the packaged quickstart config)."),
    overrides: list[str] | None = typer.Argument(None, help="Config overrides, e.g. optim.epochs=1.",
                                                 show_default=False),
    num_archs: int = typer.Option(40, "--num-archs", help="Subnets measured to fit the accuracy predictor."),
    pop_size: int = typer.Option(40, "--pop-size", help="NSGA-II population."),
    generations: int = typer.Option(25, "--generations", help="NSGA-II generations."),
    remeasure_top: int = typer.Option(12, "--remeasure-top", help="Predicted-best archs re-measured."),
    folds: int = typer.Option(5, "--folds", help="Predictor cross-validation folds."),
    seed: int = typer.Option(0, "--seed", help="Seed of the stage-2 choices (training uses the config's)."),
) -> None:
    """Train the tiny supernet, fit a predictor, search the Pareto front and export its models."""
    from ..pipeline import (  # heavy (torch): loaded when the command runs
        format_summary,
        load_quickstart_config,
        run_pipeline,
    )

    cfg = load_quickstart_config(config, overrides or [])
    defaults = PipelineConfig()
    settings = parse_model(PipelineConfig, {
        "seed": seed,
        "predictor": {"num_archs": num_archs, "folds": folds},
        "search": defaults.search.model_dump(mode="json") | {
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
