"""``attentivenas latency fit-model``: a whole-model latency predictor fitted on a table's measured
subnets, thin over :mod:`attentivenas.latency.whole_fit`."""

from __future__ import annotations

from pathlib import Path

import typer

from ..io import check_output
from .common import show


def latency_fit_model_cmd(
    table: Path = typer.Argument(..., metavar="TABLE", help="Latency table (build-table or import) that stores measured subnets."),
    out: Path = typer.Option(..., "--out", help="Model JSON to write (search --latency-table takes it)."),
    subnets: int | None = typer.Option(None, "--subnets", min=1, help="Fit on the table's first N calibration "
                                       "subnets (default: all; at least 10)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Fit a whole-model latency predictor (for runtimes that fuse ops, where a subnet is not the sum
    of its ops) on the whole subnets a table measured, from each arch's knobs and analytic per-stage
    costs; print its held-out MAPE and Kendall tau beside the per-op table's on the same subnets."""
    check_output(out)
    from ..latency import LatencyTable  # heavy (torch): loaded when the command runs
    from ..latency.whole_fit import fit_model_from_table, fitted_report
    from ..space import SearchSpace

    tab = LatencyTable.load(table)
    space = SearchSpace.from_dict(tab.space)
    model = fit_model_from_table(tab, space, subnets, path=table)
    show(*fitted_report(model, model.save(out), space), as_json)
