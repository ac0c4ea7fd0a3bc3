"""How far a supernet's ranking of subnets can be trusted: inherited against standalone top-1.

A *probe set* is a few subnets spread over the FLOPs range, each trained alone from scratch (for
example with ``attentivenas finetune --init scratch --distill none``), with its standalone top-1 on
a split. :func:`ranking_report` compares those numbers with the top-1 the same subnets reach with the
supernet's weights (BN recalibrated, :class:`~attentivenas.accuracy.SubnetEvaluator`): Kendall's tau
and Spearman's rho between the two rankings, and the gap in points (inherited - standalone) per
subnet and on average. ``attentivenas ranking --checkpoint CKPT --probe FILE`` measures and prints it.

The probe file is JSON: ``{"split": "test", "subnets": [{"name": "p0", "arch": {...}, "top1": 88.1},
...]}`` (or the list alone), or JSON lines with one such subnet per line; ``split`` is optional and,
when given, must be the split the inherited accuracies are measured on. The ``index.json`` that
``attentivenas finetune --pareto ARCHS --init scratch --distill none`` writes is a probe file too:
each subnet's ``after`` top-1 on the split asked for (default ``test``). So is a *folder* of
``finetune`` runs: its ``index.json`` and every ``*/result.json`` (one ``finetune --arch ... --out
FOLDER/<name>`` per subnet, the way to train a probe over several sessions; a subnet found twice, as
``--pareto`` writes it, counts once). At least :data:`MIN_PROBES` subnets, each arch valid in the
checkpoint's space, each top-1 in [0, 100].
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import kendalltau, spearmanr

from ..costs import count_flops
from ..errors import UserError
from ..io import MAX_FILE_BYTES, loads_json, read_text_file
from ..space import Arch, SearchSpace

#: fewer subnets say nothing about a ranking (tau over 3 subnets takes 4 values)
MIN_PROBES = 3
#: a probe set is a handful of subnets; more than this is not a probe file
MAX_PROBES = 10_000
#: probe files are small
MAX_PROBE_BYTES = min(MAX_FILE_BYTES, 16 << 20)


@dataclass(frozen=True)
class ProbeSubnet:
    """One subnet of a probe set: its arch and the top-1 (%) it reached trained alone."""

    name: str
    arch: Arch
    standalone_top1: float


@dataclass(frozen=True)
class ProbeSet:
    """The subnets of a probe file and the split their standalone top-1 was measured on (None: not said)."""

    subnets: tuple[ProbeSubnet, ...]
    split: str | None = None


def _records(text: str, path: Path) -> tuple[list[Any], str | None]:
    try:
        obj = loads_json(text)
    except ValueError:  # JSON lines
        try:
            return [loads_json(line) for line in text.splitlines() if line.strip()], None
        except ValueError as exc:
            raise UserError(f"probe file {path}: neither JSON nor JSON lines ({exc})") from None
    if isinstance(obj, dict) and "subnets" in obj:
        split = obj.get("split")
        if split is not None and not isinstance(split, str):
            raise UserError(f"probe file {path}: 'split' must be a string, got {split!r}")
        return obj["subnets"], split
    if isinstance(obj, dict):
        return [obj], None
    return obj, None


def _finetuned(rec: dict[str, Any], split: str, where: str) -> dict[str, Any]:
    """A subnet of ``finetune``'s index.json as a probe record: its top-1 after training on ``split``."""
    after = rec["after"].get(split) if isinstance(rec["after"], dict) else None
    if not isinstance(after, dict) or "top1" not in after:
        raise UserError(f"{where}: the fine-tuning record has no top-1 on the {split!r} split")
    name = rec.get("folder") or rec.get("name")
    return {"arch": rec.get("arch"), "top1": after["top1"], **({"name": name} if name else {})}


def arch_key(arch: dict[str, Any]) -> str:
    """One string per architecture, whatever order its fields were written in and however its numbers
    were written (``3.0`` and ``3`` are one value): :meth:`Arch.key` of the arch it describes (a dict
    that is not an arch: its sorted JSON)."""
    try:
        return Arch.from_dict(arch).key()
    except (UserError, ValueError, TypeError, KeyError):
        return json.dumps(arch, sort_keys=True)


