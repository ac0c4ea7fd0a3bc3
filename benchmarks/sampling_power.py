"""What the sampling comparison can resolve, computed from its run files (``benchmarks/sampling_report.py``).

* :func:`detectable` — the smallest mean paired difference ``n`` seeds detect with 80% power (paired
  two-sided t-test at 5%, exact through the noncentral t), beside the 95% interval's half-width,
  which is not the same thing;
* :func:`power_summary` — the front's span, the paper's effect scaled to it, the seeds and CPU
  hours a test of that effect needs at the measured paired spread and run times;
* :func:`hv_shares` — which subnets set a front's hypervolume (each one's share of the area);
* :func:`gap_profile`, :func:`pair_signs`, :func:`tau_power` — the ranking probe's gap over FLOPs
  with intervals, the sign agreement on pairs whose standalone difference is resolved, and the power
  of Kendall tau over the probe's subnets.

Reads results only: nothing here trains or measures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from attentivenas.accuracy.ranking import arch_key, finetuned_top1
from attentivenas.errors import UserError
from attentivenas.io import read_json_file

POWER = 0.8
ALPHA = 0.05
#: where the paper's effect and front are written down (read by :func:`paper_effect`)
PAPER_FILE = "paper_effect.json"


# --------------------------------------------------------------------------- seeds and power
def detectable(sd: float, n: int, power: float = POWER, alpha: float = ALPHA) -> float:
    """The smallest true mean difference a paired two-sided t-test on ``n`` seeds detects with
    ``power`` when the per-seed differences have standard deviation ``sd`` (noncentral t)."""
    from scipy import optimize, stats  # heavy: only the report needs it

    if n < 2 or not sd > 0:  # NaN too
        return math.inf
    df = n - 1
    t = stats.t.ppf(1 - alpha / 2, df)

    def short(delta: float) -> float:
        nc = delta * math.sqrt(n) / sd
        upper, lower = (float(np.nan_to_num(x, nan=0.0)) for x in (stats.nct.sf(t, df, nc), stats.nct.cdf(-t, df, nc)))
        return min(upper + lower, 1.0) - power

    hi = sd
    while not short(hi) > 0:  # widen until the power is reached (the noncentral t is NaN far out)
        hi *= 1.5
    return float(optimize.brentq(short, 1e-9, hi))


def half_width(sd: float, n: int, alpha: float = ALPHA) -> float:
    """Half-width of the (1 - alpha) t interval of a mean of ``n`` paired differences."""
    from scipy import stats  # heavy

    return float(stats.t.ppf(1 - alpha / 2, n - 1) * sd / math.sqrt(n)) if n > 1 else math.inf


def seeds_needed(sd: float, effect: float, limit: int = 2000) -> int | None:
    """The fewest seeds whose :func:`detectable` difference is at most ``effect`` (None past ``limit``)."""
    lo, hi = 3, 3
    while detectable(sd, hi) > effect:
        lo, hi = hi, hi * 2
        if hi > limit:
            return None
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if detectable(sd, mid) > effect else (lo, mid)
    return hi


def pooled_sd(paired: dict[str, dict[str, Any]], key: str) -> tuple[float, int]:
    """The pooled standard deviation of the per-seed differences of ``key`` over the attentive methods
    (root mean of their variances) and its degrees of freedom."""
    ps = [p[key] for p in paired.values() if p.get(key) and p[key].get("std") is not None]
    if not ps:
        return math.nan, 0
    return float(math.sqrt(np.mean([p["std"] ** 2 for p in ps]))), int(sum(p["n"] - 1 for p in ps))


def paper_effect(out: Path) -> dict[str, Any] | None:
    """``OUT/paper_effect.json`` (the paper's effect and the span of its front), or None."""
    path = out / PAPER_FILE
    return read_json_file(path, "paper effect", UserError) if path.is_file() else None


def power_summary(results: list[dict[str, Any]], summary: dict[str, Any], out: Path) -> dict[str, Any]:
    """Span of the front (test top-1, max - min subnet, per run), the paper's effect scaled to it,
    the pooled paired spread, the detectable differences at 3, 5 and 10 seeds, and the seeds and
    CPU hours needed to detect the scaled effect (BestUp-3 and uniform, at the measured run times)."""
    spans = [r["test"]["max_top1"] - r["test"]["min_top1"] for r in results
             if r["test"].get("max_top1") is not None and r["test"].get("min_top1") is not None]
    sd, df = pooled_sd(summary["paired_vs_uniform"], "hv_front")
    run_h = float(np.mean([r["timing"]["total_s"] for r in results])) / 3600
    out_: dict[str, Any] = {"span_test": {"mean": float(np.mean(spans)), "min": float(min(spans)),
                                          "max": float(max(spans)), "runs": len(spans)},
                            "paired_sd_hv_front": sd, "paired_sd_df": df, "power": POWER, "alpha": ALPHA,
                            "run_hours_cpu_core": run_h,
                            "by_seeds": {n: {"half_width": half_width(sd, n), "detectable": detectable(sd, n)}
                                         for n in (3, 5, 10)}}
    paper = paper_effect(out)
    if paper is not None:
        lo, hi = paper["effect_points"]
        f_lo, f_hi = paper["front_top1"]
        scale = out_["span_test"]["mean"] / (f_hi - f_lo)
        scaled = [lo * scale, hi * scale]
        need = [seeds_needed(sd, e) for e in scaled]
        out_["paper"] = {**paper, "scale": scale, "scaled_effect": scaled, "seeds_needed": need,
                         "cpu_core_hours": [None if n is None else 2 * n * run_h for n in need]}
    return out_


# --------------------------------------------------------------------------- hypervolume
def hv_shares(mflops: Sequence[float], top1: Sequence[float], lo: float, hi: float) -> list[dict[str, float]]:
    """Each non-dominated point's share of the hypervolume of ``(error, MFLOPs)`` with reference (1, 1)
    (MFLOPs scaled ``lo`` -> 0, ``hi`` -> 1): the HV is the integral over the scaled FLOPs range of the
    best top-1 available at that cost (/100), so a point holds the strip from its own cost to the next
    better point's. Sorted by MFLOPs; shares sum to 1."""
    pts = sorted(zip(mflops, top1, strict=True))
    front: list[tuple[float, float]] = []
    for m, a in pts:
        if not front or a > front[-1][1]:
            if front and m == front[-1][0]:
                front[-1] = (m, a)
            else:
                front.append((m, a))
    xs = [min(max((m - lo) / (hi - lo), 0.0), 1.0) for m, _ in front]
    areas = [(nxt - x) * a / 100 for x, nxt, (_, a) in zip(xs, [*xs[1:], 1.0], front, strict=True)]
    total = sum(areas)
    return [{"mflops": m, "top1": a, "area": ar, "share": ar / total if total else 0.0}
            for (m, a), ar in zip(front, areas, strict=True)]


def hv_setters(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per run, for the searched front and the fixed subnets: the subnet with the largest share of the
    hypervolume (its MFLOPs and share), the max subnet's share and the front's size."""
    rows = []
    for r in results:
        lo, hi = r["hv_bounds_mflops"]
        row: dict[str, Any] = {"method": r["method"], "seed": r["seed"]}
        for name, m, a in (("front", [e["mflops"] for e in r["search"]["pareto"]], [e["top1"] for e in r["search"]["pareto"]]),
                           ("fixed", r["fixed"]["mflops"], r["fixed"]["top1"])):
            sh = hv_shares(m, a, lo, hi)
            top = max(sh, key=lambda s: s["share"])
            row[name] = {"points": len(sh), "top_mflops": top["mflops"], "top_share": top["share"],
                         "top_top1": top["top1"], "max_subnet_share": sum(s["share"] for s in sh if s["mflops"] >= hi - 1e-6),
                         "min_subnet_share": sum(s["share"] for s in sh if s["mflops"] <= lo + 1e-6)}
        rows.append(row)
    return rows


# --------------------------------------------------------------------------- ranking probe
def standalone_seeds(out: Path) -> dict[str, list[float]]:
    """Every standalone top-1 of each probe subnet: ``OUT/probe`` (seed 0) and ``OUT/probe-seed*``."""
    found: dict[str, list[float]] = {}
    for folder in sorted(p for p in out.glob("probe*") if p.is_dir()):
        for key, v in finetuned_top1(folder).items():
            found.setdefault(key, []).append(v)
    return found


def standalone_sd(seeds: dict[str, list[float]]) -> tuple[float, int]:
    """The seed-to-seed standard deviation of one standalone top-1, pooled over the subnets trained
    with more than one seed, and its degrees of freedom."""
    vs = [(np.var(v, ddof=1), len(v) - 1) for v in seeds.values() if len(v) > 1]
    df = sum(d for _, d in vs)
    return (float(math.sqrt(sum(v * d for v, d in vs) / df)), df) if df else (math.nan, 0)


def _probe_rows(results: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, float]]]:
    """Per run: (run, probe name -> inherited test top-1)."""
    return [(r, {p["name"]: p["test_top1"] for p in r.get("probe") or () if p.get("test_top1") is not None})
            for r in results]


def gap_profile(results: list[dict[str, Any]], seeds: dict[str, list[float]]) -> dict[str, Any]:
    """Per probe subnet: inherited - standalone over all runs, the mean with a 95% interval that adds
    the run-to-run spread of the inherited top-1 (t, runs - 1 df) and the standalone mean's seed noise
    (:func:`standalone_sd` / sqrt(its seeds)): sqrt(s_runs^2 / runs + s_alone^2 / m), times 1.96."""
    from scipy import stats  # heavy

    sd_alone, df_alone = standalone_sd(seeds)
    probes = {p["name"]: p for r in results for p in r.get("probe") or ()}
    runs = _probe_rows(results)
    rows = []
    for name, p in sorted(probes.items(), key=lambda kv: kv[1]["mflops"]):
        alone = seeds.get(arch_key(p["arch"]))
        inh = [v[name] for _, v in runs if name in v]
        if not alone or len(inh) < 2:
            continue
        s_runs = float(np.std(inh, ddof=1))
        half = float(stats.norm.ppf(0.975)) * math.sqrt(s_runs ** 2 / len(inh) + sd_alone ** 2 / len(alone))
        gap = float(np.mean(inh)) - float(np.mean(alone))
        rows.append({"name": name, "mflops": p["mflops"], "standalone": float(np.mean(alone)), "seeds": len(alone),
                     "inherited": float(np.mean(inh)), "runs": len(inh), "gap": gap, "ci95": [gap - half, gap + half],
                     "gap_runs": [float(min(inh) - np.mean(alone)), float(max(inh) - np.mean(alone))]})
    return {"standalone_sd": sd_alone, "standalone_sd_df": df_alone, "subnets": rows}


def pair_signs(results: list[dict[str, Any]], seeds: dict[str, list[float]]) -> dict[str, Any]:
    """Pairs of probe subnets whose standalone difference is resolved (|difference| > 1.96 x its seed
    noise, sqrt(1/m_i + 1/m_j) x :func:`standalone_sd`): per pair, in how many runs the supernet orders
    the two as training alone does; and the share of (run, pair) agreements."""
    sd_alone, _ = standalone_sd(seeds)
    probes = {p["name"]: p for r in results for p in r.get("probe") or ()}
    names = sorted((n for n in probes if arch_key(probes[n]["arch"]) in seeds), key=lambda n: probes[n]["mflops"])
    runs = _probe_rows(results)
    pairs, agree_all, n_all = [], 0, 0
    for a, b in combinations(names, 2):
        sa, sb = seeds[arch_key(probes[a]["arch"])], seeds[arch_key(probes[b]["arch"])]
        diff = float(np.mean(sb) - np.mean(sa))
        noise = 1.96 * sd_alone * math.sqrt(1 / len(sa) + 1 / len(sb))
        if not abs(diff) > noise:
            continue
        signs = [np.sign(v[b] - v[a]) == np.sign(diff) for _, v in runs if a in v and b in v]
        agree_all += int(sum(signs))
        n_all += len(signs)
        pairs.append({"pair": [a, b], "mflops": [probes[a]["mflops"], probes[b]["mflops"]], "standalone_diff": diff,
                      "resolved_above": noise, "runs_agree": int(sum(signs)), "runs": len(signs)})
    return {"pairs": pairs, "agree": agree_all, "n": n_all, "standalone_sd": sd_alone,
            "pairs_total": len(names) * (len(names) - 1) // 2}


def tau_power(seeds: dict[str, list[float]], results: list[dict[str, Any]], sims: int = 4000) -> dict[str, Any]:
    """How often Kendall tau over the probe's subnets tells a perfect ranker from a random one (tau > 0
    and two-sided p < 0.05, as the page reports p): standalone measured with one seed
    (:func:`standalone_sd`), the perfect ranker's inherited top-1 with the binomial noise of the test
    split; the true top-1 taken as the standalone means (``as_measured``) or shrunk towards their
    mean so that their spread is the measured one less the seed noise (``noise_removed``); seeded
    simulation."""
    from scipy import stats  # heavy

    sd_alone, _ = standalone_sd(seeds)
    probes = {p["name"]: p for r in results for p in r.get("probe") or ()}
    keys = [arch_key(p["arch"]) for p in probes.values() if arch_key(p["arch"]) in seeds]
    measured = np.array([np.mean(seeds[k]) for k in keys])
    noise_var = float(np.mean([sd_alone ** 2 / len(seeds[k]) for k in keys]))
    var = float(np.var(measured, ddof=1))
    shrink = math.sqrt(max(var - noise_var, 0.0) / var) if var > 0 else 0.0
    n_test = int(results[0]["test_images"])
    sd_test = float(100 * math.sqrt(np.mean(measured / 100 * (1 - measured / 100)) / n_test))
    out: dict[str, Any] = {"subnets": int(measured.size), "span": float(np.ptp(measured)), "standalone_sd": sd_alone,
                           "test_sd": sd_test, "shrink": shrink, "sims": sims}
    for name, true in (("as_measured", measured), ("noise_removed", measured.mean() + shrink * (measured - measured.mean()))):
        rng = np.random.default_rng(0)
        hits = [0, 0]
        for _ in range(sims):
            alone = true + rng.normal(0, sd_alone, true.size)
            for j, order in enumerate((true, rng.permutation(true))):
                kt = stats.kendalltau(order + rng.normal(0, sd_test, true.size), alone)
                hits[j] += int(kt.statistic > 0 and kt.pvalue < ALPHA)
        out[name] = {"power": hits[0] / sims, "false_positive": hits[1] / sims}
    return out
