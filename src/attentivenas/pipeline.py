"""The whole two-stage pipeline in one call (``attentivenas quickstart``).

1. stage 1: train the supernet from a config (resuming the run in ``out`` if there is one);
2. measure subnets spread over the FLOPs range (BN recalibrated, hold-out split) and fit an
   accuracy predictor (cross-validated, the best kind kept);
3. search the Pareto front with NSGA-II on predicted accuracy, re-measuring the best candidates;
4. export every Pareto subnet as a standalone model (``torch.export`` ``.pt2`` by default, dynamic
   batch), and report its test-split accuracy measured on the exported file loaded back (the test
   split is only read here, after the search).

Files (the DESIGN.md contract): ``OUT/checkpoints/last.pt``, ``OUT/metrics.jsonl``,
``OUT/config.yaml``, ``OUT/pareto.json|csv|png``, ``OUT/models/`` (plus ``OUT/predictor/`` and
``OUT/search/`` with the predictor, its data and the search's own logs).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .accuracy import (
    Predictor,
    SubnetEvaluator,
    build_arch_dataset,
    checked_text,
    evaluate_subnet,
    format_metric,
    provenance_of,
    wilson_interval,
)
from .config import MeasureSettings, PipelineConfig, SearchConfig, TrainConfig, load_config
from .data import DEFAULT_VAL_FRACTION, HOLDOUT_NAME, TEST_NAME, DataBundle, build_data, digits_split
from .errors import ConfigError
from .export.pareto import export_pareto_set
from .io import OutputLock, atomic_write_bytes, atomic_write_json, remove_torn_writes
from .nn import Supernet
from .runtimes.quantize import int8_runtime
from .runtimes.records import find_format
from .search import SearchResult, fit_with_settings, run_stage2
from .train import TrainResult, train

PACKAGED_QUICKSTART = "quickstart.yaml"


def quickstart_config_path() -> Path:
    """The quick-start config shipped with the package (also at ``configs/quickstart.yaml``)."""
    return Path(str(resources.files("attentivenas") / "configs" / PACKAGED_QUICKSTART))


@dataclass
class PipelineResult:
    out_dir: Path
    checkpoint: Path
    predictor: Path
    predictor_report: dict[str, Any]
    pareto: list[dict[str, Any]]
    hypervolume: float
    models: list[dict[str, Any]]
    timings: dict[str, float] = field(default_factory=dict)
    train_eval: dict[str, float] = field(default_factory=dict)
    baselines: dict[str, float] = field(default_factory=dict)  # test top-1 of classic models, same split
    noise: dict[str, Any] = field(default_factory=dict)  # images behind each top-1 (Wilson 95% intervals)

    @property
    def plot(self) -> Path:
        return self.out_dir / "pareto.png"


Log = Callable[[str], None]


def run_pipeline(config: TrainConfig, out_dir: str | Path, settings: PipelineConfig | None = None,
                 log: Log = print, progress: bool = True) -> PipelineResult:
    """Train, fit a predictor, search and export; see the module doc."""
    settings = settings or PipelineConfig()
    with OutputLock(out_dir, "quick-start folder"):
        remove_torn_writes(out_dir)
        return _run(config, Path(out_dir), settings, log, progress)


def _run(config: TrainConfig, out: Path, settings: PipelineConfig, log: Log, progress: bool) -> PipelineResult:
    pc, sc = settings.predictor, settings.search
    if 2 * pc.folds > pc.num_archs:  # the fit needs 2 subnets per fold
        raise ConfigError(f"predictor.folds must be in [2, predictor.num_archs / 2 = {pc.num_archs // 2}], got {pc.folds}")
    int8_runtime(sc.int8.runtime, "config key 'search.int8.runtime'")  # before training, not after
    timings: dict[str, float] = {}
    trained = _train_stage(config, out, log, timings)
    net = trained.model.cpu().eval()  # type: ignore[union-attr]
    bundle, evaluator, predictor, predictor_path, report = _predictor_stage(config, out, settings, net, log, progress,
                                                                            timings)
    result = _search_stage(sc, out, net, predictor, evaluator, log, progress, timings)

    t = time.perf_counter()
    log(f"[4/4] exporting {len(result.pareto)} Pareto subnets ({settings.export_format}) -> {out / 'models'}")
    records = export_pareto_set(net, result.pareto, out / "models", settings.export_format,
                                calib_batches=evaluator.calib)
    for rec, entry in zip(records, result.pareto, strict=True):
        rec["val_top1"] = entry["accuracy"]
        rec["accuracy_source"] = entry["accuracy_source"]
        rec["test_top1"] = _test_accuracy(out / "models" / rec["file"], bundle.test, settings.export_format,
                                          config.data.eval_batch_size, int(rec["arch"]["resolution"]))
    atomic_write_json(out / "models" / "index.json", records)
    timings["export_s"] = time.perf_counter() - t
    return PipelineResult(out, trained.checkpoint or out / "checkpoints" / "last.pt", predictor_path, report,
                          result.pareto, result.hypervolume, records, timings, trained.final_eval,
                          classic_baselines(config), noise={**result.extra.get("noise", {}),
                                                            "test_images": len(bundle.test)})  # type: ignore[arg-type]


def _train_stage(config: TrainConfig, out: Path, log: Log, timings: dict[str, float]) -> TrainResult:
    """Stage 1: the supernet trained (or its run resumed) to completion."""
    t = time.perf_counter()
    log(f"[1/4] training the supernet ({config.space} space, {config.data.name} data) -> {out}")
    trained = train(config, out, resume="auto")
    if trained.status != "completed" or trained.model is None:
        raise ConfigError(f"training ended as '{trained.status}'; rerun to resume it (--out {out})")
    timings["train_s"] = time.perf_counter() - t
    return trained


def _predictor_stage(config: TrainConfig, out: Path, settings: PipelineConfig, net: Supernet, log: Log, progress: bool,
                     timings: dict[str, float]) -> tuple[DataBundle, SubnetEvaluator, Predictor, Path, dict[str, Any]]:
    """Subnets measured on the hold-out (BN recalibrated) and the predictor fitted on them: the data
    bundle, the evaluator, the predictor, its file and its report."""
    pc = settings.predictor
    space, num_classes = net.space, net.num_classes
    t = time.perf_counter()
    bundle = build_data(config.data, config.seed)
    measure = MeasureSettings(split="holdout", interpolation=config.data.interpolation,
                              calib_batches=config.eval.calib_batches, calib_batch_size=config.data.batch_size,
                              batch_size=config.data.eval_batch_size, calib_seed=settings.seed)
    evaluator = SubnetEvaluator(net, bundle, measure, device="cpu")
    log(f"[2/4] measuring {pc.num_archs} subnets (BN recalibrated, {HOLDOUT_NAME} split: "
        f"{len(bundle.val):,} images carved from the training data) for the predictor")  # type: ignore[arg-type]
    pred_dir = out / "predictor"
    dataset = build_arch_dataset(space, evaluator, pc.num_archs, seed=settings.seed,
                                 cache_path=pred_dir / "archs.jsonl", num_classes=num_classes, progress=progress,
                                 warn=log)
    predictor, report = fit_with_settings(dataset, pc, settings.seed)
    predictor_path = predictor.save(pred_dir / "predictor.json")
    best = report["kinds"][report["best"]]
    log(f"      best predictor: {report['best']} (Kendall tau {format_metric(best['kendall_tau'])}, "
        f"Spearman rho {format_metric(best['spearman_rho'])}, RMSE {best['rmse']:.2f} on held-out archs)")
    timings["predictor_s"] = time.perf_counter() - t
    return bundle, evaluator, predictor, predictor_path, report


def _search_stage(sc: SearchConfig, out: Path, net: Supernet, predictor: Predictor, evaluator: SubnetEvaluator,
                  log: Log, progress: bool, timings: dict[str, float]) -> SearchResult:
    """Stage 2: NSGA-II on the predictor, the best candidates re-measured (the predictor's
    measurements count for the measured front too); the front's files copied into ``out``."""
    t = time.perf_counter()
    log(f"[3/4] NSGA-II search (population {sc.evolution.pop_size}, {sc.evolution.generations} generations), "
        f"re-measuring the top {sc.accuracy.remeasure_top}")
    measured_cache = out / "search" / "measured.jsonl"
    checked_text(measured_cache, provenance_of(evaluator), "remeasure", log)  # another checkpoint's: moved aside
    if not measured_cache.exists():  # the predictor's measurements count for the measured front too
        _copy_atomic(out / "predictor" / "archs.jsonl", measured_cache)
    result = run_stage2(sc, out / "search", net.space, predictor=predictor, evaluator=evaluator,
                        num_classes=net.num_classes, measured_path=measured_cache, progress=progress)
    for name in ("pareto.json", "pareto.csv", "pareto.png"):
        _copy_atomic(out / "search" / name, out / name)
    timings["search_s"] = time.perf_counter() - t
    return result


