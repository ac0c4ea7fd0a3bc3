"""A Pareto set exported as one folder: its archs read (deduplicated, bounded), each subnet written
in a format, and ``index.json`` written last (:func:`export_pareto_set`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..costs import count_flops, count_params
from ..io import atomic_write_json
from ..runtimes.quantize import DEFAULT_MAX_INT8_DROP
from ..space import Arch, SearchSpace
from ..space.pareto_file import MAX_PARETO_ENTRIES, check_pareto_size, drop_repeated, read_pareto_file
from .folders import clean_export_folder, export_lock, file_sha256
from .formats import DEFAULT_FORMAT, INDEX_KEYS, INDEX_NAME, SUFFIXES, ExportError, check_format, export_subnet

#: the most entries a Pareto set may hold (each is exported or fine-tuned)
MAX_PARETO_ARCHS = MAX_PARETO_ENTRIES


def read_pareto_archs(pareto: str | Path | Sequence[Any], space: SearchSpace) -> list[Arch]:
    """Archs of a Pareto set, one per subnet: a ``pareto.json`` path
    (:func:`~attentivenas.space.pareto_file.read_pareto_file`), or a list of entries ``{"arch": {...}}`` or archs."""
    if isinstance(pareto, (str, Path)):
        pareto = read_pareto_file(pareto, ExportError)
    if not isinstance(pareto, Sequence) or len(pareto) == 0:
        raise ExportError("Pareto set is empty")
    check_pareto_size(len(pareto), ExportError)
    archs = []
    for entry in pareto:
        if isinstance(entry, Arch):
            archs.append(space.validate(entry))
        elif isinstance(entry, Mapping):
            archs.append(space.arch_from_dict(entry["arch"] if "arch" in entry else entry))
        else:
            raise ExportError(f"Pareto set entries must be objects with an 'arch', got {type(entry).__name__}")
    return drop_repeated(archs, Arch.key)  # the validated arch: the same subnet written twice is one subnet


def export_pareto_set(supernet: nn.Module, pareto: str | Path | Sequence[Any], out_dir: str | Path,
                      fmt: str = DEFAULT_FORMAT, calib_batches: Sequence[torch.Tensor] | None = None,
                      precision: str = "fp32", calib_images: torch.Tensor | None = None,
                      check_data: tuple[torch.Tensor, torch.Tensor] | None = None,
                      max_int8_drop: float = DEFAULT_MAX_INT8_DROP, **kwargs: Any) -> list[dict[str, Any]]:
    """Export every arch of a Pareto set from ``supernet`` into ``out_dir`` (one file per arch, plus
    ``index.json`` listing arch, MFLOPs, params, file, its sha256, precision and, for ONNX / ``.pt2`` /
    ``.pte`` / OpenVINO, the batch; for INT8, the calibration images and the check's top-1s).
    ``calib_batches``: recalibrate BN first; ``precision``, ``calib_images``, ``check_data``,
    ``max_int8_drop``: as in :func:`export_subnet`.

    The folder is locked (:func:`export_lock`) while it is written; what a killed export left there is
    removed first, an earlier ``index.json`` is removed before any file is rewritten and the new one is
    written last: a folder with an ``index.json`` holds the files it describes."""
    check_format(fmt, kwargs, precision)
    space = supernet.space
    num_classes = int(getattr(supernet, "num_classes", 1000))
    archs = read_pareto_archs(pareto, space)
    out = Path(out_dir)
    with export_lock(out, folder=True):
        clean_export_folder(out)
        (out / INDEX_NAME).unlink(missing_ok=True)
        records = []
        for i, arch in enumerate(archs):
            mflops = count_flops(space, arch, num_classes)
            path = out / f"subnet_{i:02d}_{mflops:.4g}mflops{SUFFIXES[fmt]}"
            info = export_subnet(supernet.extract(arch), path, fmt, calib_batches, precision, calib_images,
                                 check_data, max_int8_drop, **kwargs)
            record = {"file": _relative(info["path"], out), "sha256": file_sha256(info["path"]),
                      "arch": arch.to_dict(), "mflops": mflops,
                      "params_m": count_params(space, arch, num_classes) / 1e6, "format": fmt}
            record.update({k: v for k, v in info.items() if k in INDEX_KEYS})
            for key in ("config", "weights"):
                if key in info:
                    record[key] = _relative(info[key], out)
            records.append(record)
        atomic_write_json(out / INDEX_NAME, records)
    return records


def _relative(path: str | Path, root: Path) -> str:
    """``path`` relative to the set's folder (``subnet_00_1.2mflops.onnx``; the weights of ``--format
    safetensors``: ``subnet_00_1.2mflops.safetensors/model.safetensors``)."""
    return Path(path).relative_to(root).as_posix()
