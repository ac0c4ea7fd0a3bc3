"""A latency kit: every op and whole subnet a table needs, as programs of one runtime, with a
manifest, a package-free runner and a README, to time on a device where attentivenas and PyTorch do
not run (``attentivenas latency kit``). Its timings come back through
:mod:`attentivenas.latency.device_import`.

The kit holds the items ``latency build-table`` times for the same settings: the op signatures of
``archs`` seeded random archs (+ min and max; every signature of the space without ``archs``), the
calibration and held-out subnets (the same seeds), a near-empty op (the runtime's cost of a call)
and the space's min subnet as the drift reference. The runner (:mod:`.kit_runner`) times them with
the table's protocol. Kits are written for the runtimes whose record says ``kit`` (ONNX Runtime and
ExecuTorch), fp32 and INT8. The runner never imports attentivenas; an ONNX Runtime kit's runner needs
onnxruntime (and its numpy) only, an ExecuTorch kit's runner the executorch package, which brings
numpy and torch: ExecuTorch's Python runtime imports torch, so on a device without torch an
ExecuTorch kit is timed with ExecuTorch's native tools (the kit's README).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..config import LatencyTableConfig
from ..errors import UserError
from ..io import dumps_json, user_file_errors
from ..progress import progress_bar
from ..runtimes.records import RUNTIMES
from ..runtimes.runners import check_runtime, export_program
from ..space import Arch, SearchSpace
from .exports import ExportJob, iter_programs
from .fit import MIN_SCALED_ARCHS
from .measure import check_batch, random_subnet, seeded_supernet
from .ops import OpSig, arch_ops, op_input_shape, seeded_op_module, space_signatures
from .table import space_config

KIT_FORMAT = "attentivenas-latency-kit"
KIT_VERSION = 1
MANIFEST = "manifest.json"
RUNNER = "runner.py"
#: runtimes and precisions a kit is written for (the runner loads only these): the records marked ``kit``
KIT_RUNTIMES = tuple(r.name for r in RUNTIMES.values() if r.kit)
KIT_PRECISIONS = ("fp32", "int8")
REFERENCE = "reference"
NULL = "null"


def kit_items(space: SearchSpace, c: LatencyTableConfig) -> tuple[list[OpSig], list[Arch], list[Arch]]:
    """The op signatures (sorted), calibration and held-out archs of a kit: those ``build-table``
    measures with the same settings (the same seeds)."""
    rng = np.random.default_rng(c.seed)
    if c.archs is None:
        sigs = set(space_signatures(space, c.num_classes))
        if len(sigs) > c.max_signatures:
            raise UserError(f"space '{space.name}' has {len(sigs)} op signatures (> {c.max_signatures}); "
                            "write the kit from sampled archs instead (--archs N)")
    else:
        chosen = [space.min_arch(), space.max_arch()] + [space.sample(rng) for _ in range(c.archs)]
        sigs = {s for a in chosen for s in arch_ops(space, a, c.num_classes)}
    hrng = np.random.default_rng(c.seed + 7919)
    holdout = [space.sample(hrng) for _ in range(c.holdout_archs)]
    crng = np.random.default_rng(c.seed + 10_007)
    calib = [space.sample(crng) for _ in range(c.calibration_archs)]
    for a in [*calib, *holdout]:
        sigs.update(arch_ops(space, a, c.num_classes))
    return sorted(sigs), calib, holdout


def check_kit_config(space: SearchSpace, c: LatencyTableConfig) -> None:
    """User errors for kit settings that cannot be written."""
    rt = RUNTIMES.get(c.runtime)
    if rt is None or not rt.kit:
        raise UserError(f"--runtime {c.runtime!r}: kits are written for {', '.join(KIT_RUNTIMES)} for now")
    if c.precision not in KIT_PRECISIONS:
        raise UserError(f"--precision {c.precision!r}: kits are written in {', '.join(KIT_PRECISIONS)} for now")
    check_runtime(c.runtime, "cpu", c.precision)
    if c.model == "scaled" and c.calibration_archs < MIN_SCALED_ARCHS:
        raise UserError(f"the scaled model needs --calibration-archs >= {MIN_SCALED_ARCHS}, got {c.calibration_archs}")
    if c.model not in ("sum", "scaled", "auto"):
        raise UserError(f"unknown latency model {c.model!r}; use sum, scaled or auto")
    check_batch(space, space.max_arch(), c.batch, c.num_classes)


def write_kit(space: SearchSpace, c: LatencyTableConfig, out: Path, progress: bool = True,
              log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Export every item of the kit and write the kit folder ``out`` (built in a temporary folder
    beside it and renamed into place when complete); returns its manifest."""
    check_kit_config(space, c)
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"--out {out} exists and is not an empty folder; choose a new path")
    sigs, calib, holdout = kit_items(space, c)
    subnets = [*calib, *holdout, space.min_arch()]
    programs = _export_all(space, c, sigs, subnets, progress)
    items: list[dict[str, Any]] = []
    names = [f"op:{s.key()}" for s in sigs] + [NULL] + [f"subnet:{i}:{json.dumps(a.to_dict(), sort_keys=True)}"
                                                        for i, a in enumerate(subnets[:-1])] + [REFERENCE]
    shapes = [(c.batch, *op_input_shape(s)) for s in sigs] + [(c.batch, 8, 1, 1)] + \
        [(c.batch, 3, a.resolution, a.resolution) for a in subnets]
    what = ["op"] * len(sigs) + ["call"] + ["calibration"] * len(calib) + ["holdout"] * len(holdout) + ["reference"]
    reps = [c.repeats] * len(sigs) + [c.repeats * 5] + [c.repeats] * (len(subnets) - 1) + [c.repeats]
    parent = out.parent if str(out.parent) else Path(".")
    with user_file_errors(out):
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=parent))
        try:
            (tmp / "items").mkdir()
            for i, (name, data) in enumerate(zip(names, programs, strict=True)):
                rel = f"items/{i:05d}{RUNTIMES[c.runtime].suffix}"
                (tmp / rel).write_bytes(data)
                items.append({"name": name, "file": rel, "sha256": hashlib.sha256(data).hexdigest(),
                              "input_shape": list(shapes[i]), "dtype": "float32", "input_seed": c.seed + i,
                              "measures": what[i], "repeats": reps[i]})
            manifest = _manifest(space, c, items, calib, holdout)
            (tmp / MANIFEST).write_text(dumps_json(manifest, indent=1))
            (tmp / RUNNER).write_text(Path(__file__).with_name("kit_runner.py").read_text())
            (tmp / "README.md").write_text(kit_readme(manifest))
            if out.exists():
                out.rmdir()
            tmp.rename(out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    if log is not None:
        log(f"kit {out}: {len(items)} programs, {kit_bytes(out) / 1e6:.1f} MB")
    return manifest


def kit_bytes(folder: Path) -> int:
    """The size of a kit folder (bytes)."""
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


def _manifest(space: SearchSpace, c: LatencyTableConfig, items: list[dict[str, Any]], calib: list[Arch],
              holdout: list[Arch]) -> dict[str, Any]:
    body = {"format": KIT_FORMAT, "version": KIT_VERSION, "runtime": c.runtime, "precision": c.precision,
            "batch": c.batch, "threads": c.threads if c.threads is not None else 1, "num_classes": c.num_classes,
            "warmup": c.warmup, "repeats": c.repeats, "passes": c.passes, "seed": c.seed, "model": c.model,
            "archs": c.archs, "space": {"name": space.name, "supernet_config": space_config(space)},
            "calibration_archs": [a.to_dict() for a in calib], "holdout_archs": [a.to_dict() for a in holdout],
            "reference": REFERENCE, "exported_with": {"torch": torch.__version__}, "items": items}
    body["kit_id"] = hashlib.sha256(dumps_json(body).encode()).hexdigest()[:16]
    return body


def _export_all(space: SearchSpace, c: LatencyTableConfig, sigs: list[OpSig], subnets: list[Arch],
                progress: bool) -> Iterator[bytes]:
    """Program bytes of the ops (weights of seed ``seed + position``, as a table's), the null op and
    the subnets (the table's seeded supernet; an arch listed twice is exported once), in that order,
    one at a time: the caller writes each and lets it go (a kit's fp32 subnets are tens of MB each)."""
    keys = [json.dumps(a.to_dict(), sort_keys=True) for a in subnets]
    distinct = [subnets[keys.index(k)] for k in dict.fromkeys(keys)]  # an arch drawn twice: one export
    if c.jobs > 1:
        jobs = [ExportJob.op(s, c.seed + i) for i, s in enumerate(sigs)] + [ExportJob.arch(a) for a in distinct]
        out = iter_programs(jobs, space, c.runtime, c.batch, c.num_classes, c.seed, c.jobs, progress, c.precision)
        ops: Iterator[bytes] = (next(out) for _ in sigs)
        whole: Iterator[bytes] = out
    else:
        ops = (export_program(seeded_op_module(s, c.seed + i, space.act, c.runtime),
                              torch.zeros(c.batch, *op_input_shape(s)), c.runtime, c.precision)
               for i, s in progress_bar(list(enumerate(sigs)), f"export {len(sigs)} ops ({c.runtime})", progress))
        net = seeded_supernet(space, c.num_classes, c.seed)
        whole = (export_program(random_subnet(space, a, c.num_classes, c.seed, net),
                                torch.zeros(c.batch, 3, a.resolution, a.resolution), c.runtime, c.precision)
                 for a in progress_bar(distinct, f"export {len(distinct)} subnets ({c.runtime})", progress))
    yield from ops
    yield export_program(nn.ReLU(), torch.zeros(c.batch, 8, 1, 1), c.runtime, c.precision)
    left = Counter(keys)
    kept: dict[str, bytes] = {}  # only archs listed again later
    for k in keys:
        data = kept[k] if k in kept else next(whole)  # first sightings come in ``distinct``'s order
        left[k] -= 1
        if left[k]:
            kept[k] = data
        else:
            kept.pop(k, None)
        yield data


#: per kit runtime: what the runner needs on a board, and how its native tools time one program
_README_RUNTIME = {
    "onnxruntime": {
        "install": "`pip install onnxruntime` (numpy comes with it; the runner imports neither attentivenas\n"
                   "nor torch)",
        "tool": "onnxruntime_perf_test",
        "native": """Time each `items/*.onnx` program with ONNX Runtime's benchmark tool,
`onnxruntime_perf_test -e cpu -x THREADS -r REPEATS -I items/NNNNN.onnx` (built for the phone's ABI,
pushed with `adb push`), and take its median latency.""",
    },
    "executorch": {
        "install": "`pip install executorch` (it brings numpy and torch: ExecuTorch's Python runtime\n"
                   "imports torch, so the runner does too, for that reason only; it never imports attentivenas)",
        "tool": "executor_runner",
        "native": """Without Python (or torch) on the device, time each `items/*.pte` program with ExecuTorch's
C++ runner built with the XNNPACK backend (`executor_runner` of `examples/portable/executor_runner`,
configured with `-DEXECUTORCH_BUILD_XNNPACK=ON` and, for Android, the NDK's CMake toolchain file):

    adb push items /data/local/tmp/kit/items
    adb shell /data/local/tmp/executor_runner --model_path /data/local/tmp/kit/items/NNNNN.pte \\
        --num_executions REPEATS --cpu_threads THREADS

It logs `N inference took T ms, avg A ms` (a mean, the first, cold execution included): take `A`,
with REPEATS large enough that the first execution weighs little. In an app, ExecuTorch's Android
benchmark app (minibench, `extension/benchmark/android/benchmark`) times the one `.pte` of the
folder it is given and writes its results in the app's `files/` folder (take its average inference
time):

    adb shell am start -n org.pytorch.minibench/.BenchmarkActivity \\
        --es model_dir /data/local/tmp/item --ei num_iter REPEATS""",
    },
}


def kit_readme(m: dict[str, Any]) -> str:
    """The kit's README.md: what it holds, how to run it on a board and how to time it natively."""
    n = len(m["items"])
    rt = _README_RUNTIME[m["runtime"]]
    return f"""# Latency kit {m['kit_id']} ({m['runtime']}, {m['precision']}, batch {m['batch']})

{n} programs of space `{m['space']['name']}` (`items/`), described in `manifest.json`: per item its
file, sha256, input shape and dtype, and what it measures (`op`, `call`: a near-empty op, whose time
is the runtime's cost of one call, `calibration` and `holdout` whole subnets, and `reference`: the
space's min subnet, timed between the others to correct drift).

## On a board with Python

Needs Python 3 and the runtime's package only:
{rt['install']}.

    python3 runner.py --out timings.json            # {m['threads']} thread(s) as the kit was written for
    python3 runner.py --out timings.json --threads 4

It checks every file's sha256, times each item ({m['warmup']} warm-up runs, the median of its
repeats), in {m['passes']} pass(es) over all items in a seeded random order, with the reference
timed at the start and end of each pass and every 0.5 s, and writes `timings.json`. Copy it back and run

    attentivenas latency import KIT timings.json --out table.json --device-name "my board"

A kit that is not whole (a file that no longer matches its sha256) or of another runtime is refused
in one line (exit status 2).

## With the runtime's native tools (a phone)

{rt['native']}

Then write the same timings file:

    {{"format": "attentivenas-latency-timings", "version": 1, "kit_id": "{m['kit_id']}",
     "runtime": "{m['runtime']}", "runtime_version": "THE RUNTIME'S VERSION", "precision": "{m['precision']}",
     "batch": {m['batch']}, "threads": THREADS, "tool": "{rt['tool']}",
     "device": {{"os": "...", "cpu": "..."}},
     "times": {{"ITEM NAME": [{{"ms": MEDIAN_MS}}, ...one per pass], ...}}}}

with one entry under `times` per item of the manifest (its `name`), the `reference` left out. Each
pass's `{{"ms": ...}}` may carry `"reference_ms"`: the reference's time around it (then every entry
must, and times are drift-corrected to its median); without it, the lowest time over the passes is kept.
"""
