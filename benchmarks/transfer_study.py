"""Transfer against training from scratch on the embedded digits (``docs/results.md``, "Transfer";
``configs/transfer.yaml``): 3 seeds x {transfer, from scratch} x {4, 14} epochs of the quick start.

- transfer: ``attentivenas quickstart --config configs/transfer.yaml init_from=SOURCE seed=N --seed N
  optim.epochs=E runtime.threads=1`` (the classifier re-initialised; LR 0.4 per 256 images, warm-up
  0.5 epochs);
- from scratch: ``attentivenas quickstart seed=N --seed N optim.epochs=E runtime.threads=1`` (the
  quick start's recipe: LR 0.8, warm-up 1 epoch);

then the min and max subnet's top-1 on the hold-out and the test split (``attentivenas evaluate``,
BN recalibrated on 64 x 256 training crops, its defaults). The source is the 10,000-image, 4-epoch
Fashion-MNIST supernet of ``benchmarks/fashion_10k_study.py`` (its ``supernet/train.json`` gives its
command and sha256); the transfer runs wait for it. One record per run, ``OUT/runs/<method>-e<E>-s<N>.json``:
the commands, seeds, wall times and load, the source's and the run's checkpoint sha256, the line
that says what ``init_from`` kept, the search's hypervolume and front size, the exported models'
count and the evaluations. Skipped when finished; a killed run resumes (``quickstart`` resumes its
folder).

    OMP_NUM_THREADS=1 python benchmarks/transfer_study.py   # 4-epoch runs: 2.4-9.3 min each on a busy machine
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path
from typing import Any

from attentivenas.io import atomic_write_json
from measured_steps import CLI, ROOT, done, evaluate_ends, run_step, sha256

TIMES = re.compile(r"time: train (\d+)s, predictor (\d+)s, search (\d+)s, export (\d+)s")


def quickstart_output(stdout: str) -> dict[str, Any]:
    """The summary's times (seconds) and its last lines."""
    m = TIMES.search(stdout)
    times = dict(zip(("train_s", "predictor_s", "search_s", "export_s"), map(int, m.groups()), strict=True)) if m else {}
    return {"times": times, "stdout_tail": stdout.strip()[-3000:]}


def train_span(run_dir: Path) -> float | None:
    """Seconds from the run's start record to its last evaluation record in ``metrics.jsonl`` (the
    training, epoch-end checks included; a resumed run's pause included)."""
    times: dict[str, float] = {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec.get("kind") == "start" and "start" not in times:
            times["start"] = rec["time"]
        elif rec.get("kind") == "eval":
            times["eval"] = rec["time"]
    return round(times["eval"] - times["start"], 1) if len(times) == 2 else None


def backfill(out: Path, work: Path) -> None:
    """Add ``train_span_s`` to finished records written before it was recorded."""
    for path in sorted((out / "runs").glob("*.json")):
        rec = done(path)
        if rec is not None and "train_span_s" not in rec:
            rec["train_span_s"] = train_span(work / rec["name"])
            atomic_write_json(path, rec)


def wait_for(path: Path, poll_s: float = 30.0) -> dict[str, Any]:
    """The finished record at ``path``, waiting for it."""
    while (obj := done(path)) is None:
        print(f"waiting for {path}", flush=True)
        time.sleep(poll_s)
    return obj


def one_run(out: Path, work: Path, method: str, epochs: int, seed: int, source: Path | None) -> None:
    """Train + stage 2 + evaluations of one run; one record."""
    name = f"{method}-e{epochs}-s{seed}"
    dest = out / "runs" / f"{name}.json"
    if done(dest) is not None:
        print(f"skip (done): {dest}", flush=True)
        return
    run_dir, log = work / name, work / f"{name}.log"
    cmd = [CLI, "quickstart", "--out", str(run_dir), "--seed", str(seed)]
    if method == "transfer":
        assert source is not None
        cmd += ["--config", "configs/transfer.yaml", f"init_from={source}"]
    cmd += [f"seed={seed}", f"optim.epochs={epochs}", "runtime.threads=1"]
    extra = {"source_checkpoint_sha256": sha256(source)} if source is not None else {}
    rec: dict[str, Any] = {"name": name, "method": method, "epochs": epochs, "seed": seed, **extra}
    rec["quickstart"] = run_step(work / "records" / f"{name}-quickstart.json", cmd, seed=seed, log=log,
                                 collect=quickstart_output)
    ckpt = run_dir / "checkpoints" / "last.pt"
    rec["checkpoint_sha256"] = sha256(ckpt)
    rec["train_span_s"] = train_span(run_dir)
    rec["init_from_line"] = [line.strip() for line in log.read_text().splitlines() if line.startswith("init_from")]
    summary = json.loads((run_dir / "search" / "summary.json").read_text())
    rec["search"] = {k: summary[k] for k in ("pareto_size", "hypervolume", "hypervolume_reference", "n_measured")
                     if k in summary}
    rec["models"] = json.loads((run_dir / "models" / "index.json").read_text())
    rec["config"] = (run_dir / "config.yaml").read_text()
    rec["evaluate"] = evaluate_ends(ckpt, name, work, seed, log, rec["checkpoint_sha256"])
    rec["done"] = True
    atomic_write_json(dest, rec)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/transfer")
    ap.add_argument("--work", type=Path, default=ROOT / "runs/transfer")
    ap.add_argument("--source-record", type=Path, default=ROOT / "benchmarks/results/fashion-10k/supernet/train.json",
                    help="the record of the source supernet's training (fashion_10k_study.py)")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--epochs", default="4,14")
    ap.add_argument("--backfill-only", action="store_true", help="only add train_span_s to finished records")
    args = ap.parse_args()
    out, work = args.out.resolve(), args.work.resolve()
    out.mkdir(parents=True, exist_ok=True)
    if args.backfill_only:
        backfill(out, work)
        return
    seeds = [int(s) for s in args.seeds.split(",")]
    backfill(out, work)
    source: Path | None = None
    for epochs in (int(e) for e in args.epochs.split(",")):
        for seed in seeds:  # a pair per seed; from scratch first: it needs no source
            one_run(out, work, "scratch", epochs, seed, None)
            source = source or find_source(args.source_record.resolve(), out)
            one_run(out, work, "transfer", epochs, seed, source)


def find_source(record: Path, out: Path) -> Path:
    """The source checkpoint, once its training has finished, checked against its record."""
    source_rec = wait_for(record)
    source = ROOT / source_rec["checkpoint"]
    if sha256(source) != source_rec["checkpoint_sha256"]:
        raise SystemExit(f"{source} is not the checkpoint {record} recorded")
    atomic_write_json(out / "source.json", {"record": str(record.relative_to(ROOT)),
                                            "checkpoint": source_rec["checkpoint"],
                                            "checkpoint_sha256": source_rec["checkpoint_sha256"],
                                            "command": source_rec["command"]})
    return source


if __name__ == "__main__":
    main()
