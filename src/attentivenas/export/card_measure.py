"""What a bundle's model card measures: each runtime file loaded and timed (``file_runner``, ``latency_fn``),
the machine it was timed on, and the top-1 of the bundled weights per split and precision (``CardMeasure``)."""

from __future__ import annotations

import os
import platform
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..accuracy import SubnetEvaluator, holdout_warning
from ..accuracy.evaluate import evaluate_subnet
from ..config import MeasureSettings
from ..data.facts import class_names_of
from ..devices import device_name
from ..errors import UserError
from ..latency.measure import result_of, time_runner
from ..nn import to_model_resolution
from ..runtimes.quantize import DEFAULT_MAX_INT8_DROP, check_int8_accuracy, int8_drop_fields
from ..runtimes.records import runtime_for_format
from ..runtimes.runners import Runner, bind_file
from ..space import Arch

#: ``--card-split`` values and the splits each measures
CARD_SPLITS = {"holdout": ("holdout",), "test": ("test",), "both": ("holdout", "test")}
#: the card's latency: a quick measurement (warm-up runs, timed runs)
LATENCY_WARMUP, LATENCY_REPEATS = 3, 10


def machine_line(threads: int) -> str:
    """The machine the card's latency was measured on: CPU model, cores, OS, threads used."""
    return (f"{device_name('cpu')} ({os.cpu_count()} logical cores, {platform.system()} {platform.machine()}), "
            f"{threads} thread{'s' if threads != 1 else ''}")


def file_runner(path: Path, fmt: str, batch: int, resolution: int, threads: int) -> Runner:
    """A runtime file loaded by the runtime of its format's record (``torch`` runs a ``.pt2`` with
    ``torch.export.load``) with ``threads`` and bound to a seeded random batch."""
    x = torch.randn(batch, 3, resolution, resolution, generator=torch.Generator().manual_seed(0))
    return bind_file(runtime_for_format(fmt), path.read_bytes(), x, threads)


def latency_fn(resolution: int, threads: int):  # noqa: ANN201 - returns a export.bundle.LatencyFn
    """``latency_fn`` of :func:`write_bundle`: each runtime file timed at batch 1 (its own batch when fixed)."""

    def measure(path: Path, fmt: str, precision: str, batch: int | str) -> dict[str, Any]:
        n = batch if isinstance(batch, int) else 1
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            runner = file_runner(path, fmt, n, resolution, threads)
            times = time_runner(runner, LATENCY_WARMUP, LATENCY_REPEATS)
        finally:
            torch.set_num_threads(previous)
        res = result_of(times, runner, n, "wall", LATENCY_REPEATS).to_dict()
        return {k: res[k] for k in ("median_ms", "p90_ms", "batch", "threads", "repeats")}

    return measure


def _split_images(dataset: Any, model: nn.Module, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded random subset of ``n`` images of a split (all of them when it has fewer), at the model's size."""
    total = len(dataset)
    idx = np.sort(np.random.default_rng(seed).choice(total, min(n, total), replace=False))
    items = [dataset[int(i)] for i in idx]
    x = torch.stack([it[0] for it in items])
    return to_model_resolution(x, model).cpu(), torch.as_tensor([int(it[1]) for it in items])


class CardMeasure:
    """Top-1 of a bundled model on the checkpoint's data, per split and precision (``warn``: where the
    hold-out's warning line goes)."""

    def __init__(self, net: nn.Module, meta: dict[str, Any], data: str | None, measure: MeasureSettings,
                 splits: Sequence[str], device: torch.device, warn: Callable[[str], None]) -> None:
        ev = SubnetEvaluator.for_supernet(net, meta, data, measure.model_copy(update={"split": "test"}),
                                          device, warn=warn)  # the hold-out is checked below
        self.evaluator, self.device, self.notes = ev, device, []
        self.splits: list[str] = []
        for split in splits:
            message = holdout_warning(meta, ev.bundle, split) if split == "holdout" else None
            if split == "holdout" and len(ev.bundle.val) == 0:  # type: ignore[arg-type]
                self.notes.append("no hold-out split: the checkpoint held out no training images")
            elif message is not None and len(splits) > 1:
                self.notes.append("no hold-out top-1: the checkpoint trained on those images")
            else:
                if message is not None:
                    warn(message)
                self.splits.append(split)
        if not self.splits:
            raise UserError(f"--card-split {'/'.join(splits)}: {self.notes[0] if self.notes else 'nothing to measure'}"
                            "; use --card-split test or --no-card-metrics")

    @property
    def data_name(self) -> str:
        return str(self.evaluator.bundle.name)

    def class_names(self, num_classes: int) -> list[str] | None:
        return class_names_of(self.evaluator.bundle.test, num_classes, self.data_name)

    def fp32(self, model: nn.Module, arch: Arch) -> list[dict[str, Any]]:
        """Top-1 and top-5 of ``model`` (PyTorch, fp32) on each split."""
        out = []
        for split in self.splits:
            ev = self.evaluator.on_split(split)
            res = evaluate_subnet(model, ev.loader_for(arch), self.device)
            out.append({"split": split, "precision": "fp32", "dataset": self.data_name, "top1": res["top1"],
                        "top5": res["top5"], "samples": int(res["samples"])})
        return out

    def int8(self, model: nn.Module, arch: Arch, folder: Path, files: Mapping[str, Mapping[str, Any]],
             check_images: int, max_drop: float = DEFAULT_MAX_INT8_DROP) -> list[dict[str, Any]]:
        """Top-1 of each INT8 runtime file, run by its runtime, on ``check_images`` images of each split (a
        seeded random subset), beside the fp32 model's on the same images."""
        out = []
        cpu_model = model.to("cpu")
        for split in self.splits:
            ev = self.evaluator.on_split(split)
            images, labels = _split_images(ev.loader_for(arch).dataset, cpu_model, check_images,
                                           int(ev.settings.calib_seed or 0))
            for name, f in files.items():
                if f["precision"] != "int8":
                    continue
                batch = f["batch"] if isinstance(f["batch"], int) else 1
                res = check_int8_accuracy(folder / name, f["format"], images, labels, cpu_model, batch=batch)
                out.append({"split": split, "precision": "int8", "file": name, "dataset": self.data_name,
                            "top1": res["top1_int8"], "samples": int(res["check_images"]),
                            "top1_fp32": res["top1_fp32"], **int8_drop_fields(res, max_drop),
                            "note": f"{name} on {split}: fp32 top-1 on the same {res['check_images']} images "
                                    f"{res['top1_fp32']:.2f}%, agreement {100 * res['agreement']:.1f}%"})
        return out
