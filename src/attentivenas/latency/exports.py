"""Programs of ops and whole subnets exported in worker processes (``build-table --jobs N``).

Exporting is the slow part of a table in the graph runtimes: lowering to ExecuTorch's XNNPACK
delegate takes about 2 s of one core per op and 30-60 s per whole subnet here, and it is
single-threaded Python. Workers rebuild each module from its seed (the same weights as in this
process: :func:`~.ops.seeded_op_module`, :func:`~.measure.seeded_supernet`), export it at its input
shape and send back the program's bytes; this process loads them (:func:`~.runtimes.load_program`)
and times everything after the workers have exited, so no export runs beside the timing.
"""

from __future__ import annotations

import json
import multiprocessing
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import torch

from ..progress import progress_iter
from ..runtimes.runners import check_program_runtime, export_program
from ..space import Arch, SearchSpace
from .measure import random_subnet, seeded_supernet
from .ops import OpSig, op_input_shape, seeded_op_module


@dataclass(frozen=True)
class ExportJob:
    """One program to export: an op (``key`` is its :meth:`OpSig.key`, weights from ``seed``) or a
    whole subnet (``key`` is its arch as JSON, ``seed`` None: its weights come from the table's
    seeded supernet, whose seed each worker holds)."""

    kind: str  # "op" | "arch"
    key: str
    seed: int | None = None

    @classmethod
    def op(cls, sig: OpSig, seed: int) -> ExportJob:
        return cls("op", sig.key(), seed)

    @classmethod
    def arch(cls, arch: Arch) -> ExportJob:
        return cls("arch", json.dumps(arch.to_dict(), sort_keys=True))


_STATE: dict[str, Any] = {}


def _start_worker(space: dict[str, Any], num_classes: int, seed: int, batch: int, runtime: str,
                  precision: str = "fp32") -> None:
    torch.set_num_threads(1)  # one export per core
    _STATE.update(space=SearchSpace.from_dict(space), num_classes=num_classes, seed=seed, batch=batch,
                  runtime=runtime, precision=precision, supernet=None)


def _export(job: ExportJob) -> bytes:
    st = _STATE
    space: SearchSpace = st["space"]
    if job.kind == "op":
        sig = OpSig.from_key(job.key)
        assert job.seed is not None, "an op job carries its weights' seed"
        module = seeded_op_module(sig, job.seed, space.act, st["runtime"])
        x = torch.zeros(st["batch"], *op_input_shape(sig))
    else:
        arch = space.validate(Arch.from_dict(json.loads(job.key)))
        if st["supernet"] is None:
            st["supernet"] = seeded_supernet(space, st["num_classes"], st["seed"])
        module = random_subnet(space, arch, st["num_classes"], st["seed"], st["supernet"])
        x = torch.zeros(st["batch"], 3, arch.resolution, arch.resolution)
    return export_program(module, x, st["runtime"], st["precision"])


def iter_programs(jobs: Sequence[ExportJob], space: SearchSpace, runtime: str, batch: int, num_classes: int,
                  seed: int, workers: int, progress: bool = False, precision: str = "fp32") -> Iterator[bytes]:
    """The program bytes of every job, in order, as they are exported by ``workers`` processes (one
    thread each), in ``precision`` (INT8 programs are quantized in the workers too). The caller loads
    or writes each and lets it go: 250 subnets of the attentivenas space are about 10 GB of fp32
    programs, which a list of them all held beside their loaded sessions did not fit in 23 GB."""
    check_program_runtime(runtime)
    if not jobs:
        return
    ctx = multiprocessing.get_context("spawn")  # a clean interpreter: no forked torch or runtime threads
    init = (space.to_dict(), num_classes, seed, batch, runtime, precision)
    with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=ctx, initializer=_start_worker,
                             initargs=init) as pool:
        yield from progress_iter(pool.map(_export, jobs), len(jobs), f"export ({runtime}, {workers} jobs)", progress)
