"""Fingerprints of what the package computes, to show that a refactor changed no behaviour.

Runs the command line end to end on small settings (costs, a short training run with attentive
sampling, evaluation, a predictor data set and fit, searches on a predictor and on a checkpoint,
exports: safetensors, torch.export and ONNX files run by their runtime on a fixed input, an INT8 ONNX
file and its check, a bundle, a short fine-tuning; optionally the whole quick start) and prints one hash per output, computed on its content
with times, paths and versions left out and floats rounded to 6 significant digits. Run it on the
tree before and after a change and compare the two JSON files::

    python benchmarks/fingerprints.py --work /tmp/fp-before --json /tmp/before.json [--quickstart]
    PYTHONPATH=/other/checkout/src python benchmarks/fingerprints.py --work /tmp/fp-other --json /tmp/other.json
    python benchmarks/fingerprints.py --compare /tmp/before.json /tmp/other.json

The package imported is whichever ``python -m attentivenas`` finds (``PYTHONPATH`` selects a checkout).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

#: keys whose values depend on the machine, the clock or the folder, not on what was computed
VOLATILE = re.compile(r"(time|seconds|_s$|_ms|date|host|path|dir|version|elapsed|created|command|argv|out$|"
                      r"file|machine|threads|wall|cpu|torch|python|platform|when|latency)", re.IGNORECASE)


#: the scratch folder of the run, written as ``<work>`` in the outputs' strings
WORK: list[str] = []
#: keys left out on purpose (``--ignore-key``: e.g. a header key a change adds deliberately)
IGNORED: set[str] = set()


def normalise(value: Any) -> Any:
    """``value`` without volatile keys, floats rounded to 6 significant digits, the scratch folder as ``<work>``."""
    if isinstance(value, str):
        for w in WORK:
            value = value.replace(w, "<work>")
        return value
    if isinstance(value, dict):
        return {k: normalise(v) for k, v in sorted(value.items())
                if not VOLATILE.search(str(k)) and str(k) not in IGNORED}
    if isinstance(value, (list, tuple)):
        return [normalise(v) for v in value]
    if isinstance(value, float):
        return float(f"{value:.6g}")
    return value


def digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(normalise(value), sort_keys=True).encode()).hexdigest()[:16]


def tensors_digest(path: Path) -> str:
    """Hash of the float tensors of a checkpoint or safetensors file (rounded), by name."""
    import torch

    if path.is_dir():  # ``export --format safetensors`` writes a folder (model.safetensors + config.json)
        path = path / "model.safetensors"
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        state = payload.get("model", payload.get("state_dict", payload)) if isinstance(payload, dict) else payload
    h = hashlib.sha256()
    for name in sorted(k for k, v in state.items() if isinstance(v, torch.Tensor)):
        t = state[name]
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        if t.is_floating_point():
            h.update(torch.round(t.double() * 1e5).long().numpy().tobytes())
        else:
            h.update(t.numpy().tobytes())
    return h.hexdigest()[:16]


def jsonl_rows(path: Path) -> list[Any]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class Runner:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.prints: dict[str, str] = {}
        self.env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONHASHSEED="0")

    def cli(self, name: str, *args: str) -> str:
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "attentivenas", *args], capture_output=True, text=True,
                              env=self.env, cwd=self.work)
        print(f"[{time.perf_counter() - t0:6.1f} s] {name}: exit {proc.returncode}", file=sys.stderr)
        if proc.returncode != 0:
            raise SystemExit(f"{name} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        return proc.stdout

    def add(self, name: str, value: str) -> None:
        self.prints[name] = value


def run(work: Path, quickstart: bool) -> dict[str, str]:
    work.mkdir(parents=True, exist_ok=True)
    WORK[:] = [str(work.resolve()), str(work)]
    r = Runner(work)
    for space in ("attentivenas", "alphanet", "tiny"):
        for arch in ("min", "max", *(("a0", "a3", "a6") if space == "attentivenas" else ())):
            r.add(f"flops/{space}/{arch}", digest(json.loads(r.cli("flops", "flops", "--arch", arch, "--space", space,
                                                                      "--json"))))
    train = work / "train"
    r.cli("train", "train", "--config", str(Path(__file__).resolve().parents[1] / "configs" / "quickstart.yaml"),
          "optim.epochs=1", "checkpoint.every_steps=20", "eval.every_epochs=1", "log.every_steps=1", "--out",
          str(train))
    ckpt = train / "checkpoints" / "last.pt"
    r.add("train/weights", tensors_digest(ckpt))
    for name in ("metrics.jsonl", "train_log.jsonl"):
        if (train / name).exists():
            r.add(f"train/{name}", digest(jsonl_rows(train / name)))
    for arch in ("min", "max"):
        out = r.cli(f"evaluate/{arch}", "evaluate", "--checkpoint", str(ckpt), "--arch", arch, "--calib-batches", "4",
                    "--json")
        r.add(f"evaluate/{arch}", digest(json.loads(out)))
    ds = work / "ds.jsonl"
    r.cli("predictor build", "predictor", "build", "--checkpoint", str(ckpt), "--num-archs", "12",
          "--calib-batches", "4", "--out", str(ds))
    r.add("predictor/dataset", digest(jsonl_rows(ds)))
    pred = work / "pred.json"
    out = r.cli("predictor fit", "predictor", "fit", "--dataset", str(ds), "--out", str(pred), "--kinds", "rf,ridge",
                "--folds", "3", "--json")
    r.add("predictor/fit", digest(json.loads(out)))
    r.add("predictor/file", digest(json.loads(pred.read_text())))
    r.cli("search predicted", "search", "--predictor", str(pred), "--out", str(work / "s1"), "--pop-size", "12",
          "--generations", "4", "--budgets", "1,2,3")
    r.add("search/predicted/pareto", digest(json.loads((work / "s1" / "pareto.json").read_text())))
    r.cli("search checkpoint", "search", "--checkpoint", str(ckpt), "--out", str(work / "s2"), "--num-archs", "10",
          "--pop-size", "8", "--generations", "3", "--calib-batches", "4", "--remeasure-top", "3")
    r.add("search/checkpoint/pareto", digest(json.loads((work / "s2" / "pareto.json").read_text())))
    for name in ("s1", "s2"):
        r.prints.update(search_files(work / name))
    r.cli("export", "export", "--checkpoint", str(ckpt), "--arch", "min", "--format", "safetensors",
          "--calibrate-bn", "--calib-batches", "4", "--out", str(work / "min.safetensors"))
    r.add("export/min", tensors_digest(work / "min.safetensors"))
    r.prints.update(deployment(r, work, ckpt))
    if quickstart:
        r.cli("quickstart", "quickstart", "--out", str(work / "qs"))
        r.add("quickstart/pareto", digest(json.loads((work / "qs" / "pareto.json").read_text())))
    return r.prints


def _probe_input(shape: tuple[int, ...]) -> Any:
    """The fixed input every exported file is run on (seeded, so both trees feed the same tensor)."""
    import numpy as np

    return np.random.default_rng(0).standard_normal(shape).astype(np.float32)


def outputs_digest(path: Path) -> str:
    """Hash of an exported file's output on a fixed input, run by the runtime itself (not by attentivenas)."""
    import numpy as np

    if path.suffix == ".onnx":
        import onnxruntime as ort

        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        inp = sess.get_inputs()[0]
        shape = tuple(d if isinstance(d, int) else 2 for d in inp.shape)
        out = sess.run(None, {inp.name: _probe_input(shape)})[0]
    else:
        import torch

        program = torch.export.load(str(path))
        shape = tuple(int(d) if str(d).isdigit() else 2 for d in program.example_inputs[0][0].shape)
        out = program.module()(torch.from_numpy(_probe_input(shape))).detach().numpy()
    return hashlib.sha256(np.round(out.astype(np.float64), 3).tobytes()).hexdigest()[:16]