def classic_baselines(config: TrainConfig) -> dict[str, float]:
    """Test top-1 (%) of scikit-learn's LogisticRegression and RBF SVC (standardised 8x8 pixels,
    default settings) trained on the same training images as the supernet: a reference for the digits."""
    if config.data.name != "digits":
        return {}
    from sklearn.datasets import load_digits  # heavy: scikit-learn only for this reference
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    digits = load_digits()
    frac = config.data.val_fraction if config.data.val_fraction is not None else DEFAULT_VAL_FRACTION["digits"]
    train_idx, _, test_idx = digits_split(digits.target, config.data.split_seed, frac)
    x, y = digits.data, digits.target
    out = {}
    for name, model in (("LogisticRegression", LogisticRegression(max_iter=5000)), ("RBF SVC", SVC(kernel="rbf"))):
        fitted = make_pipeline(StandardScaler(), model).fit(x[train_idx], y[train_idx])
        out[name] = 100.0 * float((fitted.predict(x[test_idx]) == y[test_idx]).mean())
    return out


def _copy_atomic(src: Path, dst: Path) -> None:
    atomic_write_bytes(dst, Path(src).read_bytes())


class _LoadedProgram(nn.Module):
    """A ``.pt2`` program loaded with ``torch.export.load`` as :func:`evaluate_subnet` runs a model
    (the program is already in eval mode; its module refuses ``eval()``)."""

    def __init__(self, module: nn.Module, resolution: int) -> None:
        super().__init__()
        self.program = module
        self.resolution = resolution

    def train(self, mode: bool = True) -> _LoadedProgram:
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.program(x)


