"""The reporting half of ``benchmarks/reproduce_sampling.py``: from ``OUT/runs/*/result.json`` to
``OUT/summary.json``, ``OUT/summary.md``, ``OUT/fronts.png`` and the ``--docs`` page.

Per method the mean ± std over seeds of every metric; per attentive method the differences to
uniform paired by seed, with a 95% t interval; one panel of searched fronts per method; the Markdown
tables, the comparison sentences computed from the numbers, and the page with its hand-written
conclusion kept on regeneration. Reads results only: nothing here trains or measures.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from attentivenas.errors import UserError
from attentivenas.io import atomic_write_bytes, atomic_write_json, atomic_write_text, read_json_file
from sampling_power import (
    PAPER_FILE,
    gap_profile,
    hv_setters,
    pair_signs,
    power_summary,
    standalone_seeds,
    tau_power,
)
from sampling_probe import probe_table, rank_metrics, run_ranking, standalone_top1
from sampling_runs import BASELINE, METHODS, SCRIPT, log, shown
from timing import machine


# --------------------------------------------------------------------------- aggregation
def load_results(out: Path) -> list[dict[str, Any]]:
    return [read_json_file(p, "run result", UserError) for p in sorted(out.glob("runs/*/result.json"))]


def run_metrics(r: dict[str, Any]) -> dict[str, float | None]:
    """One run's numbers, in percent (hypervolumes x 100)."""
    m: dict[str, float | None] = {
        "hv_fixed": 100 * r["fixed"]["hypervolume"], "hv_front": 100 * r["search"]["hypervolume"],
        "hv_front_test": None if r["search"]["hypervolume_test"] is None else 100 * r["search"]["hypervolume_test"],
        "min_top1": r["fixed"]["min_top1"], "max_top1": r["fixed"]["max_top1"],
        "min_test_top1": r["test"]["min_top1"], "max_test_top1": r["test"]["max_top1"],
        "wall_s": r["timing"]["total_s"], "train_s": r["timing"]["train_s"],
    }
    for i, w in enumerate(r["search"]["budget_winners"]):
        m[f"budget{i}_top1"], m[f"budget{i}_test_top1"] = w.get("top1"), w.get("test_top1")
    for i, v in enumerate(r["fixed"]["budget_top1"]):
        m[f"budget{i}_fixed_top1"] = v
    return m


def mean_std(values: Sequence[float | None]) -> dict[str, Any]:
    v = [float(x) for x in values if x is not None]
    if not v:
        return {"mean": None, "std": None, "n": 0, "values": list(values)}
    return {"mean": float(np.mean(v)), "std": float(np.std(v, ddof=1)) if len(v) > 1 else None, "n": len(v),
            "values": list(values)}


def paired(a: dict[int, float | None], b: dict[int, float | None]) -> dict[str, Any] | None:
    """Per-seed differences a - b over the seeds both have: mean, std, 95% t interval, seeds above 0."""
    seeds = sorted(s for s in a if s in b and a[s] is not None and b[s] is not None)
    if not seeds:
        return None
    d = np.array([float(a[s]) - float(b[s]) for s in seeds])  # type: ignore[arg-type]
    out: dict[str, Any] = {"seeds": seeds, "diffs": d.tolist(), "n": len(d), "mean": float(d.mean()),
                           "std": None, "ci95": None, "t_crit": None, "positive": int((d > 0).sum())}
    if len(d) > 1:
        from scipy import stats  # heavy: only the report needs it

        sd = float(d.std(ddof=1))
        t = float(stats.t.ppf(0.975, len(d) - 1))
        half = t * sd / math.sqrt(len(d))
        out.update(std=sd, t_crit=t, ci95=[out["mean"] - half, out["mean"] + half])
    return out


def aggregate(results: list[dict[str, Any]], plan: dict[str, Any] | None,
              standalone: dict[str, float] | None = None) -> dict[str, Any]:
    """Per method: mean and std over seeds of every metric; per attentive method: paired differences to
    uniform. ``standalone`` (the probe subnets' top-1 trained alone, :func:`standalone_top1`) adds each
    run's ranking: Kendall tau, Spearman rho and the gap, as metrics and in ``summary["ranking"]``."""
    methods = [m for m in METHODS if any(r["method"] == m for r in results)]
    per_run = {(r["method"], r["seed"]): run_metrics(r) for r in results}
    summary: dict[str, Any] = {"settings": plan, "methods": {}, "paired_vs_uniform": {}, "runs": []}
    if standalone:
        rankings = []
        for r in sorted(results, key=lambda r: (list(METHODS).index(r["method"]), r["seed"])):
            rep = run_ranking(r, standalone)
            per_run[(r["method"], r["seed"])].update(rank_metrics(rep))
            if rep is not None:
                rankings.append({"method": r["method"], "seed": r["seed"], **rep})
        summary["ranking"] = {"standalone_subnets": len(standalone), "split": "test", "runs": rankings}
    names = sorted({k for m in per_run.values() for k in m})
    if results:
        summary["budgets_mflops"] = results[0]["budgets_mflops"]
        summary["hv_bounds_mflops"] = results[0]["hv_bounds_mflops"]
        summary["holdout_images"], summary["test_images"] = results[0]["holdout_images"], results[0]["test_images"]
        summary["holdout_first"] = results[0].get("holdout_first")
        summary["train"] = {k: results[0]["train"].get(k) for k in ("train_size", "batch_size", "lr", "epochs")}
    for m in methods:
        runs = sorted((r for r in results if r["method"] == m), key=lambda r: r["seed"])
        summary["methods"][m] = {"label": METHODS[m][0], "seeds": [r["seed"] for r in runs],
                                 "metrics": {k: mean_std([per_run[(m, r["seed"])].get(k) for r in runs])
                                             for k in names}}
    for m in methods:
        if m == BASELINE or BASELINE not in methods:
            continue
        summary["paired_vs_uniform"][m] = {
            k: paired({s: v.get(k) for (mm, s), v in per_run.items() if mm == m},
                      {s: v.get(k) for (mm, s), v in per_run.items() if mm == BASELINE})
            for k in names if not k.endswith("_s")}
    for r in sorted(results, key=lambda r: (list(METHODS).index(r["method"]), r["seed"])):
        summary["runs"].append({"method": r["method"], "seed": r["seed"], **r["timing"], "threads": r.get("threads"),
                                "load_average": r.get("load_average"), "finished": r.get("finished"),
                                "command": r.get("command")})
    summary["wall_s_total"] = float(sum(r["timing"]["total_s"] for r in results))
    summary["machine"] = results[0]["machine"] if results else machine()
    return summary


