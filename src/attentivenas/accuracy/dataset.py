"""(arch, accuracy) datasets: records, and JSON-lines files that survive interruption.

A dataset file is a header line naming the space, then one record per line keyed by
``Arch.key()``. :class:`JsonlAppender` appends (and fsyncs) one record at a time, so an interrupted
build keeps its work; measuring archs into a dataset is :mod:`attentivenas.accuracy.measure`.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..costs import CostModel
from ..errors import ConfigError, UserError
from ..io import atomic_write_text, loads_json, read_text_file, user_file_errors
from ..space import Arch, SearchSpace, get_space

DATASET_FORMAT = "attentivenas-arch-dataset"
VERSION = 1


@dataclass(frozen=True)
class ArchRecord:
    """One evaluated arch: accuracy (top-1, percent) plus its analytic cost."""

    arch: Arch
    accuracy: float
    mflops: float
    params_m: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.arch.key(),
            "arch": self.arch.to_dict(),
            "accuracy": float(self.accuracy),
            "mflops": float(self.mflops),
            "params_m": float(self.params_m),
        }


def dataset_header(space: SearchSpace, num_classes: int, measured_with: dict[str, Any] | None = None
                   ) -> dict[str, Any]:
    """The first line of a dataset JSONL: format, version, space and number of classes, and what
    measured its accuracies when known (``measured_with``: see :mod:`attentivenas.accuracy.provenance`)."""
    header = {"format": DATASET_FORMAT, "version": VERSION, "space": space.to_dict(), "num_classes": num_classes}
    return header if measured_with is None else {**header, "measured_with": measured_with}


class ArchDataset:
    """Records of evaluated archs of one space, unique by ``arch.key()`` (the last one wins)."""

    def __init__(self, space: SearchSpace, records: Iterable[ArchRecord] = (), num_classes: int = 1000) -> None:
        self.space = space
        self.num_classes = int(num_classes)
        self._records: dict[str, ArchRecord] = {}
        for r in records:
            self.add(r)

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self):
        return iter(self._records.values())

    def __contains__(self, arch: Arch) -> bool:
        return arch.key() in self._records

    def get(self, arch: Arch) -> ArchRecord | None:
        return self._records.get(arch.key())

    def add(self, record: ArchRecord) -> None:
        self._records[record.arch.key()] = record

    @property
    def records(self) -> list[ArchRecord]:
        return list(self._records.values())

    def genes(self) -> np.ndarray:
        """Gene matrix, shape (n, num_genes)."""
        if not self._records:
            return np.zeros((0, self.space.num_genes), dtype=np.int64)
        return self.space.encode_many([r.arch for r in self._records.values()])

    def accuracies(self) -> np.ndarray:
        return np.array([r.accuracy for r in self._records.values()], dtype=np.float64)

    def mflops(self) -> np.ndarray:
        return np.array([r.mflops for r in self._records.values()], dtype=np.float64)

    def subset(self, archs: Iterable[Arch]) -> ArchDataset:
        """The records of ``archs`` (those present), in that order."""
        recs = [self._records[a.key()] for a in archs if a.key() in self._records]
        return ArchDataset(self.space, recs, self.num_classes)

    def save(self, path: str | Path) -> Path:
        """Write header + records as JSON lines, atomically."""
        lines = [json.dumps(dataset_header(self.space, self.num_classes))]
        lines += [json.dumps(r.to_dict()) for r in self._records.values()]
        return atomic_write_text(path, "\n".join(lines) + "\n")

    @classmethod
    def load(cls, path: str | Path, space: SearchSpace | None = None, num_classes: int | None = None) -> ArchDataset:
        """Read a JSONL dataset. The space comes from the file's header, else ``space``, else the
        ``attentivenas`` preset; a header of another space than ``space`` is an error. A truncated
        last line (an interrupted write) is skipped; any other bad line raises :class:`ConfigError`."""
        p = Path(path)
        return cls.loads(read_text_file(p, "dataset file", ConfigError), space, num_classes, p)

    @classmethod
    def loads(cls, text: str, space: SearchSpace | None = None, num_classes: int | None = None,
              path: str | Path = "<memory>") -> ArchDataset:
        """:meth:`load` of a file's text (``path`` names it in errors)."""
        p = Path(path)
        header, rows = _parse_jsonl(p, text)
        if header is not None:
            file_space = _space_from_header(p, header)
            if space is not None and not space.same_as(file_space):
                raise ConfigError(
                    f"dataset {p} was built on space '{file_space.name}', not '{space.name}' (the supernet configs differ)"
                )
            space = file_space
            if num_classes is None:
                num_classes = int(header.get("num_classes", 1000))
        space = space or get_space(None)
        ds = cls(space, num_classes=1000 if num_classes is None else num_classes)
        cost = CostModel(space, ds.num_classes)
        first: dict[str, int] = {}
        repeated = 0
        for lineno, row in rows:
            rec = _record_from_row(p, lineno, row, space, cost)
            key = rec.arch.key()  # of the validated arch: 3.0 and 3 are one subnet
            if key in first:
                if ds.get(rec.arch).accuracy != rec.accuracy:  # type: ignore[union-attr]
                    raise ConfigError(f"dataset {p} line {lineno}: the same subnet as line {first[key]} with another "
                                      f"accuracy ({rec.accuracy:g} against {ds.get(rec.arch).accuracy:g}); "  # type: ignore[union-attr]
                                      "a subnet is measured once")
                repeated += 1
                continue
            first[key] = lineno
            ds.add(rec)
        if repeated:
            warnings.warn(f"{p}: {repeated} repeated record(s) of a subnet already in the file are counted once",
                          stacklevel=3)
        return ds