def _test_accuracy(model_path: Path, test_set: Any, fmt: str, batch_size: int, resolution: int) -> float | None:
    """Top-1 of an exported model on the test split, loaded back as shipped (``.pt2`` with
    ``torch.export.load``, TorchScript with ``torch.jit.load``); None for the other formats."""
    rt = find_format(fmt)
    if rt is not None and rt.eager:  # the .pt2 file
        model: nn.Module = _LoadedProgram(torch.export.load(str(model_path)).module(), resolution)
    elif fmt == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            model = torch.jit.load(str(model_path), map_location="cpu")
    else:
        return None
    return float(evaluate_subnet(model, test_set, "cpu", batch_size)["top1"])


def format_summary(result: PipelineResult) -> str:
    """A short table of the exported Pareto models and the paths a user needs."""
    lines = [
        f"{'model':<34} {'MFLOPs':>7} {'params':>8} {HOLDOUT_NAME + ' top-1':>14} {'(95%)':<14}"
        f"{TEST_NAME + ' top-1':>11} (95%)",
    ]
    n_val, n_test = result.noise.get("images"), result.noise.get("test_images")
    for rec in result.models:
        test = "-" if rec.get("test_top1") is None else f"{rec['test_top1']:.2f}"
        src = "" if rec.get("accuracy_source") == "measured" else " (pred.)"
        val_ci = _interval(rec["val_top1"], n_val) if not src else src.strip()
        lines.append(f"{rec['file']:<34} {rec['mflops']:>7.2f} {rec['params_m']:>7.3f}M "
                     f"{rec['val_top1']:>13.2f}% {val_ci:<14}{test:>10}% "
                     f"{_interval(rec['test_top1'], n_test) if rec.get('test_top1') is not None else ''}")
    if n_val:
        lines.append(f"(95%): Wilson intervals, binomial on {n_val:,} {HOLDOUT_NAME} and {n_test or 0:,} {TEST_NAME} "
                     "images")
    lines += [f"noise: {line}" for line in result.noise.get("within_noise") or ()]
    t = result.timings
    lines += [
        "",
        f"hypervolume {result.hypervolume:.4f}; predictor {result.predictor_report['best']}; "
        f"time: train {t.get('train_s', 0):.0f}s, predictor {t.get('predictor_s', 0):.0f}s, "
        f"search {t.get('search_s', 0):.0f}s, export {t.get('export_s', 0):.0f}s",
        *([("reference on the same test split: " + ", ".join(f"{k} {v:.2f}%" for k, v in result.baselines.items()))]
          if result.baselines else []),
        f"checkpoint: {result.checkpoint}",
        f"metrics:    {result.out_dir / 'metrics.jsonl'}",
        f"predictor:  {result.predictor}",
        f"pareto:     {result.out_dir / 'pareto.json'} (csv beside it)",
        f"plot:       {result.plot}",
        f"models:     {result.out_dir / 'models'}/ ({_format_text(result.models)}; index.json lists them)",
    ]
    return "\n".join(lines)


def _interval(top1: float, images: int | None) -> str:
    """``[96.4, 99.4]``: the Wilson 95% interval of a top-1 on ``images`` images ('' without a count)."""
    if not images:
        return ""
    lo, hi = wilson_interval(float(top1), int(images))
    return f"[{lo:.1f}, {hi:.1f}]"


def _format_text(records: list[dict[str, Any]]) -> str:
    fmt = records[0].get("format", "?") if records else "?"
    rt = find_format(str(fmt))
    if rt is not None and rt.eager:
        return "torch.export .pt2, load with torch.export.load(path).module()"
    return fmt


def load_quickstart_config(path: str | Path | None, overrides: list[str]) -> TrainConfig:
    return load_config(path if path is not None else quickstart_config_path(), overrides)


__all__ = ["PipelineConfig", "PipelineResult", "run_pipeline", "format_summary", "load_quickstart_config",
           "quickstart_config_path"]
