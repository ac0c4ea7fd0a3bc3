"""The guide's walk (docs/guide.md) timed step by step: a small-image ImageFolder (by default Fashion-MNIST
as 28x28 PNGs, 3,000 training and 1,000 val/ images, from ``benchmarks/make_imagefolder.py``) through
``init``, ``train``, a whole-space latency table from the checkpoint, ``search`` under a latency budget
relative to the space (``p50``), ``finetune`` of the pick, a bundle ``export`` and ``load_pretrained``'s
``classify`` on the files of val/, beside logistic regression on the same pixels.

    python benchmarks/user_journey.py --folder /tmp/fm-folder --runtime onnxruntime \
        --out benchmarks/results/user-journey

Every command runs with one thread in a fresh process, as the guide writes it. Writes ``OUT/result.json``
(each step's command and wall time, the machine's load average before and after it, the final top-1s)
and the commands' logs under ``OUT/work/`` (``--work`` elsewhere).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

from imagefolder_small import logistic_regression

ROOT = Path(__file__).resolve().parents[1]
#: the bundle's runtime file for the table's runtime (``export --with``)
BUNDLE_FORMAT = {"onnxruntime": "onnx", "executorch": "executorch", "torch": "torch-export"}


def step(name: str, args: list[str], work: Path, steps: list[dict[str, object]]) -> str:
    """Run ``attentivenas ARGS`` (one thread), record its wall time and the load around it; stdout."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    with open(work / f"{name}.log", "w") as log:
        proc = subprocess.run([sys.executable, "-m", "attentivenas", *args], stdout=subprocess.PIPE, stderr=log,
                              text=True, env=env)
    wall = time.perf_counter() - t0
    (work / f"{name}.out").write_text(proc.stdout)
    steps.append({"step": name, "command": "attentivenas " + " ".join(args), "wall_s": round(wall, 1),
                  "load_before": round(load0, 2), "load_after": round(os.getloadavg()[0], 2)})
    print(f"{name}: {wall:.0f} s", file=sys.stderr)
    if proc.returncode != 0:
        raise SystemExit(f"attentivenas {' '.join(args)} failed ({proc.returncode}); see {work / (name + '.log')}")
    return proc.stdout


def bundle_top1(bundle: Path, val: Path) -> tuple[float, int, float]:
    """The bundle's top-1 on the image files of ``val`` through ``load_pretrained(...).classify``, the
    image count, and the seconds it took."""
    from attentivenas import load_pretrained

    model = load_pretrained(bundle)
    files = [(f, c.name) for c in sorted(val.iterdir()) if c.is_dir() for f in sorted(c.iterdir())]
    t0 = time.perf_counter()
    labels = [r["label"] for r in model.classify([str(f) for f, _ in files])]
    wall = time.perf_counter() - t0
    right = sum(lb == c for lb, (_, c) in zip(labels, files, strict=True))
    return 100.0 * right / len(files), len(files), wall


def keep(work: Path) -> None:
    """Copy the small records of the run folders (which hold checkpoints and models, not kept in git)
    beside the logs: the front and its noise, the fine-tune's result, the bundle's config and card."""
    for src in ("search/pareto.json", "search/summary.json", "tuned/result.json", "bundle/config.json",
                "bundle/README.md"):
        if (work / src).exists():
            shutil.copyfile(work / src, work / src.replace("/", "_"))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--folder", type=Path, default=Path("/tmp/fm-folder"))
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "user-journey")
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--runtime", default="onnxruntime", choices=sorted(BUNDLE_FORMAT),
                    help="the latency table's runtime (the bundle ships its file)")
    ap.add_argument("--budget", default="p50", help="--max-latency of the search")
    ap.add_argument("--train", nargs="*", default=[], help="overrides of the config init writes")
    args = ap.parse_args(argv)
    work = (args.work or args.out / "work").resolve()
    work.mkdir(parents=True, exist_ok=True)
    if not args.folder.exists():
        from make_imagefolder import make_fashion_folder

        make_fashion_folder(args.folder)
    steps: list[dict[str, object]] = []
    cfg, run = work / "mine.yaml", work / "run"
    ckpt = run / "checkpoints" / "last.pt"
    step("init", ["init", "--data", str(args.folder), "--out", str(cfg), "--force"], work, steps)
    step("train", ["train", "--config", str(cfg), "--out", str(run), "runtime.threads=1", "log.progress=false",
                   *args.train], work, steps)
    table = work / f"{args.runtime}.json"
    built = json.loads(step("latency_table", ["latency", "build-table", "--checkpoint", str(ckpt), "--runtime",
                                              args.runtime, "--out", str(table), "--json"], work, steps))
    search = work / "search"
    step("search", ["search", "--checkpoint", str(ckpt), "--latency-table", str(table), "--max-latency", args.budget,
                    "--objectives", "latency", "--threads", "1", "--out", str(search)], work, steps)
    pareto = json.loads((search / "pareto.json").read_text())
    pick = max(pareto, key=lambda e: e["accuracy"])
    arch = work / "pick.json"
    arch.write_text(json.dumps(pick["arch"]))
    tuned = work / "tuned"
    step("finetune", ["finetune", "--checkpoint", str(ckpt), "--arch", str(arch), "--threads", "1", "--out",
                      str(tuned)], work, steps)
    bundle = work / "bundle"
    step("export", ["export", "--checkpoint", str(tuned / "checkpoints" / "last.pt"), "--format", "bundle", "--with",
                    BUNDLE_FORMAT[args.runtime], "--out", str(bundle)], work, steps)
    top1, images, classify_s = bundle_top1(bundle, args.folder / "val")
    result = {
        "folder": str(args.folder), "runtime": args.runtime, "budget": args.budget,
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "python": platform.python_version()},
        "steps": steps,
        "total_wall_s": round(sum(float(s["wall_s"]) for s in steps), 1),
        "latency_range_ms": built.get("latency_range_ms"), "table_ops": built.get("ops"),
        "pick": {k: pick.get(k) for k in ("accuracy", "latency_ms", "mflops", "accuracy_ci95") if k in pick},
        "finetune": json.loads((tuned / "result.json").read_text()).get("after"),
        "finetune_before": json.loads((tuned / "result.json").read_text()).get("before"),
        "bundle_test_top1": round(top1, 2), "test_images": images, "classify_s": round(classify_s, 2),
        "logistic_regression": logistic_regression(args.folder),
    }
    keep(work)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "result.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "steps"}, indent=1))


if __name__ == "__main__":
    main()