def _json_file(path: Path, what: str) -> Any:
    try:
        return loads_json(read_text_file(path, what, UserError, MAX_PROBE_BYTES))
    except ValueError as exc:
        raise UserError(f"{what} {path} is not valid JSON ({exc})") from None


def finetune_records(folder: str | Path) -> list[dict[str, Any]]:
    """The ``finetune`` results in a folder: its ``index.json`` (``--pareto``) and every
    ``*/result.json`` (one run per subnet folder, named by it), one record per arch (two records of one
    arch must agree); one-line user errors for a damaged file. [] when there are none."""
    d = Path(folder)
    found: list[tuple[dict[str, Any], str]] = []
    index = d / "index.json"
    if index.is_file():
        entries = _json_file(index, "probe index")
        if not isinstance(entries, list):
            raise UserError(f"{index}: expected the list that finetune --pareto writes")
        found += [(e, f"{index}, entry {i}") for i, e in enumerate(entries)]
    results = sorted(d.glob("*/result.json"))
    if len(results) > MAX_PROBES:
        raise UserError(f"probe folder {d}: {len(results)} results; a probe set has at most {MAX_PROBES}")
    for path in results:
        rec = _json_file(path, "probe subnet result")
        found.append(({"folder": path.parent.name, **rec} if isinstance(rec, dict) else rec, str(path)))
    records: dict[str, dict[str, Any]] = {}
    for rec, where in found:
        if not isinstance(rec, dict) or not isinstance(rec.get("arch"), dict) or not isinstance(rec.get("after"), dict):
            raise UserError(f"{where}: expected a finetune record with 'arch' and 'after'")
        key = arch_key(rec["arch"])
        if key in records and records[key]["after"] != rec["after"]:
            raise UserError(f"{where}: the same subnet as {records[key]['_where']} with other results")
        records.setdefault(key, {**rec, "_where": where})
    return [{k: v for k, v in r.items() if k != "_where"} for r in records.values()]


def read_probe_set(path: str | Path, space: SearchSpace, split: str | None = None) -> ProbeSet:
    """The probe set in ``path`` (a file or a folder of finetune runs), every arch validated against
    ``space``; one-line user errors for a missing or malformed file, a bad record or too few subnets.
    ``split``: the split the inherited top-1 will be measured on (None: not decided): a probe file that
    names another split is refused, and finetune's records are read on it (default test)."""
    p = Path(path)
    if p.is_dir():
        records, file_split = finetune_records(p), None
    else:
        records, file_split = _records(read_text_file(p, "probe file", UserError, MAX_PROBE_BYTES), p)
    if file_split is not None and split is not None and file_split != split:
        raise UserError(f"--split {split}: the probe file's top-1 was measured on the {file_split!r} split; "
                        "measure the inherited top-1 on the same split")
    if not isinstance(records, list):
        raise UserError(f"probe file {p}: expected a list of subnets, got {type(records).__name__}")
    if not MIN_PROBES <= len(records) <= MAX_PROBES:
        raise UserError(f"probe file {p}: {len(records)} subnets; a probe set has {MIN_PROBES} to {MAX_PROBES}")
    index_split = split or "test"  # the split read from a finetune index
    subnets, from_index = [], False
    for i, rec in enumerate(records):
        where = f"probe file {p}, subnet {i}"
        from_index = from_index or _is_finetune_record(rec)
        rec = _probe_record(rec, index_split, where)
        try:
            arch = space.validate(Arch.from_dict(rec["arch"]))
        except (UserError, ValueError, TypeError, KeyError) as exc:
            raise UserError(f"{where}: {exc}") from None
        subnets.append(ProbeSubnet(str(rec.get("name", f"p{i}")), arch, float(rec["top1"])))
    return ProbeSet(tuple(subnets), file_split if file_split is not None else (index_split if from_index else None))


def _is_finetune_record(rec: Any) -> bool:
    return isinstance(rec, dict) and "after" in rec and "top1" not in rec


