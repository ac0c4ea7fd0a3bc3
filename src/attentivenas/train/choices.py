"""``attentivenas sampling-report RUN/``: did attentive sampling pick what the trained supernet ranks best?

Training logs the sampler's choices (:mod:`attentivenas.train.sampling.record`: per recorded step
and middle subnet, the ``k`` candidates at one FLOPs target, their scores and the pick). After
training, :func:`choice_report` measures every recorded candidate with the run's final supernet
(BN recalibrated, on held-out images: :class:`~attentivenas.accuracy.SubnetEvaluator`) and reports

* **agreement**: how often the pick is the candidate the trained supernet ranks first (``bestup``)
  or last (``worstup``), with a 95% Wilson interval, beside chance (1/k); tied candidates share the
  credit (a pick among 2 tied best counts 1/2);
* **spread**: the candidates' top-1 range within a group (they sit in one FLOPs bin, so this is the
  accuracy spread at equal FLOPs), against the range that measurement noise alone gives to ``k``
  subnets of equal accuracy (binomial noise of a top-1 on the measured images, as if independent:
  an upper bound, since candidates measured on the same images err together);
* a one-line verdict: whether attentive sampling had anything to choose between.

The picks were made on the weights of their step, the ranking is the final supernet's: agreement
says whether the sampler steered towards what the trained supernet ends up calling better.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..accuracy import SubnetEvaluator
from ..config import MeasureSettings
from ..errors import UserError
from .sampling import read_choices
from .state import LAST, checkpoint_dir

#: z of a two-sided 95% interval
Z95 = 1.959963984540054
#: spread / noise range at or above which the candidates differ by more than noise
CHOICE_RATIO = 2.0


def wilson(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``successes / n`` (fractional successes allowed)."""
    if n <= 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def expected_range(k: int, draws: int = 200_000) -> float:
    """Mean range of ``k`` independent standard normal values (1.128 for 2, 1.693 for 3), by a seeded
    simulation."""
    if k < 2:
        return 0.0
    x = np.random.default_rng(0).standard_normal((draws, k))
    return float((x.max(axis=1) - x.min(axis=1)).mean())


def pick_credit(top1: list[float], picked: int, method: str) -> float:
    """1 when the pick is the candidate the measurement ranks first (bestup) or last (worstup), 1/t
    when it is among t tied ones, else 0."""
    target = max(top1) if method == "bestup" else min(top1)
    tied = [i for i, v in enumerate(top1) if abs(v - target) < 1e-9]
    return 1.0 / len(tied) if picked in tied else 0.0


