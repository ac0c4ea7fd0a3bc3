"""The runner of a latency kit (``attentivenas latency kit``), copied into the kit as ``runner.py``.

It runs on the device with the standard library and the runtime's own Python package only: it never
imports attentivenas. For an ONNX Runtime kit it imports onnxruntime and the numpy that comes with
it, never torch; for an ExecuTorch kit, executorch (``executorch.runtime``) with the numpy and torch
that come with it: ExecuTorch's Python runtime needs torch (its tensors are the method's inputs), the
only reason this runner imports torch. The backend is the manifest's ``runtime``; another is refused.

It times every item of ``manifest.json`` as ``latency build-table`` does: ``warmup`` untimed runs,
the median of ``repeats`` timed ones, ``passes`` passes in a seeded random order (numpy's
``default_rng(seed)`` permutations, as the table build draws them), the drift reference (the space's
min subnet) timed at the start and end of each pass and every 0.5 s in between. It writes the
timings file (format ``attentivenas-latency-timings``): per item and pass the raw median (ms) and the
reference's time around it; ``attentivenas latency import`` applies the drift correction and fits
the table. A bad kit (a file that no longer matches its sha256, a foreign manifest, another runtime)
or a missing runtime package is one line on stderr and exit status 2.

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
from importlib import metadata

TIMINGS_FORMAT = "attentivenas-latency-timings"
KIT_FORMAT = "attentivenas-latency-kit"
REFERENCE_POINT_MS = 20.0
REFERENCE_EVERY_S = 0.5
MAX_REFERENCE_RUNS = 50
#: the runtimes this runner loads, with the pip package each needs
PACKAGES = {"onnxruntime": "onnxruntime", "executorch": "executorch"}


def _fail(message):
    """One line on stderr, exit status 2."""
    print(f"runner: {message}", file=sys.stderr)
    sys.exit(2)


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


def _version(package, module):
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return str(getattr(module, "__version__", ""))


def _onnxruntime(threads):
    """``(version, threads, load)`` for ONNX Runtime: ``load(path, x)`` returns a call that runs the
    program once on the numpy array ``x`` (a CPU session of ``threads`` intra-op threads)."""
    import onnxruntime as ort  # optional: the device's runtime package

    def load(path, x):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        feed = {sess.get_inputs()[0].name: x}
        return lambda: sess.run(None, feed)

    return _version("onnxruntime", ort), threads, load


def _executorch(threads):
    """``(version, threads, load)`` for ExecuTorch's Python runtime (its process-wide thread pool set
    to ``threads``): ``load(path, x)`` returns a call that runs the program's ``forward`` once on ``x``."""
    import executorch  # optional: the device's runtime package
    import torch  # ExecuTorch's Python runtime takes torch tensors: the only reason torch is imported
    from executorch.extension.pybindings import portable_lib
    from executorch.runtime import Runtime

    reset = getattr(portable_lib, "_unsafe_reset_threadpool", None)
    count = getattr(portable_lib, "_threadpool_get_thread_count", None)
    if reset is None or count is None:
        _fail("this executorch cannot set its thread pool's size; install a newer executorch (pip install -U executorch)")
    if count() != threads:
        reset(threads)
    runtime = Runtime.get()

    def load(path, x):
        program = runtime.load_program(path)
        method = program.load_method("forward")
        inputs = [torch.from_numpy(x)]

        def call():
            return method.execute(inputs)

        call.program = program  # the method points into its program: keep it alive
        return call

    return _version("executorch", executorch), int(count()), load


BACKENDS = {"onnxruntime": _onnxruntime, "executorch": _executorch}


class _Item:
    def __init__(self, call):
        self.call = call

    def times(self, warmup, repeats):
        for _ in range(warmup):
            self.call()
        out = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            self.call()
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


def _read_manifest(kit):
    """The kit's manifest, refused in one line when it is not a kit of a runtime this runner loads,
    or when a file no longer matches its sha256."""
    try:
        with open(os.path.join(kit, "manifest.json"), encoding="utf-8") as f:
            man = json.load(f)
    except (OSError, ValueError) as exc:
        _fail(f"cannot read {os.path.join(kit, 'manifest.json')}: {str(exc).splitlines()[0]}")
    if not isinstance(man, dict) or man.get("format") != KIT_FORMAT:
        _fail("manifest.json is not a latency kit manifest (format attentivenas-latency-kit)")
    if man.get("runtime") not in BACKENDS:
        _fail(f"manifest.json is a kit for runtime {man.get('runtime')!r}; this runner runs {', '.join(BACKENDS)} kits")
    try:
        files = [(str(it["file"]), it["sha256"]) for it in man["items"]]
    except (KeyError, TypeError):
        _fail("manifest.json is malformed: items must be a list of objects with a file and a sha256")
    for file, sha256 in files:
        if not os.path.isfile(os.path.join(kit, file)):
            _fail(f"{file} is missing from the kit; copy the kit again")
        if _sha256(os.path.join(kit, file)) != sha256:
            _fail(f"{file} does not match its sha256 in manifest.json; copy the kit again")
    return man


def _backend(runtime, threads):
    pkg = PACKAGES[runtime]
    try:
        return BACKENDS[runtime](threads)
    except ImportError as exc:
        _fail(f"this kit needs the {pkg} package (pip install {pkg}); importing it failed: {str(exc).splitlines()[0]}")


def main(argv=None):
    ap = argparse.ArgumentParser(description="Time every program of a latency kit on this device.")
    ap.add_argument("--kit", default=os.path.dirname(os.path.abspath(__file__)), help="the kit folder")
    ap.add_argument("--out", default="timings.json", help="the timings file to write")
    ap.add_argument("--threads", type=int, default=None, help="runtime threads (default: the kit's)")
    args = ap.parse_args(argv)
    if args.threads is not None and args.threads < 1:
        _fail(f"--threads must be >= 1, got {args.threads}")
    man = _read_manifest(args.kit)
    version, threads, load = _backend(man["runtime"], args.threads or man["threads"])
    import numpy as np  # optional: comes with the runtime's package (onnxruntime and executorch need it)

    items = {}
    for it in man["items"]:
        x = np.random.default_rng(it["input_seed"]).standard_normal(it["input_shape"]).astype(it["dtype"])
        items[it["name"]] = _Item(load(os.path.join(args.kit, it["file"]), x))
    ref = items.get(man.get("reference") or "")
    timed = [it["name"] for it in man["items"] if it["name"] != man.get("reference")]
    reps = {it["name"]: it["repeats"] for it in man["items"]}
    warmup, passes, seed = man["warmup"], man["passes"], man["seed"]
    rng = np.random.default_rng(seed)
    orders = [rng.permutation(len(timed)).tolist() for _ in range(passes)]
    results, points, seconds = _time_passes(items, ref, timed, reps, warmup, orders)
    out = {
        "format": TIMINGS_FORMAT, "version": 1, "kit_id": man["kit_id"], "runtime": man["runtime"],
        "runtime_version": version, "precision": man["precision"], "batch": man["batch"],
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
