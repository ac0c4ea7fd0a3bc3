"""What ``attentivenas evaluate`` and ``ranking`` do and report, as small functions the CLI calls: a
checkpoint loaded on a device, its subnet (or the published models, or a probe set) measured, and
the JSON object and lines each command prints."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..config import MeasureSettings, checkpoint_kind, measure_from_flags
from ..devices import resolve_device
from ..errors import UserError
from ..nn import load_checkpoint_model, load_supernet
from ..space import resolve_arch
from .evaluate import SubnetEvaluator
from .metrics import format_metric
from .noise import split_label, wilson_interval
from .published import published_archs, published_reference, published_table
from .ranking import measure_ranking, read_probe_set

#: how a checkpoint kind is named in titles
KIND_LABELS = {"ours": "our", "attentivenas": "AttentiveNAS's", "alphanet": "AlphaNet's"}
Warn = Callable[[str], None]


def _device(device: str, threads: int | None) -> torch.device:
    if threads is not None:
        torch.set_num_threads(threads)
    return resolve_device(device)


def evaluate_checkpoint(checkpoint: Path, arch: str | None, published: bool, space: str | None, data: str | None,
                        measure: MeasureSettings, device: str, threads: int | None,
                        warn: Warn) -> tuple[dict[str, Any], list[str]]:
    """``evaluate``'s JSON object and lines: one subnet of a supernet (or a fine-tuned subnet's
    checkpoint, whose ``arch`` is optional) BN-recalibrated and measured; with ``published`` the
    published models instead (the object's ``rows``, no lines: the CLI draws their table)."""
    dev = _device(device, threads)
    net, meta = load_checkpoint_model(checkpoint, space, device=dev)  # a supernet, or a fine-tuned subnet
    if meta.get("subnet"):  # `finetune`'s checkpoint: --arch is optional (must be its arch if given)
        if published:
            raise UserError(f"checkpoint {checkpoint} is a fine-tuned subnet: --published needs a supernet")
        arch = arch if arch is not None else net.arch.to_json()
    elif arch is None and not published:
        raise UserError("give exactly one of --arch ARCH or --published")
    if published:
        published_archs(net.space)  # a space that cannot hold them is refused before the calibration batches
    a = None if published else resolve_arch(str(arch), net.space)
    if a is not None:
        net.set_arch(a)  # a fine-tuned subnet refuses any arch but its own
    ev = SubnetEvaluator.for_supernet(net, meta, data, measure, dev, warn=warn)
    p = ev.settings
    settings = {"kind": checkpoint_kind(meta), "split": p.split, "pipeline": p.pipeline,
                "interpolation": p.interpolation, "calib_seed": p.calib_seed, "calib_batches": len(ev.calib),
                "calib_images": sum(int(b.shape[0]) for b in ev.calib)}
    if a is None:
        rows = published_table(ev)
        return {**settings, "published_source": published_reference(settings["kind"])[0], "rows": rows}, []
    res = ev.evaluate(a)
    out = {"top1": round(res["top1"], 4), "top5": round(res["top5"], 4), "mflops": round(res["mflops"], 4),
           "params_m": round(res["params_m"], 6), "loss": round(res["loss"], 6), "samples": res["samples"],
           **settings}
    lo, hi = wilson_interval(float(out["top1"]), int(out["samples"]))
    return out, [
        f"arch      {a.to_json()}",
        f"split     {p.split}: {split_label(p.split)} ({out['samples']} images); BN recalibrated on "
        f"{len(ev.calib)} training batches ({out['calib_images']} crops, seed {p.calib_seed})",
        f"images    {p.pipeline} pipeline, {p.interpolation}; {KIND_LABELS[settings['kind']]} checkpoint",
        f"top-1     {out['top1']:.2f} % (Wilson 95% interval {lo:.2f}-{hi:.2f} on {out['samples']} images)",
        f"top-5     {out['top5']:.2f} %",
        f"MFLOPs    {out['mflops']:.2f}",
        f"params    {out['params_m']:.3f} M"]


def rank_checkpoint(checkpoint: Path, probe: Path, split: str | None, space: str | None, data: str | None,
                    flags: dict[str, Any], device: str, threads: int | None, warn: Warn,
                    progress: Callable[..., None]) -> tuple[dict[str, Any], list[str]]:
    """``ranking``'s JSON object and lines: the probe set's subnets measured on the supernet of
    ``checkpoint`` (``flags``: calib_batches, calib_batch_size, max_images; the split is the probe
    file's when ``split`` is None) against their standalone top-1."""
    measure = measure_from_flags(split=split, **flags)  # the flags checked before loading
    dev = _device(device, threads)
    net, meta = load_supernet(checkpoint, space, device=dev)
    probes = read_probe_set(probe, net.space, split)  # refuses a probe file of another --split
    if split is None and probes.split is not None:
        measure = measure_from_flags(split=probes.split, **flags)  # the split the probe file names
    ev = SubnetEvaluator.for_supernet(net, meta, data, measure, dev, warn=warn)
    report = measure_ranking(probes, ev, net.space, net.num_classes, progress=progress)
    report.update(split=ev.settings.split, checkpoint=str(checkpoint), probe=str(probe))
    lines = [f"{report['n']} probe subnets on the {report['split']} split (inherited: BN recalibrated)"]
    lines += [f"  {r['name']:<12} {r['mflops']:8.2f} MFLOPs  inherited {r['inherited_top1']:6.2f}  "
              f"standalone {r['standalone_top1']:6.2f}  gap {r['gap']:+6.2f}" for r in report["subnets"]]
    return report, [
        *lines,
        f"Kendall tau  {format_metric(report['kendall_tau'])} (p {format_metric(report['kendall_p'])})",
        f"Spearman rho {format_metric(report['spearman_rho'])} (p {format_metric(report['spearman_p'])})",
        f"gap          {report['mean_gap']:+.2f} points on average ({report['mean_abs_gap']:.2f} absolute)"]
