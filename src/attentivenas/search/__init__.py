"""Stage 2: NSGA-II search of a trained supernet for the accuracy / cost Pareto front under budgets.

Lives here: ``problem`` (cost columns, the archive, budgets as pymoo constraints), ``measured``
(measured accuracy with a cache), ``nsga2`` (:func:`run_search`), ``results`` (Pareto entries, budget
winners, re-measurement, the INT8 pass of ``precision: int8``), ``noise`` (Wilson intervals on the
front, a pick within noise of a cheaper subnet), ``pareto`` (non-dominance, hypervolume), ``files`` (pareto.json / csv / png,
summary, metrics, config), ``stage2`` (:func:`run_stage2`: the stage-2 sequence, predictor fit to files),
``runner`` (:func:`search_from_config`: everything from a config's paths, over ranks) and ``command`` (what
``attentivenas search`` reads and prints).

May import: ``attentivenas.space``, ``costs``, ``nn``, ``runtimes``, ``latency``, ``accuracy``, ``export``, ``config``, ``rng``,
``devices``, ``host_memory``, ``distributed``, ``io``, ``progress``, ``errors``.
"""

from ..config import ACCURACY_SOURCES, OBJECTIVES, BudgetsConfig, SearchConfig, check_objectives, parse_budget_points
from .files import (
    ARCH_COLUMNS,
    ENTRY_KEYS,
    PUBLISHED_MODELS,
    csv_columns,
    pareto_csv_text,
    plot_pareto,
    published_points,
    read_pareto_json,
    write_pareto_csv,
    write_pareto_json,
    write_search_outputs,
)
from .measured import MeasuredAccuracy
from .nsga2 import resolve_source, run_search, search_measured, search_with_predictor
from .pareto import front_hypervolume, hypervolume, normalise, normalised_objectives, pareto_mask, pareto_ranks
from .problem import UNITS, Archive, CostEvaluator, check_feasible, feasible
from .results import SearchResult
from .runner import search_from_config
from .stage2 import default_source, fit_with_settings, report, run_stage2

__all__ = [
    "ACCURACY_SOURCES", "OBJECTIVES", "BudgetsConfig", "SearchConfig", "check_objectives", "parse_budget_points",
    "ARCH_COLUMNS", "ENTRY_KEYS", "PUBLISHED_MODELS", "csv_columns", "pareto_csv_text", "plot_pareto",
    "published_points", "read_pareto_json", "write_pareto_csv", "write_pareto_json", "write_search_outputs",
    "MeasuredAccuracy", "resolve_source", "run_search", "search_measured", "search_with_predictor", "hypervolume",
    "front_hypervolume", "normalise", "normalised_objectives", "pareto_mask", "pareto_ranks", "UNITS", "Archive",
    "CostEvaluator", "check_feasible", "feasible", "SearchResult", "default_source", "search_from_config",
    "fit_with_settings", "report", "run_stage2",
]