def recorded_groups(run: Path, max_groups: int | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The recorded groups of ``RUN/metrics.jsonl`` (each with its step), at most ``max_groups``
    evenly spaced over the run, and what the records say (method, k, estimator, groups recorded)."""
    records = read_choices(run / "metrics.jsonl")
    if not records:
        raise UserError(f"{run / 'metrics.jsonl'} holds no sampler records: the run sampled uniformly "
                        "(sampler.method=uniform, or an online predictor that was never fitted), set "
                        "sampler.record_every=0, or was trained before the record existed")
    groups = [{"step": int(r["global_step"]), **g} for r in records for g in r["groups"]]
    about = {"method": records[-1]["method"], "k": int(records[-1]["k"]), "estimator": records[-1].get("estimator"),
             "records": len(records), "groups_recorded": len(groups),
             "steps": [int(records[0]["global_step"]), int(records[-1]["global_step"])]}
    if about["method"] not in ("bestup", "worstup"):
        raise UserError(f"{run / 'metrics.jsonl'}: sampler records of method {about['method']!r}; "
                        "expected bestup or worstup")
    if max_groups is not None and len(groups) > max_groups:
        keep = sorted({int(i) for i in np.round(np.linspace(0, len(groups) - 1, max_groups))})
        groups = [groups[i] for i in keep]
    return groups, about


def _summary(values: list[float]) -> dict[str, float]:
    v = np.asarray(values, dtype=np.float64)
    return {"mean": float(v.mean()), "median": float(np.median(v)), "p90": float(np.quantile(v, 0.9)),
            "max": float(v.max())}


def _agreement(credits: list[float]) -> dict[str, Any]:
    s, n = float(sum(credits)), len(credits)
    lo, hi = wilson(s, n)
    return {"rate": s / n if n else None, "credit": s, "n": n, "ci95": [lo, hi]}


def verdict(ratio: float, spread: float, noise: float, k: int) -> str:
    """The one line on whether attentive sampling had anything to choose between."""
    where = (f"the {k} candidates at equal FLOPs span {spread:.2f} points of top-1 on average; measurement noise "
             f"alone gives about {noise:.2f}")
    if ratio >= CHOICE_RATIO:
        return f"attentive sampling had something to choose between: {where} ({ratio:.1f}x)"
    if ratio <= 1.25:
        return (f"attentive sampling had nothing to choose between that this measurement can see: {where} "
                f"({ratio:.1f}x)")
    return f"attentive sampling had little to choose between: {where} ({ratio:.1f}x, below {CHOICE_RATIO:g}x)"


def choice_report(run: str | Path, checkpoint: str | Path | None = None, settings: MeasureSettings | None = None,
                  max_groups: int | None = None, device: str | Any = "cpu",
                  log: Callable[[str], None] | None = None,
                  warn: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Measure the recorded candidates of the run in ``run`` with its final supernet (``checkpoint``:
    default ``RUN/checkpoints/last.pt``) and report agreement, spread and the verdict (module doc).
    ``settings``: how to measure (default: the hold-out split, all of it, BN recalibrated)."""
    run = Path(run)
    groups, about = recorded_groups(run, max_groups)
    ckpt = Path(checkpoint) if checkpoint is not None else checkpoint_dir(run) / LAST
    if not ckpt.is_file():
        raise UserError(f"{ckpt}: no checkpoint (give --checkpoint, or train the run to its end)")
    ev = SubnetEvaluator.from_checkpoint(ckpt, settings=settings or MeasureSettings(split="holdout"), device=device,
                                         warn=warn)
    space = ev.supernet.space
    cache: dict[str, float] = {}
    images = 0
    for i, g in enumerate(groups):
        top1 = []
        for genes in g["genes"]:
            arch = space.decode(np.asarray(genes, dtype=np.int64))
            key = arch.key()
            if key not in cache:
                res = ev.evaluate(arch)
                cache[key], images = float(res["top1"]), int(res["samples"])
            top1.append(cache[key])
        g["top1"] = top1
        if log is not None and (i + 1) % 25 == 0:
            log(f"{i + 1} of {len(groups)} groups measured ({len(cache)} subnets)")
    return summarise(groups, about, images, {"checkpoint": str(ckpt), "run": str(run),
                                             "measured_with": ev.provenance(), "split": ev.split,
                                             "calib_batches": len(ev.calib)})


def summarise(groups: list[dict[str, Any]], about: dict[str, Any], images: int,
              extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The report of measured groups (each with ``top1``, ``picked``, ``mflops``, ``step``)."""
    method, k = about["method"], about["k"]
    credits = [pick_credit(g["top1"], int(g["picked"]), method) for g in groups]
    spreads = [max(g["top1"]) - min(g["top1"]) for g in groups]
    mflops_spread = [max(g["mflops"]) - min(g["mflops"]) for g in groups]
    p = float(np.mean([v for g in groups for v in g["top1"]])) / 100.0
    sigma = 100.0 * math.sqrt(max(p * (1 - p), 0.0) / max(images, 1))
    noise = expected_range(k) * sigma
    mean_spread = float(np.mean(spreads))
    ratio = mean_spread / noise if noise > 0 else math.inf
    mid = (about["steps"][0] + about["steps"][1]) / 2
    halves = {name: _agreement([c for c, g in zip(credits, groups, strict=True) if (g["step"] <= mid) == early])
              for name, early in (("first_half", True), ("second_half", False))}
    return {
        **about, **(extra or {}), "images": images, "groups_measured": len(groups),
        "agreement": _agreement(credits), "chance": 1.0 / k, "agreement_by_half": halves,
        "spread_top1": _summary(spreads), "spread_mflops": _summary(mflops_spread),
        "noise": {"top1_std": sigma, "expected_range": noise, "mean_top1": 100 * p,
                  "how": f"binomial std of a top-1 on {images} images, times the mean range of {k} normal draws"},
        "spread_over_noise": ratio, "had_choice": ratio >= CHOICE_RATIO,
        "verdict": verdict(ratio, mean_spread, noise, k),
        "groups": [{k2: g[k2] for k2 in ("step", "target", "mflops", "scores", "picked", "top1")} for g in groups],
    }


def report_lines(rep: dict[str, Any]) -> list[str]:
    """The report as the command prints it."""
    a, lo_hi = rep["agreement"], rep["agreement"]["ci95"]
    what = "best" if rep["method"] == "bestup" else "worst"
    h1, h2 = rep["agreement_by_half"]["first_half"], rep["agreement_by_half"]["second_half"]

    def pct(x: dict[str, Any]) -> str:
        return "-" if x["rate"] is None else f"{100 * x['rate']:.0f}% [{100 * x['ci95'][0]:.0f}, {100 * x['ci95'][1]:.0f}]"

    sp, fl, nz = rep["spread_top1"], rep["spread_mflops"], rep["noise"]
    return [
        f"run        {rep['run']} ({rep['method']}-{rep['k']}, scored by {rep['estimator']}): {rep['groups_measured']} "
        f"of {rep['groups_recorded']} recorded choices, steps {rep['steps'][0]}-{rep['steps'][1]}",
        f"measured   {rep['split']} split, {rep['images']} images, BN recalibrated on {rep['calib_batches']} batches; "
        f"{rep['checkpoint']}",
        f"agreement  the pick was the trained supernet's {what} of the {rep['k']} in {100 * a['rate']:.1f}% "
        f"(95% Wilson [{100 * lo_hi[0]:.1f}, {100 * lo_hi[1]:.1f}]; chance {100 * rep['chance']:.0f}%); "
        f"first half {pct(h1)}, second half {pct(h2)}",
        f"spread     top-1 range of the candidates: mean {sp['mean']:.2f}, median {sp['median']:.2f}, 90th pct "
        f"{sp['p90']:.2f} points, at equal FLOPs (their MFLOPs range: mean {fl['mean']:.3f})",
        f"noise      {nz['expected_range']:.2f} points ({nz['how']}: std {nz['top1_std']:.2f})",
        f"verdict    {rep['verdict']}",
    ]
