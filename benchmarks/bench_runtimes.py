"""Latency of exported subnets in every installed runtime, beside torchvision's MobileNetV3-Large.

For AttentiveNAS A0, A6 and the tiny space's largest subnet (1000 classes, random weights) and
torchvision's ``mobilenet_v3_large(weights=None)`` (about 217 MFLOPs), each runtime (PyTorch eager,
ONNX Runtime, ExecuTorch with XNNPACK, OpenVINO; those installed) gets the model exported at the
input shape (batch 1 and 32), loads it; the four models of a runtime and batch are then timed
together in the shared interleaved rounds of ``benchmarks/timing.py`` (2 rounds; each round warms a
model up and times its repeats; each model's round of lowest median is kept): the median and p90 in ms,
the microseconds per MFLOP per image, and that cost relative to MobileNetV3 in the same runtime and
batch (below 1: cheaper per MFLOP than MobileNetV3). MFLOPs are multiply-accumulates (the
authors' convention; MobileNetV3's counted the same way with ``torch.utils.flop_counter``).

``--precision fp32,int8`` adds INT8 rows: every model post-training quantized for the runtimes that
run INT8 (ExecuTorch PT2E/XNNPACK, ONNX Runtime QDQ, OpenVINO NNCF; :mod:`attentivenas.runtimes.quantize`,
calibrated on seeded random inputs, as ``latency --precision int8``); MobileNetV3 quantized the same
way is the INT8 reference (``x MobileNetV3`` compares within one runtime, precision and batch). A
runtime's fp32 and INT8 files are timed in the same interleaved rounds, so the ``INT8 speed-up``
column (fp32 median / INT8 median of the same model, runtime and batch) is a side-by-side ratio.
``--models`` picks a subset (MobileNetV3 is always kept as the reference).

    python benchmarks/bench_runtimes.py [--threads 1] [--batches 1,32] [--runtimes torch,onnxruntime]
                                        [--precision fp32|int8|fp32,int8] [--models a0,tiny-max]
                                        [--repeats 20] [--clock wall|cpu] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode
from torchvision.models import mobilenet_v3_large

from attentivenas.costs import count_flops
from attentivenas.latency import RUNTIMES, Runner, prepare, runtime_version, time_runner
from attentivenas.nn import Supernet
from attentivenas.runtimes.quantize import INT8_RUNTIMES, PRECISIONS
from attentivenas.runtimes.records import is_available
from attentivenas.space import ATTENTIVENAS_SPACE, TINY_SPACE, named_arch
from timing import interleaved_rounds, print_header

MODEL_KEYS = ("a0", "a6", "tiny-max")  #: what ``--models`` takes; MobileNetV3 is always measured


def models(keys: tuple[str, ...] = MODEL_KEYS) -> list[tuple[str, torch.nn.Module, int, float]]:
    """(name, model, resolution, MFLOPs) of the compared models (``keys`` of :data:`MODEL_KEYS`, then
    MobileNetV3), random weights, eval mode."""
    torch.manual_seed(0)
    big = Supernet(ATTENTIVENAS_SPACE, 1000).eval()
    out = []
    for name in ("a0", "a6"):
        if name not in keys:
            continue
        arch = named_arch(name)
        out.append((f"AttentiveNAS-{name.upper()}", big.extract(arch).eval(), arch.resolution,
                    count_flops(ATTENTIVENAS_SPACE, arch, 1000)))
    if "tiny-max" in keys:
        tiny = TINY_SPACE.max_arch()
        out.append(("tiny max", Supernet(TINY_SPACE, 1000).eval().extract(tiny).eval(), tiny.resolution,
                    count_flops(TINY_SPACE, tiny, 1000)))
    mbv3 = mobilenet_v3_large(weights=None).eval()
    out.append(("mobilenet_v3_large", mbv3, 224, macs(mbv3, 224)))
    return out


def macs(model: torch.nn.Module, resolution: int) -> float:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(1, 3, resolution, resolution))
    return counter.get_total_flops() / 2e6  # FLOPs -> multiply-accumulates, in millions


ROUNDS = 2  #: interleaved rounds per runtime and batch; each model keeps its round of lowest median


def prepared(runtime: str, model: torch.nn.Module, resolution: int, batch: int, threads: int,
             precision: str = "fp32") -> tuple[Runner, float]:
    """``model`` exported (quantized for ``int8``) and loaded in ``runtime`` at ``batch``, and the
    seconds that took."""
    x = torch.randn(batch, 3, resolution, resolution, generator=torch.Generator().manual_seed(0))
    t0 = time.perf_counter()
    runner = prepare(model, x, runtime, "cpu", threads, precision)
    return runner, time.perf_counter() - t0


def measure_together(runners: dict[str, Runner], repeats: int, clock: str, rounds: int = ROUNDS) -> dict[str, dict]:
    """Each runner timed in the shared interleaved rounds (``repeats`` runs after a warm-up per
    round); its figures are those of its round with the lowest median: median and p90 ms."""
    warmup = max(2, repeats // 5)

    def side(runner: Runner):
        return lambda: time_runner(runner, warmup=warmup, repeats=repeats, rounds=1, clock=clock)

    out = {}
    for name, per_round in interleaved_rounds({n: side(r) for n, r in runners.items()}, rounds).items():
        times = min(per_round, key=lambda t: float(np.median(t)))
        out[name] = {"median_ms": float(np.median(times)), "p90_ms": float(np.percentile(times, 90)),
                     "threads": runners[name].threads}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batches", default="1,32")
    ap.add_argument("--runtimes", default=",".join(RUNTIMES), help="those not installed are skipped")
    ap.add_argument("--repeats", type=int, default=20, help="timed runs at batch 1 (a quarter at batch 32, >= 3)")
    ap.add_argument("--clock", default="wall", choices=["wall", "cpu"])
    ap.add_argument("--precision", default="fp32", help="fp32, int8 or fp32,int8 (int8: runtimes "
                    f"{', '.join(INT8_RUNTIMES)} only)")
    ap.add_argument("--models", default=",".join(MODEL_KEYS),
                    help=f"comma list of {', '.join(MODEL_KEYS)} (MobileNetV3 is always measured)")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = ap.parse_args()
    keys = tuple(k for k in args.models.split(",") if k)
    if not keys or any(k not in MODEL_KEYS for k in keys):
        ap.error(f"--models takes a comma list of {', '.join(MODEL_KEYS)}, got {args.models!r}")
    runtimes = [r for r in args.runtimes.split(",") if r in RUNTIMES and is_available(r)]
    skipped = [r for r in args.runtimes.split(",") if r not in runtimes]
    batches = [int(b) for b in args.batches.split(",")]
    precisions = [p for p in args.precision.split(",") if p]
    if not precisions or any(p not in PRECISIONS for p in precisions):
        ap.error(f"--precision takes a comma list of {', '.join(PRECISIONS)}, got {args.precision!r}")
    rows = []
    compared = models(keys)
    for runtime in runtimes:
        # fp32 and INT8 files of one runtime and batch are timed in the same interleaved rounds
        here = [p for p in precisions if p == "fp32" or runtime in INT8_RUNTIMES]
        for batch in batches:
            clock = args.clock if runtime != "openvino" else "wall"
            repeats = args.repeats if batch == 1 else max(3, args.repeats // 4)
            loaded = {(name, p): prepared(runtime, model, res, batch, args.threads, p)
                      for p in here for name, model, res, _ in compared}
            timed = measure_together({f"{n} {p}": runner for (n, p), (runner, _) in loaded.items()}, repeats, clock)
            for p in here:
                for name, _, _, mflops in compared:
                    m = {**timed[f"{name} {p}"], "export_load_s": loaded[(name, p)][1]}
                    rows.append({"model": name, "mflops": round(mflops, 2), "runtime": runtime, "precision": p,
                                 "batch": batch, "clock": clock, **m,
                                 "us_per_mflop": m["median_ms"] * 1e3 / (mflops * batch)})
            del loaded, timed
    order = {name: i for i, (name, *_) in enumerate(compared)}
    rank = {p: i for i, p in enumerate(PRECISIONS)}
    rows.sort(key=lambda r: (order[r["model"]], r["runtime"], rank[r["precision"]], r["batch"]))
    ref = {(r["runtime"], r["precision"], r["batch"]): r["us_per_mflop"] for r in rows
           if r["model"] == "mobilenet_v3_large"}
    fp32 = {(r["model"], r["runtime"], r["batch"]): r["median_ms"] for r in rows if r["precision"] == "fp32"}
    for r in rows:
        r["vs_mbv3_per_mflop"] = r["us_per_mflop"] / ref[(r["runtime"], r["precision"], r["batch"])]
        base = fp32.get((r["model"], r["runtime"], r["batch"]))
        r["int8_speedup"] = base / r["median_ms"] if r["precision"] == "int8" and base else None
    info = {"threads": args.threads, "load_1min": os.getloadavg()[0], "cpu_count": os.cpu_count(),
            "versions": {r: runtime_version(r) for r in runtimes}, "skipped": skipped, "rows": rows}
    if args.json:
        print(json.dumps(info, indent=1))
        return
    print_header()
    print(f"{args.threads} thread(s), {ROUNDS} interleaved rounds; versions {info['versions']}; "
          f"not installed: {skipped or 'none'}")
    print("| model | MFLOPs | runtime | precision | batch | median ms | p90 ms | us/MFLOP/image | "
          "x MobileNetV3 per MFLOP | INT8 speed-up |")
    print("|---|---:|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        speedup = f"{r['int8_speedup']:.2f}x" if r["int8_speedup"] else ""
        print(f"| {r['model']} | {r['mflops']:.1f} | {r['runtime']} | {r['precision']} | {r['batch']} | "
              f"{r['median_ms']:.2f} | "
              f"{r['p90_ms']:.2f} | {r['us_per_mflop']:.2f} | {r['vs_mbv3_per_mflop']:.2f} | {speedup} |")


if __name__ == "__main__":
    main()