def _probe_record(rec: Any, split: str, where: str) -> dict[str, Any]:
    """One probe record, ``{"arch", "top1", "name"?}``, from a probe file's entry or a ``finetune``
    record (its top-1 after training on ``split``); one-line user errors for a bad record or top-1."""
    if _is_finetune_record(rec):
        rec = _finetuned(rec, split, where)
    if not isinstance(rec, dict) or "arch" not in rec or "top1" not in rec:
        raise UserError(f"{where}: expected an object with 'arch' and 'top1'")
    top1 = rec["top1"]
    if isinstance(top1, bool) or not isinstance(top1, (int, float)) or not 0.0 <= float(top1) <= 100.0:
        raise UserError(f"{where}: 'top1' must be a number in [0, 100] (percent), got {top1!r}")
    return rec


def finetuned_top1(folder: str | Path, split: str = "test") -> dict[str, float]:
    """The subnets trained so far in a folder of ``finetune`` runs (:func:`finetune_records`): arch key
    (:func:`arch_key`) -> top-1 (%) after training on ``split``, with no minimum count (a probe set
    being trained); one-line user errors as :func:`read_probe_set`'s."""
    found = {}
    for i, rec in enumerate(finetune_records(folder)):
        rec = _probe_record(rec, split, f"probe folder {folder}, subnet {rec.get('folder', i)}")
        found[arch_key(rec["arch"])] = float(rec["top1"])
    return found


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def ranking_report(names: Sequence[str], mflops: Sequence[float], inherited: Sequence[float],
                   standalone: Sequence[float]) -> dict[str, Any]:
    """Kendall's tau-b and Spearman's rho (with their two-sided p-values) between the inherited and
    standalone top-1, the gap inherited - standalone (points) per subnet, its mean and mean absolute
    value. A correlation is ``None`` ("undefined") when either side is constant."""
    a = np.asarray(inherited, dtype=np.float64)
    b = np.asarray(standalone, dtype=np.float64)
    if not len(names) == len(mflops) == a.size == b.size:
        raise ValueError("names, mflops, inherited and standalone must have one value per subnet")
    tau = rho = tau_p = rho_p = float("nan")
    if a.size >= 2 and np.ptp(a) > 0 and np.ptp(b) > 0:
        kt, sr = kendalltau(a, b), spearmanr(a, b)
        tau, tau_p, rho, rho_p = float(kt.statistic), float(kt.pvalue), float(sr.statistic), float(sr.pvalue)
    gap = a - b
    rows = [{"name": n, "mflops": round(float(m), 4), "inherited_top1": round(float(x), 4),
             "standalone_top1": round(float(y), 4), "gap": round(float(g), 4)}
            for n, m, x, y, g in zip(names, mflops, a, b, gap, strict=True)]
    return {"n": int(a.size), "kendall_tau": _finite_or_none(tau), "kendall_p": _finite_or_none(tau_p),
            "spearman_rho": _finite_or_none(rho), "spearman_p": _finite_or_none(rho_p),
            "mean_gap": round(float(gap.mean()), 4) if gap.size else None,
            "mean_abs_gap": round(float(np.abs(gap).mean()), 4) if gap.size else None, "subnets": rows}


def measure_ranking(probes: ProbeSet, inherited_top1: Callable[[Arch], float], space: SearchSpace,
                    num_classes: int, progress: Callable[[int, int, ProbeSubnet, float], None] | None = None,
                    ) -> dict[str, Any]:
    """Measure every probe subnet's inherited top-1 with ``inherited_top1`` (e.g. a
    :class:`~attentivenas.accuracy.SubnetEvaluator`) and return :func:`ranking_report` of the set."""
    inherited = []
    for i, probe in enumerate(probes.subnets):
        value = float(inherited_top1(probe.arch))
        inherited.append(value)
        if progress is not None:
            progress(i + 1, len(probes.subnets), probe, value)
    return ranking_report([s.name for s in probes.subnets],
                          [count_flops(space, s.arch, num_classes) for s in probes.subnets],
                          inherited, [s.standalone_top1 for s in probes.subnets])
