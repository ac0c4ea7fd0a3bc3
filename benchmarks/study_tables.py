"""The Markdown tables of ``docs/results.md`` and ``docs/training.md`` that the study scripts back,
printed from their records (nothing measured here): ``--what probe|finetune|transfer|recipe``.

    python benchmarks/study_tables.py --what probe      # benchmarks/results/fashion-10k/ranking.json
    python benchmarks/study_tables.py --what finetune   # benchmarks/results/fashion-10k/finetune-*/
    python benchmarks/study_tables.py --what transfer   # benchmarks/results/transfer/runs/
    python benchmarks/study_tables.py --what recipe     # benchmarks/results/recipe/rows/
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from recipe_rows import ROWS

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def _top1(record: dict[str, Any]) -> float:
    return float(record["output"]["top1"])


def probe_table(folder: Path) -> str:
    """Per probe subnet: inherited and standalone test top-1 and the gap; then tau, rho, mean gap."""
    rank = _load(folder / "ranking.json")["output"]
    rows = sorted(rank["subnets"], key=lambda r: r["mflops"])
    lines = ["| probe subnet | MFLOPs | inherited (supernet) | trained alone | gap (points) |", "|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['mflops']:.2f} | {r['inherited_top1']:.2f} | {r['standalone_top1']:.2f} | "
                     f"{r['inherited_top1'] - r['standalone_top1']:+.2f} |")
    walls = [_load(p)["run"]["wall_s"] for p in sorted((folder / "probe").glob("*/result.json"))]
    lines += ["", f"Kendall tau {rank['kendall_tau']:.2f} (p = {rank['kendall_p']:.2f}), Spearman rho "
              f"{rank['spearman_rho']:.2f} (p = {rank['spearman_p']:.2f}), mean gap {rank['mean_gap']:+.2f} points, "
              f"mean absolute gap {rank['mean_abs_gap']:.2f}; the {len(walls)} standalone runs took "
              f"{min(walls) / 60:.1f}-{max(walls) / 60:.1f} min each, {sum(walls) / 60:.1f} min in all"]
    return "\n".join(lines)


def finetune_table(folder: Path) -> str:
    """Per Pareto subnet: hold-out and test before, test after KD and after labels only."""
    kd = {p.stem: _load(p) for p in sorted((folder / "finetune-kd").glob("subnet_*.json"))}
    none = {p.stem: _load(p) for p in sorted((folder / "finetune-none").glob("subnet_*.json"))}
    lines = ["| subnet | MFLOPs | hold-out before | test before | test after, KD from the max subnet "
             "| test after, labels only | hold-out after, KD / labels |", "|---|---:|---:|---:|---:|---:|---:|"]
    walls: dict[str, list[float]] = {"kd": [], "none": []}
    for name in sorted(set(kd) | set(none), key=lambda n: int(n.split("_")[1])):
        ref = kd.get(name) or none[name]
        before_t = ref["before"]["test"]["top1"]

        def after(d: dict[str, Any] | None, split: str = "test", delta: bool = True, before_t: float = before_t) -> str:
            if d is None:
                return "-"
            v = d["after"][split]["top1"]
            return f"{v:.2f} ({v - before_t:+.2f})" if delta else f"{v:.2f}"

        for k, d in (("kd", kd.get(name)), ("none", none.get(name))):
            if d is not None:
                walls[k].append(d["run"]["wall_s"])
        lines.append(f"| {name} | {ref['mflops']:.2f} | {ref['before']['holdout']['top1']:.2f} | {before_t:.2f} | "
                     f"{after(kd.get(name))} | {after(none.get(name))} | "
                     f"{after(kd.get(name), 'holdout', False)} / {after(none.get(name), 'holdout', False)} |")
    lines += ["", "wall: " + ", ".join(f"{k} {sum(v) / 60:.1f} min for {len(v)}" for k, v in walls.items() if v)]
    teacher = _top1(_load(folder / "supernet" / "eval-max-holdout.json"))  # the max subnet, BN recalibrated
    lines += [f"teacher (max subnet) hold-out top-1 {teacher:.2f}; its margin over each subnet before: " + ", ".join(
        f"{n} {teacher - d['before']['holdout']['top1']:+.2f}" for n, d in kd.items())]
    return "\n".join(lines)


def _span(run: dict[str, Any]) -> str:
    return "?" if run.get("train_span_s") is None else f"{run['train_span_s']:.0f}"


def transfer_table(folder: Path) -> str:
    """Per method and epochs: min / max test top-1 per seed (mean), hypervolume, front size, times."""
    runs = [_load(p) for p in sorted((folder / "runs").glob("*.json"))]
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault((r["method"], r["epochs"]), []).append(r)
    lines = ["| run (E epochs) | seeds | min subnet test top-1 (mean) | max subnet test top-1 (mean) | "
             "max subnet hold-out (mean) | front hypervolume (mean) | Pareto models | training s |",
             "|---|---|---|---|---|---|---|---|"]

    def cell(vals: list[float], fmt: str = "{:.2f}") -> str:
        return " / ".join(fmt.format(v) for v in vals) + f" ({fmt.format(float(np.mean(vals)))})"

    for key in sorted(groups, key=lambda k: (-k[1], k[0] != "transfer")):
        rs = sorted(groups[key], key=lambda r: r["seed"])
        lines.append(
            f"| {key[0]}, {key[1]} | {'/'.join(str(r['seed']) for r in rs)} | "
            f"{cell([_top1(r['evaluate']['min-test']) for r in rs])} | "
            f"{cell([_top1(r['evaluate']['max-test']) for r in rs])} | "
            f"{cell([_top1(r['evaluate']['max-holdout']) for r in rs])} | "
            f"{cell([r['search']['hypervolume'] for r in rs], '{:.4f}')} | "
            f"{' / '.join(str(len(r['models'])) for r in rs)} | "
            f"{' / '.join(_span(r) for r in rs)} |")
    ev = runs[0]["evaluate"]["max-test"]["output"] if runs else {}
    lines += ["", f"test images {ev.get('samples')}, BN recalibrated on {ev.get('calib_batches')} batches "
              f"({ev.get('calib_images')} training images)"]
    return "\n".join(lines)


def defaults_rows(folder: Path) -> list[str]:
    """The recipe table's rows from ``fashion_10k_study.py``: the new defaults (seed 0) and the max
    subnet trained alone (the probe's ``p7``)."""
    sup = folder / "supernet"
    if not (sup / "eval-max-test.json").exists():
        return []
    cfg = yaml.safe_load((sup / "config.yaml").read_text())
    ev = {f"{a}-{s}": _load(sup / f"eval-{a}-{s}.json") for a in ("min", "max") for s in ("holdout", "test")}
    train = _load(sup / "train.json")
    d = cfg["data"]
    rows = [f"| the new defaults, seed {cfg['seed']} | {d['batch_size']} | {cfg['loss']['distill_warmup_epochs']:g} | "
            f"{'on' if d['random_shift'] or d['random_flip'] else 'off'} | {_top1(ev['min-test']):.2f} | "
            f"{_top1(ev['max-test']):.2f} | {_top1(ev['min-holdout']):.2f} / {_top1(ev['max-holdout']):.2f} | "
            f"{train['wall_s'] / 60:.1f} min | `{sup.relative_to(ROOT)}/` |"]
    p7 = folder / "probe" / "p7" / "result.json"
    if p7.exists():
        r = _load(p7)
        rows.append(f"| the space's max subnet alone (`finetune --init scratch --distill none`), new defaults | "
                    f"{r['batch_size']} | - | off | - | {r['after']['test']['top1']:.2f} | - / "
                    f"{r['after']['holdout']['top1']:.2f} | {r['run']['wall_s'] / 60:.1f} min with its evaluations | "
                    f"`{p7.relative_to(ROOT)}` ({r['mflops']:.2f} MFLOPs) |")
    return rows


def recipe_table(folder: Path) -> str:
    """One line per recipe row: batch, w, augmentation, min / max test and hold-out top-1, train time."""
    lines = ["| row | batch | `w` | augmentation | min subnet, test | max subnet, test | hold-out min / max | "
             "train time | record |", "|---|---:|---:|---|---:|---:|---|---:|---|"]
    lines += defaults_rows(RESULTS / "fashion-10k")
    order = list(ROWS)
    for p in sorted((folder / "rows").glob("*.json"), key=lambda p: order.index(p.stem) if p.stem in order else 99):
        r = _load(p)
        if r["kind"] == "cnn":
            o = r["reference"]["output"]
            d = o["data"]
            lines.append(f"| {r['label']} | {o['batch']} | - | {'on' if d['random_shift'] or d['random_flip'] else 'off'}"
                         f" | - | {o['test_top1']:.2f} | - / {o['holdout_top1']:.2f} | {o['train_s'] / 60:.1f} min "
                         f"| `{p.relative_to(ROOT)}` |")
            continue
        cfg = yaml.safe_load(r["config"])
        d, ev = cfg["data"], r["evaluate"]
        lines.append(f"| {r['label']} | {d['batch_size']} | {cfg['loss']['distill_warmup_epochs']:g} | "
                     f"{'on' if d['random_shift'] or d['random_flip'] else 'off'} | {_top1(ev['min-test']):.2f} | "
                     f"{_top1(ev['max-test']):.2f} | {_top1(ev['min-holdout']):.2f} / {_top1(ev['max-holdout']):.2f} | "
                     f"{r['train']['wall_s'] / 60:.1f} min | `{p.relative_to(ROOT)}` |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--what", choices=["probe", "finetune", "transfer", "recipe"], required=True)
    args = ap.parse_args()
    fn = {"probe": (probe_table, "fashion-10k"), "finetune": (finetune_table, "fashion-10k"),
          "transfer": (transfer_table, "transfer"), "recipe": (recipe_table, "recipe")}[args.what]
    print(fn[0](RESULTS / fn[1]))


if __name__ == "__main__":
    main()
