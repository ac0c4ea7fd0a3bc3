"""The runner of a latency kit (``attentivenas latency kit``), copied into the kit as ``runner.py``.

It runs on the device with the standard library and the runtime's own Python package only
(onnxruntime, with the numpy it depends on): it must not import attentivenas or torch. It times
every item of ``manifest.json`` as ``latency build-table`` does: ``warmup`` untimed runs, the median
of ``repeats`` timed ones, ``passes`` passes in a seeded random order (numpy's ``default_rng(seed)``
permutations, as the table build draws them), the drift reference (the space's min subnet) timed at
the start and end of each pass and every 0.5 s in between. It writes the timings file (format
``attentivenas-latency-timings``): per item and pass the raw median (ms) and the reference's time
around it; ``attentivenas latency import`` applies the drift correction and fits the table.

Usage on the device: ``python3 runner.py [--kit DIR] [--out timings.json] [--threads N]``.
"""
import argparse
import hashlib
import json
import math
import os
import platform
import sys
import time

TIMINGS_FORMAT = "attentivenas-latency-timings"
REFERENCE_POINT_MS = 20.0
REFERENCE_EVERY_S = 0.5
MAX_REFERENCE_RUNS = 50


def _median(xs):
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2.0


def _cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.split(":")[0].strip() in ("model name", "Hardware", "Processor"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class _Item:
    def __init__(self, kit, item, threads, np, ort):
        path = os.path.join(kit, item["file"])
        if _sha256(path) != item["sha256"]:
            sys.exit(f"runner: {item['file']} does not match its sha256 in manifest.json; copy the kit again")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        rng = np.random.default_rng(item["input_seed"])
        x = rng.standard_normal(item["input_shape"]).astype(item["dtype"])
        self.feed = {self.sess.get_inputs()[0].name: x}

    def times(self, warmup, repeats):
        for _ in range(warmup):
            self.sess.run(None, self.feed)
        out = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            self.sess.run(None, self.feed)
            out.append((time.perf_counter() - t0) * 1e3)
        return out


def _time_passes(items, ref, timed, reps, warmup, orders):
    """Every timed item in each pass's order, the reference (when the kit has one) timed at the start
    and end of each pass and every REFERENCE_EVERY_S in between: per item and pass the raw median and
    the reference's time around it, the reference's times, and the seconds the passes took."""
    runs = 3
    if ref is not None:
        first = _median(ref.times(2, 3))
        runs = min(MAX_REFERENCE_RUNS, max(3, math.ceil(REFERENCE_POINT_MS / max(first, 1e-3))))
    points = []
    results = {n: [] for n in timed}
    t_start = time.time()
    for order in orders:
        pending, before, last = [], None, -math.inf
        for i in order:
            name = timed[i]
            if ref is not None and (before is None or time.perf_counter() - last >= REFERENCE_EVERY_S):
                after = _median(ref.times(1, runs))
                points.append(after)
                last = time.perf_counter()
                for n, raw in pending:
                    results[n].append({"ms": raw, "reference_ms": after if before is None else (before + after) / 2})
                pending, before = [], after
            raw = _median(items[name].times(warmup, reps[name]))
            if ref is None:
                results[name].append({"ms": raw})
            else:
                pending.append((name, raw))
        if ref is not None and pending:
            after = _median(ref.times(1, runs))
            points.append(after)
            for n, raw in pending:
                results[n].append({"ms": raw, "reference_ms": (before + after) / 2})
    return results, points, time.time() - t_start


def main(argv=None):
    ap = argparse.ArgumentParser(description="Time every program of a latency kit on this device.")
    ap.add_argument("--kit", default=os.path.dirname(os.path.abspath(__file__)), help="the kit folder")
    ap.add_argument("--out", default="timings.json", help="the timings file to write")
    ap.add_argument("--threads", type=int, default=None, help="runtime threads (default: the kit's)")
    args = ap.parse_args(argv)
    with open(os.path.join(args.kit, "manifest.json"), encoding="utf-8") as f:
        man = json.load(f)
    if man.get("format") != "attentivenas-latency-kit" or man.get("runtime") != "onnxruntime":
        sys.exit("runner: manifest.json is not an onnxruntime latency kit")
    import numpy as np  # optional: the device's runtime package and its numpy, loaded after the manifest check
    import onnxruntime as ort  # optional: the device's runtime package
    threads = args.threads or man["threads"]
    items = {it["name"]: _Item(args.kit, it, threads, np, ort) for it in man["items"]}
    ref = items.get(man.get("reference") or "")
    timed = [it["name"] for it in man["items"] if it["name"] != man.get("reference")]
    reps = {it["name"]: it["repeats"] for it in man["items"]}
    warmup, passes, seed = man["warmup"], man["passes"], man["seed"]
    rng = np.random.default_rng(seed)
    orders = [rng.permutation(len(timed)).tolist() for _ in range(passes)]
    results, points, seconds = _time_passes(items, ref, timed, reps, warmup, orders)
    out = {
        "format": TIMINGS_FORMAT, "version": 1, "kit_id": man["kit_id"], "runtime": man["runtime"],
        "runtime_version": ort.__version__, "precision": man["precision"], "batch": man["batch"],
        "threads": threads, "passes": passes, "tool": "runner.py",
        "device": {"os": platform.platform(), "cpu": _cpu_model(), "machine": platform.machine(),
                   "python": platform.python_version()},
        "seconds": round(seconds, 3), "reference_points": points, "times": results,
    }
    tmp = args.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1)
    os.replace(tmp, args.out)
    print(f"wrote {args.out}: {len(timed)} items x {passes} passes in {out['seconds']:.1f} s")


if __name__ == "__main__":
    main()