def plot_fronts(results: list[dict[str, Any]], path: Path) -> Path:
    """One panel per method: each seed's searched front (hold-out top-1 vs MFLOPs), uniform's in grey."""
    import matplotlib  # heavy: only the report plots

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = [m for m in METHODS if any(r["method"] == m for r in results)] or [BASELINE]
    cols = 2 if len(methods) > 1 else 1
    rows = math.ceil(len(methods) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.6 * rows), dpi=110, sharex=True, sharey=True,
                             squeeze=False)
    styles = ["-", "--", ":", "-."]

    def front(r: dict[str, Any]) -> tuple[list[float], list[float]]:
        pts = sorted((e["mflops"], e["top1"]) for e in r["search"]["pareto"])
        return [p[0] for p in pts], [p[1] for p in pts]

    for ax, m in zip(axes.flat, methods, strict=False):
        if m != BASELINE:
            for k, r in enumerate(r for r in results if r["method"] == BASELINE):
                xs, ys = front(r)
                ax.plot(xs, ys, drawstyle="steps-post", color="0.7", lw=1, ls=styles[k % 4],
                        label="uniform" if k == 0 else None)
        for k, r in enumerate(sorted((r for r in results if r["method"] == m), key=lambda r: r["seed"])):
            xs, ys = front(r)
            ax.plot(xs, ys, drawstyle="steps-post", marker="o", ms=3, lw=1.3, ls=styles[k % 4], color="tab:blue",
                    label=f"seed {r['seed']}")
        for b in (results[0]["budgets_mflops"] if results else []):
            ax.axvline(b, ls=":", color="0.5", lw=0.8)
        ax.set_title(METHODS[m][0], fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    for ax in list(axes.flat)[len(methods):]:
        ax.set_visible(False)
    fig.supxlabel("MFLOPs (dotted: the 3 budgets)", fontsize=9)
    fig.supylabel("hold-out top-1 (%)", fontsize=9)
    fig.suptitle("Searched Pareto fronts (re-measured on the hold-out)", fontsize=11)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


# --------------------------------------------------------------------------- what the data can say
def recipe_facts(out: Path) -> dict[str, Any] | None:
    """What the runs' resolved configs (``OUT/runs/*/config.yaml``) trained with: distillation
    warm-up against epochs (labels only when it covers them all), augmentation, batch; None without
    configs."""
    import yaml  # heavy: only the report reads the configs

    rows = []
    for p in sorted(out.glob("runs/*/config.yaml")):
        c = yaml.safe_load(p.read_text())
        rows.append({"run": p.parent.name, "distill_warmup_epochs": float(c["loss"]["distill_warmup_epochs"]),
                     "epochs": int(c["optim"]["epochs"]), "random_shift": c["data"].get("random_shift"),
                     "random_flip": c["data"].get("random_flip"), "batch_size": c["data"]["batch_size"],
                     "eval_batch_size": c["data"]["eval_batch_size"]})
    if not rows:
        return None
    return {"runs": len(rows), "labels_only": sum(r["distill_warmup_epochs"] >= r["epochs"] for r in rows),
            "augmented": sum(bool(r["random_shift"] or r["random_flip"]) for r in rows),
            "distill_warmup_epochs": sorted({r["distill_warmup_epochs"] for r in rows}),
            "epochs": sorted({r["epochs"] for r in rows}), "batch_size": sorted({r["batch_size"] for r in rows}),
            "eval_batch_size": max(r["eval_batch_size"] for r in rows)}


def analysis(results: list[dict[str, Any]], summary: dict[str, Any], out: Path) -> dict[str, Any]:
    """What the comparison's files can and cannot say (:mod:`sampling_power`): the recipe the runs
    trained with, the detectable differences and the paper's effect scaled to this front, which
    subnets set the hypervolume, and (with standalone probe subnets) the gap profile over FLOPs, the
    sign agreement on resolved pairs and the power of Kendall tau."""
    res: dict[str, Any] = {"recipe": recipe_facts(out), "power": power_summary(results, summary, out),
                           "hv_setters": hv_setters(results)}
    seeds = standalone_seeds(out)
    if seeds and any(r.get("probe") for r in results):
        res["probe"] = {"gap_profile": gap_profile(results, seeds), "pair_signs": pair_signs(results, seeds),
                        "tau_power": tau_power(seeds, results)}
    return res


def recipe_paragraph(summary: dict[str, Any]) -> str:
    """The page's sentences on what the supernets learned from ("" without the runs' configs)."""
    rec = (summary.get("analysis") or {}).get("recipe")
    if not rec:
        return ""
    w = ", ".join(f"{x:g}" for x in rec["distill_warmup_epochs"])
    e = ", ".join(str(x) for x in rec["epochs"])
    if rec["labels_only"] == rec["runs"]:
        distil = (f"**Labels only.** In all {rec['runs']} runs `loss.distill_warmup_epochs` ({w}) is at least "
                  f"`optim.epochs` ({e}), so the middle and min subnets learned from the labels for the whole run: "
                  "in-place distillation, which AttentiveNAS's stage 1 uses together with the sandwich rule and "
                  "attentive sampling, never ran. What was compared is attentive sampling in a labels-only "
                  "sandwich, not the paper's stage 1.")
    else:
        distil = (f"In-place distillation: labels only in {rec['labels_only']} of {rec['runs']} runs "
                  f"(`loss.distill_warmup_epochs` {w}, `optim.epochs` {e}).")
    aug = ("No augmentation (`data.random_shift` 0, `data.random_flip` false)" if rec["augmented"] == 0
           else f"Augmentation in {rec['augmented']} of {rec['runs']} runs")
    return (f"{distil} {aug}; batch {', '.join(map(str, rec['batch_size']))}. The recipe "
            "(`configs/fashion_mnist.yaml`) was chosen on the test top-1 of one seed at 10,000 images and 4 epochs "
            "(`docs/training.md`, \"Small images\"), so the test split is not untouched by this comparison.\n\n")


def holdout_note(summary: dict[str, Any]) -> str:
    """Which hold-out images the runs measured on, beside the online predictor's."""
    first = summary.get("holdout_first")
    if first:
        return f" (those after the first {first}, on which the online predictor measures during training)"
    s, rec = summary.get("settings") or {}, (summary.get("analysis") or {}).get("recipe") or {}
    if "bestup-online" in summary.get("methods", {}) and s.get("online_eval_batches") and rec.get("eval_batch_size"):
        n = int(s["online_eval_batches"]) * int(rec["eval_batch_size"])
        return (f" (the first ones: in the BestUp-3 (online predictor) runs the online predictor measured its subnets "
                f"on the first {n} of them during training, so {n} of the {summary.get('holdout_images')} images that "
                "score those runs also steered their sampling; "
                "`benchmarks/sampling_runs.py` now measures every hold-out image after the online predictor's)")
    return ""


def power_section(summary: dict[str, Any], out: Path) -> str:
    """The page's section on what the comparison can test ("" without an analysis)."""
    pw = (summary.get("analysis") or {}).get("power")
    if not pw or not math.isfinite(pw["paired_sd_hv_front"]):
        return ""
    sd, span = pw["paired_sd_hv_front"], pw["span_test"]
    rows = "\n".join(f"| {n} | ± {v['half_width']:.2f} | {v['detectable']:.2f} |" for n, v in pw["by_seeds"].items())
    text = f"""## What this comparison can and cannot test

The per-seed differences to uniform of the searched front's hypervolume have a pooled standard
deviation of {sd:.2f} points (HV x 100; the {len(summary['paired_vs_uniform'])} attentive methods, {pw['paired_sd_df']} degrees of freedom). Two
numbers follow from it, and they differ: the half-width of the 95% interval of a mean of n paired
differences, and the smallest true difference that n seeds detect with {100 * pw['power']:.0f}% power (paired
two-sided t-test at {100 * pw['alpha']:.0f}%, noncentral t; `benchmarks/sampling_power.py`):

| seeds | 95% interval half-width | detectable at {100 * pw['power']:.0f}% power |
|---|---|---|
{rows}

With 3 seeds a difference of 1-2 points at a fixed FLOPs budget is not excluded: the intervals
above reach past ±1. The whole space spans {span['mean']:.2f} points of test top-1 from the min to the
max subnet (mean of {span['runs']} runs, {span['min']:.2f}-{span['max']:.2f}).
"""
    paper = pw.get("paper")
    if paper:
        (lo, hi), (n_lo, n_hi) = paper["scaled_effect"], paper["seeds_needed"]
        (h_lo, h_hi), (f_lo, f_hi), (e_lo, e_hi) = paper["cpu_core_hours"], paper["front_top1"], paper["effect_points"]

        def seeds(n: int | None, h: float | None) -> str:
            return "more than 2000 seeds" if n is None or h is None else f"{n} seeds ({2 * n} runs, {h:.0f} core-hours)"

        n_cmd = n_hi if n_hi is not None else 10
        text += f"""
The paper's effect, +{e_lo:g} to +{e_hi:g} points of top-1 for BestUp-3 over uniform on a front that spans
{f_lo:g}-{f_hi:g}% (A0 to A6; `{shown(out)}/{PAPER_FILE}` says where these come from), is {lo:.2f}-{hi:.2f}
points when scaled to this front's span. That is below what 3 seeds detect ({pw['by_seeds'][3]['detectable']:.2f}) and
below what 5 detect ({pw['by_seeds'][5]['detectable']:.2f}): **the claim is not testable at this data and space**
with these runs; they neither confirm nor rule out the paper's effect.

What would test it, at the measured paired spread: {seeds(n_hi, h_hi)} of uniform and BestUp-3 to detect
the upper end ({hi:.2f} points) with {100 * pw['power']:.0f}% power, {seeds(n_lo, h_lo)} for the lower end
({lo:.2f}); core-hours at the measured {pw['run_hours_cpu_core']:.2f} hours of one CPU core per run (mean of
the runs below). GPU-hours are not known: no run of this comparison has been timed on a GPU
(`GPU_CHECK_SAMPLING=1 bash benchmarks/gpu_check.sh` times one; a GPU run costs at most what the CPU run
does only if the GPU is faster, which is likely but unmeasured). The command for {n_cmd} seeds:

```
python {SCRIPT} --device cuda --jobs 8 --methods uniform,bestup --seeds {','.join(str(i) for i in range(n_cmd))} --train-size 54000 --epochs 8 --out benchmarks/results/sampling-gpu
```

A larger effect at this scale needs a task whose front spans more than {span['mean']:.1f} points (harder
data, a larger space or resolution), not only more seeds.
"""
    return text + "\n"


def hv_section(summary: dict[str, Any]) -> str:
    """The page's section on what the hypervolume averages and which subnets set it."""
    rows = (summary.get("analysis") or {}).get("hv_setters")
    if not rows:
        return ""
    lo, hi = summary.get("hv_bounds_mflops", [float("nan"), float("nan")])
    table = ["| run | front points | largest share: MFLOPs | its share | its top-1 | min subnet's share | max subnet's share |",
             "|---|---|---|---|---|---|---|"]
    small = []
    for r in rows:
        f = r["front"]
        table.append(f"| {r['method']} s{r['seed']} | {f['points']} | {f['top_mflops']:.2f} | {100 * f['top_share']:.0f}% | "
                     f"{f['top_top1']:.2f} | {100 * f['min_subnet_share']:.0f}% | {100 * f['max_subnet_share']:.0f}% |")
        if f["top_mflops"] <= lo + 0.05 * (hi - lo):
            small.append(f["top_share"])
    said = (f" In {len(small)} of {len(rows)} runs one subnet within the lowest 5% of the FLOPs range sets "
            f"{100 * min(small):.0f}-{100 * max(small):.0f}% of it." if small else "")
    return f"""## What the hypervolume averages, and which subnets set it

With the reference point (1, 1) and MFLOPs scaled {lo:.2f} -> 0 and {hi:.2f} -> 1, the hypervolume x 100 is the
mean over the FLOPs range of the best top-1 available at or below each cost: each front point holds
the strip from its own cost to the next better point's, so a point's share is the width of that
strip times its top-1. The max subnet sits at the reference cost and adds nothing; a small subnet
that the supernet scores above the middle of the range sets most of it.{said} Per run, on the searched
front (hold-out top-1; `benchmarks/sampling_power.py`, `hv_shares`):

{chr(10).join(table)}

So the hypervolume mostly compares how the supernets score a few small subnets, on the images the
run measured them on.

"""


def probe_analysis(summary: dict[str, Any]) -> str:
    """The ranking probe's gap profile, resolved pairs and tau's power, as page text ("" without)."""
    pr = (summary.get("analysis") or {}).get("probe")
    if not pr:
        return ""
    g, ps, tp = pr["gap_profile"], pr["pair_signs"], pr["tau_power"]
    prof = ["| probe subnet | MFLOPs | trained alone (seeds) | inherited, mean of runs | gap | 95% interval | runs' range |",
            "|---|---|---|---|---|---|---|"]
    for r in g["subnets"]:
        prof.append(f"| {r['name']} | {r['mflops']:.2f} | {r['standalone']:.2f} ({r['seeds']}) | {r['inherited']:.2f} "
                    f"({r['runs']}) | {r['gap']:+.2f} | [{r['ci95'][0]:+.2f}, {r['ci95'][1]:+.2f}] | "
                    f"{r['gap_runs'][0]:+.2f} to {r['gap_runs'][1]:+.2f} |")
    pairs = ["| pair | MFLOPs | trained alone: second - first | resolved above | runs ordering them the same way |",
             "|---|---|---|---|---|"]
    for p in ps["pairs"]:
        pairs.append(f"| {p['pair'][0]}, {p['pair'][1]} | {p['mflops'][0]:.2f}, {p['mflops'][1]:.2f} | "
                     f"{p['standalone_diff']:+.2f} | {p['resolved_above']:.2f} | {p['runs_agree']} of {p['runs']} |")
    share = f"{100 * ps['agree'] / ps['n']:.0f}%" if ps["n"] else "-"
    return f"""**The gap over FLOPs** (inherited - trained alone, every run; the interval adds the runs' spread,
normal at 1.96, and the standalone mean's seed noise, {g['standalone_sd']:.2f} points per seed from the subnets
trained with two seeds, {g['standalone_sd_df']} degrees of freedom):

{chr(10).join(prof)}

**Pairs whose standalone order is resolved** (|difference| above 1.96 x the seed noise of the
difference): {len(ps['pairs'])} of {ps['pairs_total']} pairs; the supernets order them as training alone does in
{ps['agree']} of {ps['n']} (run, pair) cases ({share}):

{chr(10).join(pairs)}

**Kendall tau has little power here.** Over {tp['subnets']} subnets spanning {tp['span']:.2f} points, with one standalone
seed ({tp['standalone_sd']:.2f} points of noise) and the test split's binomial noise ({tp['test_sd']:.2f}), a perfect
ranker reaches tau > 0 with two-sided p < 0.05 in {100 * tp['noise_removed']['power']:.0f}-{100 * tp['as_measured']['power']:.0f}% of
{tp['sims']} simulations (the true spread shrunk by the seed noise, or as measured), a random one in
{100 * tp['as_measured']['false_positive']:.0f}%: the per-run tau values are no finding either way; the gap profile
and the resolved pairs are what the probe says.

"""


# --------------------------------------------------------------------------- markdown
CONCLUSION_BEGIN = "<!-- conclusion: written by hand; kept when this page is regenerated -->"
CONCLUSION_END = "<!-- end of conclusion -->"
#: everything after this line is other results written by hand (e.g. transfer), kept on regeneration
OTHER_RESULTS = "<!-- other results: written by hand; kept when this page is regenerated -->"
PLACEHOLDER = "_To be written: what the numbers above say about the paper's claim._"
#: (metric, what it is) of the sentences comparing each attentive method with uniform
COMPARED = (("hv_front", "hypervolume of the searched front"), ("hv_fixed", "hypervolume of the fixed subnets"),
            ("hv_front_test", "hypervolume of the searched front on the test split"))


def fmt(stat: dict[str, Any] | None, digits: int = 2) -> str:
    """``mean ± std`` of a :func:`mean_std` (``mean`` alone for one value, ``-`` for none)."""
    if not stat or stat.get("mean") is None:
        return "-"
    sd = stat.get("std")
    return f"{stat['mean']:.{digits}f}" + (f" ± {sd:.{digits}f}" if sd is not None else "")


def fmt_diff(d: dict[str, Any] | None) -> str:
    if not d:
        return "-"
    return f"{d['mean']:+.2f}" + (f" ± {d['std']:.2f}" if d["std"] is not None else "")


def fmt_seconds(s: float) -> str:
    return f"{s / 60:.1f} min" if s >= 90 else f"{s:.0f} s"


def comparison_lines(summary: dict[str, Any]) -> list[str]:
    """Each attentive method minus uniform, paired by seed, as sentences computed from the numbers."""
    lines = []
    for m, diffs in summary["paired_vs_uniform"].items():
        for key, what in COMPARED:
            p = diffs.get(key)
            if not p:
                continue
            head = f"- {METHODS[m][0]} minus uniform, {what}: {p['mean']:+.2f}"
            if p["std"] is None:
                lines.append(f"{head} points (HV x 100) from {p['n']} seed: no spread, hence no interval.")
                continue
            lo, hi = p["ci95"]
            verdict = ("above 0: agrees with the claim" if lo > 0 else "below 0: contradicts the claim" if hi < 0
                       else "contains 0: these seeds cannot tell")
            lines.append(f"{head} ± {p['std']:.2f} points (HV x 100; mean ± std of the per-seed differences, "
                         f"{p['n']} seeds); 95% interval [{lo:+.2f}, {hi:+.2f}], {verdict}; higher than uniform "
                         f"in {p['positive']} of {p['n']} seeds.")
    if not lines:
        return ["- (no attentive method shares a seed with uniform yet)"]
    with_t = [p for d in summary["paired_vs_uniform"].values() for p in d.values() if p and p["t_crit"]]
    if with_t:
        n, t = max((p["n"], p["t_crit"]) for p in with_t)
        lines.append(f"- How sure {n} seeds let us be: the 95% interval of a mean of {n} paired differences is "
                     f"± {t:.2f} x std / sqrt({n}) = ± {t / math.sqrt(n):.2f} x their seed-to-seed std (t with {n - 1} "
                     f"degree{'s' if n != 2 else ''} of freedom). That half-width is not the smallest difference these "
                     "seeds can detect, which is larger (\"What this comparison can and cannot test\" below).")
    return lines


def markdown_tables(summary: dict[str, Any]) -> str:
    """The tables of a summary: per method the mean ± std over seeds, then the paired differences."""
    budgets = summary.get("budgets_mflops", [])
    methods = summary["methods"]
    test_hv = any(s["metrics"].get("hv_front_test", {}).get("mean") is not None for s in methods.values())
    head = ["method", "seeds", "HV fixed subnets", "HV searched front", *(["HV front, test"] if test_hv else []),
            "min subnet", "max subnet", "min, test", "max, test"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in methods.values():
        k = s["metrics"]
        cells = [s["label"], ",".join(map(str, s["seeds"])), fmt(k["hv_fixed"]), fmt(k["hv_front"]),
                 *([fmt(k.get("hv_front_test"))] if test_hv else []), fmt(k["min_top1"]), fmt(k["max_top1"]),
                 fmt(k["min_test_top1"]), fmt(k["max_test_top1"])]
        lines.append("| " + " | ".join(cells) + " |")
    head = ["best subnet under", *[f"{b:.2f} MFLOPs: {w}" for b in budgets for w in ("hold-out", "test")],
            *[f"fixed subnets, {b:.2f}" for b in budgets]]
    lines += ["", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in methods.values():
        k = s["metrics"]
        cells = [s["label"], *[fmt(k.get(f"budget{i}_{w}")) for i in range(len(budgets)) for w in ("top1", "test_top1")],
                 *[fmt(k.get(f"budget{i}_fixed_top1")) for i in range(len(budgets))]]
        lines.append("| " + " | ".join(cells) + " |")
    if summary["paired_vs_uniform"]:
        keys = ["hv_front", "hv_fixed", *(["hv_front_test"] if test_hv else []), "min_top1", "max_top1",
                *[f"budget{i}_{w}" for i in range(len(budgets)) for w in ("top1", "test_top1")]]
        head = ["minus uniform, paired by seed", "HV searched front", "HV fixed subnets",
                *(["HV front, test"] if test_hv else []), "min subnet", "max subnet",
                *[f"{b:.2f} MFLOPs: {w}" for b in budgets for w in ("hold-out", "test")]]
        lines += ["", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for m, d in summary["paired_vs_uniform"].items():
            lines.append("| " + " | ".join([METHODS[m][0], *[fmt_diff(d.get(k)) for k in keys]]) + " |")
    return "\n".join(lines) + "\n"


def budget_label(summary: dict[str, Any]) -> str:
    """A comparison's budget in words: its training images and epochs."""
    train = summary.get("train") or {}
    size, epochs = train.get("train_size"), train.get("epochs")
    return f"{size:,} images, {epochs} epochs" if isinstance(size, int) else f"{epochs} epochs"


def both_budgets_table(summary: dict[str, Any]) -> str:
    """Markdown: per method its row at this budget and, labelled below it, at the earlier budget
    (``summary["earlier"]``); "" without an earlier comparison."""
    earlier = summary.get("earlier")
    if not earlier:
        return ""
    blocks = ((f"this: {budget_label(summary)}", summary), (f"earlier: {budget_label(earlier)}", earlier))
    head = ["method", "budget", "seeds", "HV fixed subnets", "HV searched front", "min, test", "max, test",
            "HV searched front minus uniform, paired"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m, (label, _) in METHODS.items():
        for name, summ in blocks:
            s = summ["methods"].get(m)
            if s is None:
                continue
            k = s["metrics"]
            diff = "—" if m == BASELINE else fmt_diff((summ["paired_vs_uniform"].get(m) or {}).get("hv_front"))
            lines.append("| " + " | ".join([label, name, ",".join(map(str, s["seeds"])), fmt(k["hv_fixed"]),
                                            fmt(k["hv_front"]), fmt(k["min_test_top1"]), fmt(k["max_test_top1"]),
                                            diff]) + " |")
    return "\n".join(lines) + "\n"


def earlier_section(summary: dict[str, Any]) -> str:
    """The page's section that sets this comparison beside an earlier one ("" without one)."""
    table = both_budgets_table(summary)
    if not table:
        return ""
    out = summary["earlier"]["out"]
    sha = [(x.get("settings") or {}).get("config_sha256") for x in (summary, summary["earlier"])]
    recipe = (" The two were trained with different training configs (another `config_sha256` in their"
              " `plan.json`)." if sha[0] != sha[1] else "")
    return f"""## Both budgets: this comparison and the earlier one

Every method at this budget and, labelled below it, at the earlier budget of `{out}` ({len(summary['earlier']['runs'])}
runs; their results in `{out}/runs/`, the full tables in `{out}/summary.md`). Test top-1 in %,
hypervolume x 100, mean ± std over seeds; the last column is the difference to uniform paired by seed.{recipe}

{table}
"""


def wall_span(summary: dict[str, Any]) -> str:
    """``; X h from the first run's start to the last one's finish`` (each start: its finish less its
    total; "" when the runs do not say when they finished)."""
    import datetime as dt

    spans = []
    for r in summary["runs"]:
        try:
            end = dt.datetime.strptime(str(r.get("finished")), "%Y-%m-%d %H:%M:%S").timestamp()
        except ValueError:
            return ""
        spans.append((end - float(r["total_s"]), end))
    if not spans:
        return ""
    hours = (max(e for _, e in spans) - min(s for s, _ in spans)) / 3600
    return f"; {hours:.1f} h of wall time from the first run's start to the last run's finish"


def timing_table(summary: dict[str, Any]) -> str:
    lines = ["| run | train | fixed subnets | search | test | total | threads | load average, start → end |",
             "|---|---|---|---|---|---|---|---|"]
    for r in summary["runs"]:
        la = r.get("load_average") or {}
        load = " → ".join(f"{x[0]:.1f}" if x else "?" for x in (la.get("start"), la.get("end")))
        lines.append(f"| {r['method']} s{r['seed']} | {fmt_seconds(r['train_s'])} | {fmt_seconds(r['measure_s'])} | "
                     f"{fmt_seconds(r['search_s'])} | {fmt_seconds(r['test_s'])} | {fmt_seconds(r['total_s'])} | "
                     f"{r.get('threads')} | {load} |")
    return "\n".join(lines) + "\n"


def ranking_section(summary: dict[str, Any], out: Path) -> str:
    """The probe's text and tables for the page (what is missing, when it is)."""
    how = (f"The {(summary.get('settings') or {}).get('probe_subnets', 'probe')} subnets of `{shown(out)}/probe_archs.json` "
           "(evenly spaced ranks of MFLOPs, min and max included) are measured on the test split in every run "
           "(inherited: the supernet's weights, BN recalibrated) and trained alone from scratch at the same budget "
           f"(`attentivenas finetune --init scratch --distill none --epochs {(summary.get('settings') or {}).get('epochs')}`, "
           f"into `{shown(out)}/probe/`). Kendall tau and Spearman rho between the two rankings, and the gap "
           "inherited - trained alone in points; `attentivenas ranking --checkpoint CKPT --probe PROBE` (a probe file or a folder of finetune runs) "
           "measures the same for any checkpoint (`docs/search.md`).")
    table = probe_table(summary, {m: v[0] for m, v in METHODS.items()})
    if table:
        n = summary["ranking"]["standalone_subnets"]
        return f"{how} Subnets trained alone so far: {n}.\n\n{table}\n{probe_analysis(summary)}"
    if "ranking" not in summary:
        return f"{how}\n\nNo subnet of the probe has been trained alone in `{shown(out)}/probe/` yet.\n"
    return f"{how}\n\nNo run has measured at least 3 of the subnets trained alone yet.\n"


def kept_conclusion(path: Path) -> str:
    """The hand-written conclusion of an existing page (between the markers), or a placeholder."""
    if path.is_file():
        text = path.read_text()
        if CONCLUSION_BEGIN in text and CONCLUSION_END in text:
            return text.split(CONCLUSION_BEGIN, 1)[1].split(CONCLUSION_END, 1)[0].strip("\n")
    return PLACEHOLDER


def kept_other_results(path: Path) -> str:
    """The hand-written results after :data:`OTHER_RESULTS` on an existing page ("" when none)."""
    if path.is_file():
        text = path.read_text()
        if OTHER_RESULTS in text:
            return text.split(OTHER_RESULTS, 1)[1].strip("\n")
    return ""


def results_page(summary: dict[str, Any], out: Path, png: str, docs: Path, conclusion: str,
                 other: str = "") -> str:
    """``docs/results.md``: the claim, what was run, tables, plot, computed comparison, the conclusion
    (kept), commands, machine and wall time."""
    s = summary.get("settings") or {}
    mach = summary["machine"]
    budgets = summary.get("budgets_mflops", [])
    lo, hi = summary.get("hv_bounds_mflops", [float("nan"), float("nan")])
    commands = list(dict.fromkeys(r["command"] for r in summary["runs"] if r.get("command")))
    earlier = summary.get("earlier")
    commands.append(f"python {SCRIPT} --report --out {shown(out)} --docs {shown(docs)}"
                    + (f" --earlier {earlier['out']}" if earlier else ""))
    loads = [x[0] for r in summary["runs"] for x in ((r.get("load_average") or {}).get("start"),
                                                     (r.get("load_average") or {}).get("end")) if x]
    load = (f"1-minute load average {min(loads):.1f} to {max(loads):.1f} at the starts and ends of the runs"
            if loads else "load not recorded")
    seeds = sorted({r["seed"] for r in summary["runs"]})
    train = summary.get("train", {})
    extra = "".join(f", `{x}`" for x in s.get("set", []))
    tested = "the best subnet under each budget, the min and max subnets" + (
        " and every subnet of the front" if s.get("test_front") else "")
    return f"""# Results: attentive sampling vs uniform sampling on Fashion-MNIST

<!-- Written by `python {SCRIPT} --report --docs {shown(docs)}` from {shown(out)}/runs/*/result.json.
     Only the conclusion section is kept when the page is written again. -->

The claim tested (AttentiveNAS, Wang et al., CVPR 2021): sampling the sandwich rule's middle
subnets attentively, BestUp-k (the best of k candidates at a FLOPs target) or WorstUp-k (the worst),
gives a better accuracy / FLOPs Pareto front than uniform sampling; their stage 1 trains with
BestUp-3 ranked by the mini-batch loss together with the sandwich rule's in-place distillation
(whether these runs distilled is under "What was run"). BestUp-3 ranked by a predictor fitted during
training (`sampler.estimator=online`) is this package's addition.

## What was run

{len(summary['runs'])} runs: {'; '.join(v['label'] for v in summary['methods'].values())}; seeds {', '.join(map(str, seeds))}.
One budget for all: `{Path(s.get('config', '?')).name}` (tiny space, {lo:.2f}-{hi:.2f} MFLOPs) with
{s.get('train_size')} training images (class-stratified, the same for every seed), {s.get('epochs')} epochs,
batch {train.get('batch_size')}, LR {train.get('lr')} per 256 images{extra}. Per run, every subnet BN-recalibrated on
{s.get('calib_batches')} batches of training images:

* (a) the same {s.get('archs')} fixed subnets (spread over the FLOPs range, min and max included;
  `{shown(out)}/archs.json`) measured on {summary.get('holdout_images')} hold-out images{holdout_note(summary)};
* (b) NSGA-II (population {s.get('pop_size')}, {s.get('generations')} generations) on a predictor fitted to (a)
  ({', '.join(s.get('predictor_kinds', []))}; the best by {s.get('folds')}-fold Kendall tau), its
  {s.get('remeasure_top')} best candidates and the best 3 under each budget re-measured on the same hold-out
  images; the front is built from every measured subnet, those of (a) included, so it is never below (a)'s;
* on {summary.get('test_images')} test images: {tested}. Budgets: {', '.join(f'{b:.2f}' for b in budgets)} MFLOPs
  (25, 50 and 75% of the range).

{recipe_paragraph(summary)}Hypervolume (HV, x 100) of the non-dominated (error, MFLOPs) points, with error = (100 - top-1) / 100,
MFLOPs scaled {lo:.3f} -> 0 and {hi:.3f} -> 1 and the reference point (1, 1): the search's own
measure (`attentivenas.search.front_hypervolume`). Accuracies are top-1 in %, on the hold-out
unless marked test; each cell is the mean ± std over seeds.

## Tables

{markdown_tables(summary)}
## Fronts

![searched fronts per method]({png})

## Computed comparison with uniform

{chr(10).join(comparison_lines(summary))}

{power_section(summary, out)}{hv_section(summary)}{earlier_section(summary)}## How far each supernet ranks subnets as training alone does (the ranking probe)

{ranking_section(summary, out)}
## Conclusion

{CONCLUSION_BEGIN}
{conclusion}
{CONCLUSION_END}

## How it was run

```
{chr(10).join(commands)}
```

Machine: {mach.get('cpu')}, {mach.get('cores')} cores, {mach.get('platform')}, Python {mach.get('python')},
torch {mach.get('torch')}; {load}.

Wall time: {fmt_seconds(summary['wall_s_total'])} for the {len(summary['runs'])} runs (the phases of each run,
summed over the invocations that worked on it){wall_span(summary)}:

{timing_table(summary)}
Raw results: `{shown(out)}/runs/<method>-s<seed>/result.json`; their aggregate: `{shown(out)}/summary.json`.
### On a GPU

`--device cuda` trains and measures every run on the GPU, the training images held there
(`data.on_device`: each batch gathered, shifted and flipped on the GPU, as `docs/training.md` says),
and `--jobs N` runs N runs at once in worker processes that share the GPU (on this 2-core CPU,
`--jobs 2 --threads 1` runs two at once, one thread each). The whole comparison with 5 seeds, all
54,000 training images and 8 epochs is meant to take at most 8 minutes on one H200; it has not been
timed yet: `GPU_CHECK_SAMPLING=1 bash benchmarks/gpu_check.sh` runs it under a time limit and writes
its wall time to `gpu_check.json` (`sampling.wall_s`).

```
python benchmarks/reproduce_sampling.py --device cuda --jobs 8 --seeds 0,1,2,3,4 --train-size 54000 --epochs 8 --out benchmarks/results/sampling-gpu
```

{OTHER_RESULTS}
{other}
"""


def summarise(out: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The results in ``out`` and their :func:`aggregate` with its plan and ranking probe."""
    results = load_results(out)
    if not results:
        raise UserError(f"no results in {out}/runs/*/result.json yet")
    plan_path = out / "plan.json"
    plan = read_json_file(plan_path, "results plan", UserError).get("settings") if plan_path.is_file() else None
    summary = aggregate(results, plan, standalone_top1(out))
    summary["analysis"] = analysis(results, summary, out)
    return results, summary


def write_report(out: Path, docs: str | None, earlier: str | None = None) -> dict[str, Any]:
    """Aggregate ``OUT/runs/*/result.json`` into ``OUT/summary.json|md``, ``OUT/fronts.png`` (and
    ``docs``); ``earlier``: another comparison's results folder (an earlier budget), each method's
    numbers there shown beside this one's."""
    results, summary = summarise(out)
    if earlier is not None:
        base = summarise(Path(earlier))[1]
        summary["earlier"] = {"out": shown(Path(earlier)), **{k: base.get(k) for k in (
            "settings", "train", "methods", "paired_vs_uniform", "runs")}}
    atomic_write_json(out / "summary.json", summary)
    probe = probe_table(summary, {m: v[0] for m, v in METHODS.items()})
    both = both_budgets_table(summary)
    atomic_write_text(out / "summary.md", markdown_tables(summary) + "\n" + "\n".join(comparison_lines(summary)) + "\n"
                      + (f"\nBoth budgets (this, then earlier: {summary['earlier']['out']}):\n\n{both}" if both else "")
                      + (f"\nRanking probe (test top-1; inherited = in the supernet, BN recalibrated):\n\n{probe}"
                         if probe else "") + "\n" + power_section(summary, out) + hv_section(summary)
                      + probe_analysis(summary))
    plot_fronts(results, out / "fronts.png")
    log(f"report: {len(results)} runs -> {out / 'summary.json'}, {out / 'summary.md'}, {out / 'fronts.png'}")
    if docs is not None:
        page = Path(docs)
        png = page.with_name(f"{page.stem}_fronts.png")
        plot_fronts(results, png)
        atomic_write_text(page, results_page(summary, out, png.name, page, kept_conclusion(page),
                                                  kept_other_results(page)))
        log(f"report: {page} and {png}")
    return summary
