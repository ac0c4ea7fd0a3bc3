"""Fine-tuning every subnet of a Pareto file (``finetune --pareto``): one run folder per subnet and
``index.json`` over them."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ..devices import resolve_device
from ..export.pareto import read_pareto_archs
from ..io import OutputLock, atomic_write_json
from ..nn import load_supernet
from .finetune import finetune
from .finetune_settings import FinetuneResult, FinetuneSettings


def finetune_pareto(checkpoint: str | Path, pareto: str | Path, out_dir: str | Path, data: str | None = None,
                    settings: FinetuneSettings | None = None, resume: str | Path | None = None,
                    space: str | None = None, log: Any = None) -> list[FinetuneResult]:
    """:func:`finetune` of every subnet of a Pareto set into ``DIR/subnet_<i>/`` (in the set's order),
    then ``DIR/index.json`` (one entry per subnet: arch, MFLOPs, folder, top-1 before and after).
    ``resume="auto"`` continues where it stopped: finished subnets are measured again from their
    final checkpoints, not retrained."""
    s = settings or FinetuneSettings()
    say = log or (lambda line: print(line, file=sys.stderr, flush=True))
    out = Path(out_dir)
    with OutputLock(out, "fine-tuning folder"):
        loaded = load_supernet(checkpoint, space, device=resolve_device(s.device))
        archs = read_pareto_archs(pareto, loaded[0].space)
        results = []
        for i, a in enumerate(archs):
            sub = out / f"subnet_{i:03d}"
            say(f"subnet {i + 1}/{len(archs)}: {a.to_json()} -> {sub}")
            results.append(finetune(checkpoint, a, sub, data, s, resume, space, say, loaded))
        index = [{"folder": r.out_dir.name, "arch": r.result["arch"], "mflops": r.result["mflops"],
                  "checkpoint": str(r.checkpoint), "before": r.result["before"], "after": r.result["after"]}
                 for r in results]
        atomic_write_json(out / "index.json", index)
    return results