def deployment(r: Runner, work: Path, ckpt: Path) -> dict[str, str]:
    """Fingerprints of what users take away: runtime files, an INT8 file, a bundle, a fine-tuned subnet."""
    prints = {}
    common = ("--checkpoint", str(ckpt), "--arch", "min", "--calib-batches", "4")
    for fmt, name in (("torch-export", "min.pt2"), ("onnx", "min.onnx")):
        r.cli(f"export {fmt}", "export", *common, "--format", fmt, "--out", str(work / name))
        prints[f"deploy/{fmt}/outputs"] = outputs_digest(work / name)
    out = r.cli("export int8", "export", *common, "--format", "onnx", "--precision", "int8", "--calib-images", "64",
                "--check-images", "100", "--out", str(work / "min-int8.onnx"), "--json")
    prints["deploy/int8-onnx/outputs"] = outputs_digest(work / "min-int8.onnx")
    prints["deploy/int8-onnx/report"] = digest(json.loads(out))
    bundle = work / "bundle"
    r.cli("export bundle", "export", *common, "--format", "bundle", "--out", str(bundle))
    prints["deploy/bundle/weights"] = tensors_digest(bundle / "model.safetensors")
    prints["deploy/bundle/config"] = digest(json.loads((bundle / "config.json").read_text()))
    ft = work / "ft"
    r.cli("finetune", "finetune", "--checkpoint", str(ckpt), "--arch", "min", "--epochs", "1", "--steps-per-epoch", "5",
          "--calib-batches", "4", "--out", str(ft))
    prints["finetune/result"] = digest(json.loads((ft / "result.json").read_text()))
    return prints


def search_files(out: Path) -> dict[str, str]:
    """Fingerprints of a search folder's other files (summary, measured subnets, its own predictor)."""
    prints = {}
    for name in ("summary.json", "predictor.json", "measured.jsonl", "metrics.jsonl"):
        path = out / name
        if path.exists():
            value = jsonl_rows(path) if path.suffix == ".jsonl" else json.loads(path.read_text())
            prints[f"search/{out.name}/{name}"] = digest(value)
    return prints


def compare(a: dict[str, str], b: dict[str, str]) -> int:
    differ = 0
    for key in sorted(set(a) | set(b)):
        same = a.get(key) == b.get(key)
        differ += not same
        print(f"{'same' if same else 'DIFFERS':8s} {key}: {a.get(key)} {b.get(key)}")
    print(f"{len(set(a) | set(b)) - differ} same, {differ} differ")
    return 1 if differ else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, help="Scratch folder for the runs.")
    ap.add_argument("--json", type=Path, help="Write the fingerprints here.")
    ap.add_argument("--quickstart", action="store_true", help="Also run the whole quick start (minutes).")
    ap.add_argument("--compare", nargs=2, type=Path, metavar=("A", "B"), help="Compare two fingerprint files.")
    ap.add_argument("--ignore-key", action="append", default=[], help="Leave this key out of every output.")
    args = ap.parse_args()
    IGNORED.update(args.ignore_key)
    if args.compare:
        a, b = (json.loads(p.read_text()) for p in args.compare)
        raise SystemExit(compare(a, b))
    if args.work is None:
        ap.error("--work is required unless --compare")
    prints = run(args.work, args.quickstart)
    text = json.dumps(prints, indent=1, sort_keys=True)
    if args.json:
        args.json.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
