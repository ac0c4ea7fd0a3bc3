"""Which part of the architecture makes an exported AttentiveNAS subnet slower per MFLOP than MobileNetV3?

AttentiveNAS-A0 (random weights, 1000 classes) is timed as exported and with one part swapped at a
time for MobileNetV3-Large's choice: the squeeze-and-excitation modules removed, swish (SiLU)
replaced by hard-swish, both; torchvision's ``mobilenet_v3_large`` is timed as it is and with its
hard-swish replaced by swish. Every model's MFLOPs (multiply-accumulates) are counted the same way,
with ``torch.utils.flop_counter``, so ``us/MFLOP`` compares like with like; the shortcut
projections stay (they are part of the space; their MFLOPs are in the count). Same runtimes and
timing as ``bench_runtimes.py``::

    python benchmarks/bench_arch_parts.py [--threads 1] [--batches 1,32] [--runtimes torch,onnxruntime]
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
from pathlib import Path

import torch
import torch.nn as nn
from torchvision.models import mobilenet_v3_large

sys.path.insert(0, str(Path(__file__).resolve().parent))
from attentivenas.latency import RUNTIMES  # noqa: E402
from attentivenas.nn import Supernet, is_available  # noqa: E402
from attentivenas.nn.static import SqueezeExcite  # noqa: E402
from attentivenas.space import ATTENTIVENAS_SPACE, named_arch  # noqa: E402
from bench_runtimes import _macs, measure  # noqa: E402


def swap(model: nn.Module, kind: type[nn.Module], make) -> nn.Module:
    """A copy of ``model`` with every submodule of type ``kind`` replaced by ``make()``."""
    out = copy.deepcopy(model)
    for child in list(out.modules()):
        for sub_name, sub in list(child.named_children()):
            if isinstance(sub, kind):
                setattr(child, sub_name, make())
    return out.eval()


def variants() -> list[tuple[str, nn.Module, int]]:
    torch.manual_seed(0)
    arch = named_arch("a0")
    a0 = Supernet(ATTENTIVENAS_SPACE, 1000).eval().extract(arch).eval()
    mbv3 = mobilenet_v3_large(weights=None).eval()
    from torchvision.ops.misc import SqueezeExcitation  # heavy: only to count MobileNetV3's SE

    assert any(isinstance(m, SqueezeExcitation) for m in mbv3.modules())
    r = arch.resolution
    return [
        ("A0", a0, r),
        ("A0 without SE", swap(a0, SqueezeExcite, nn.Identity), r),
        ("A0 with hard-swish", swap(a0, nn.SiLU, nn.Hardswish), r),
        ("A0 without SE, hard-swish", swap(swap(a0, SqueezeExcite, nn.Identity), nn.SiLU, nn.Hardswish), r),
        ("mobilenet_v3_large", mbv3, 224),
        ("mobilenet_v3_large with swish", swap(mbv3, nn.Hardswish, nn.SiLU), 224),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batches", default="1,32")
    ap.add_argument("--runtimes", default="torch,onnxruntime")
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()
    runtimes = [r for r in args.runtimes.split(",") if r in RUNTIMES and is_available(r)]
    batches = [int(b) for b in args.batches.split(",")]
    rows = []
    for name, model, res in variants():
        mflops = _macs(model, res)
        for runtime in runtimes:
            for batch in batches:
                repeats = args.repeats if batch == 1 else max(3, args.repeats // 4)
                m = measure(runtime, model, res, batch, args.threads, repeats, "wall")
                rows.append((name, mflops, runtime, batch, m["median_ms"], m["median_ms"] * 1e3 / (mflops * batch)))
    ref = {(rt, b): us for n, _, rt, b, _, us in rows if n == "mobilenet_v3_large"}
    print(f"{args.threads} thread(s), load {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print("| model | MFLOPs | runtime | batch | median ms | us/MFLOP/image | x MobileNetV3 per MFLOP |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for n, mf, rt, b, ms, us in rows:
        print(f"| {n} | {mf:.1f} | {rt} | {b} | {ms:.2f} | {us:.2f} | {us / ref[(rt, b)]:.2f} |")


if __name__ == "__main__":
    main()