def _parse_jsonl(path: Path, text: str) -> tuple[dict | None, list[tuple[int, dict]]]:
    lines = text.split("\n")
    complete = text.endswith("\n")
    header: dict | None = None
    rows: list[tuple[int, dict]] = []
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = loads_json(line)
        except ValueError:  # bad JSON, or nested too deeply
            if i == len(lines) and not complete:
                warnings.warn(f"{path}: skipping a truncated last line (interrupted write)", stacklevel=3)
                continue
            raise ConfigError(f"dataset {path} line {i} is not valid JSON") from None
        if not isinstance(obj, dict):
            raise ConfigError(f"dataset {path} line {i} must be a JSON object")
        if obj.get("format") == DATASET_FORMAT:
            header = obj
        else:
            rows.append((i, obj))
    return header, rows


def _space_from_header(path: Path, header: dict) -> SearchSpace:
    try:
        return SearchSpace.from_dict(header["space"])
    except (KeyError, TypeError, UserError) as exc:
        raise ConfigError(f"dataset {path} has a bad header: {exc}") from None


def _record_from_row(path: Path, lineno: int, row: dict, space: SearchSpace, cost: CostModel) -> ArchRecord:
    where = f"dataset {path} line {lineno}"
    if "arch" not in row or "accuracy" not in row:
        raise ConfigError(f"{where} needs keys 'arch' and 'accuracy'")
    try:
        arch = space.arch_from_dict(row["arch"])
    except UserError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    acc = row["accuracy"]
    if isinstance(acc, bool) or not isinstance(acc, (int, float)) or not math.isfinite(acc):
        raise ConfigError(f"{where}: 'accuracy' must be a finite number, got {acc!r}")
    if not 0.0 <= acc <= 100.0:
        raise ConfigError(f"{where}: 'accuracy' {acc!r} is outside [0, 100] (top-1 in percent)")
    mflops, params = row.get("mflops"), row.get("params_m")
    if not (_positive(mflops) and _positive(params)):  # missing or damaged: recomputed
        f, p = cost.flops_and_params(space.encode(arch)[None, :])
        mflops, params = float(f[0]), float(p[0]) / 1e6
    return ArchRecord(arch, float(acc), float(mflops), float(params))


def _positive(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value) and value > 0


class JsonlAppender:
    """Appends one JSON line per call with a single write, then flush + fsync."""

    def __init__(self, path: Path, header: dict[str, Any]) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() and path.stat().st_size > 0:
            _drop_partial_tail(path)
        else:
            atomic_write_text(path, json.dumps(header) + "\n")

    def append(self, obj: dict[str, Any]) -> None:
        data = (json.dumps(obj) + "\n").encode("utf-8")
        with user_file_errors(self.path):  # a torn line is cut on the next open
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)


def _drop_partial_tail(path: Path) -> None:
    """Cut a file after its last newline (a record half-written by an interrupted run)."""
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        with open(path, "r+b") as f:
            f.truncate(cut)
