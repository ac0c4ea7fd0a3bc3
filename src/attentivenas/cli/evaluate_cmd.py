"""``attentivenas evaluate``: BN-recalibrated accuracy of one subnet, thin over :mod:`attentivenas.accuracy`."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from ..config import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_CALIB_BATCH_SIZE,
    DEFAULT_CALIB_BATCHES,
    DEFAULT_PIPELINE,
    MeasureSettings,
    checkpoint_kind,
    measure_from_flags,
)
from ..errors import UserError
from ..space import resolve_arch
from .common import (
    ARCH_HELP,
    CALIB_BATCH_SIZE_HELP,
    CALIB_BATCHES_HELP,
    DATA_HELP,
    INTERPOLATION_HELP,
    PIPELINE_HELP,
    SPACE_HELP,
    SPLIT_HELP,
    calib_seed_help,
    print_json,
    warn_line,
)

#: how a checkpoint kind is named in titles
KIND_LABELS = {"ours": "our", "attentivenas": "AttentiveNAS's", "alphanet": "AlphaNet's"}


def _evaluate(checkpoint: Path, arch: str | None, published: bool, space: str | None, data: str | None,
              measure: MeasureSettings, device: str, threads: int | None, as_json: bool) -> None:
    import torch  # heavy (torch): loaded when the command runs

    from ..accuracy import SubnetEvaluator, published_reference, published_table, split_label, wilson_interval
    from ..devices import resolve_device
    from ..nn import load_checkpoint_model

    if threads is not None:
        torch.set_num_threads(threads)
    dev = resolve_device(device)
    net, meta = load_checkpoint_model(checkpoint, space, device=dev)  # a supernet, or a fine-tuned subnet
    if meta.get("subnet"):  # `finetune`'s checkpoint: --arch is optional (must be its arch if given)
        if published:
            raise UserError(f"checkpoint {checkpoint} is a fine-tuned subnet: --published needs a supernet")
        arch = arch if arch is not None else net.arch.to_json()
    elif arch is None and not published:
        raise UserError("give exactly one of --arch ARCH or --published")
    if published:
        from ..accuracy.published import published_archs

        published_archs(net.space)  # a space that cannot hold them is refused before the calibration batches
    a = None if published else resolve_arch(str(arch), net.space)
    if a is not None:
        net.set_arch(a)  # a fine-tuned subnet refuses any arch but its own
    ev = SubnetEvaluator.for_supernet(net, meta, data, measure, dev, warn=warn_line)
    p = ev.settings
    settings = {"kind": checkpoint_kind(meta), "split": p.split, "pipeline": p.pipeline,
                "interpolation": p.interpolation, "calib_seed": p.calib_seed, "calib_batches": len(ev.calib),
                "calib_images": sum(int(b.shape[0]) for b in ev.calib)}
    if published:
        _print_published(published_table(ev), settings, published_reference(settings["kind"])[0], as_json)
        return
    assert a is not None
    res = ev.evaluate(a)
    out = {
        "top1": round(res["top1"], 4),
        "top5": round(res["top5"], 4),
        "mflops": round(res["mflops"], 4),
        "params_m": round(res["params_m"], 6),
        "loss": round(res["loss"], 6),
        "samples": res["samples"],
        **settings,
    }
    if as_json:
        print_json(out)
        return
    typer.echo(f"arch      {a.to_json()}")
    typer.echo(f"split     {p.split}: {split_label(p.split)} ({out['samples']} images); BN recalibrated on "
               f"{len(ev.calib)} training batches ({out['calib_images']} crops, seed {p.calib_seed})")
    typer.echo(f"images    {p.pipeline} pipeline, {p.interpolation}; {KIND_LABELS[settings['kind']]} checkpoint")
    lo, hi = wilson_interval(float(out["top1"]), int(out["samples"]))
    typer.echo(f"top-1     {out['top1']:.2f} % (Wilson 95% interval {lo:.2f}-{hi:.2f} on {out['samples']} images)")
    typer.echo(f"top-5     {out['top5']:.2f} %")
    typer.echo(f"MFLOPs    {out['mflops']:.2f}")
    typer.echo(f"params    {out['params_m']:.3f} M")


def _print_published(rows: list[dict], settings: dict, source: str, as_json: bool) -> None:
    if as_json:
        print_json({**settings, "published_source": source, "rows": rows})
        return
    table = Table(title=f"{KIND_LABELS[settings['kind']]} checkpoint: published models on the {settings['split']} "
                        f"split ({rows[0]['samples']} images)",
                  caption=f"{settings['pipeline']} pipeline, {settings['interpolation']}, BN recalibrated (seed "
                          f"{settings['calib_seed']}); published: {source}'s top-1")
    for col in ("model", "res", "MFLOPs", "params (M)", "top-1", "top-5", f"{source} top-1", "diff"):
        table.add_column(col, justify="right")
    for r in rows:
        top1, diff = r["published_top1"], r["diff"]
        table.add_row(r["model"], str(r["resolution"]), f"{r['mflops']:.2f}", f"{r['params_m']:.2f}",
                      f"{r['top1']:.2f}", f"{r['top5']:.2f}", "-" if top1 is None else f"{top1:.2f}",
                      "-" if diff is None else f"{diff:+.2f}")
    Console(width=max(Console().width, 100)).print(table)  # the whole table, also when not a terminal


def evaluate_cmd(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="Our checkpoint or one released by the authors."),
    arch: str | None = typer.Option(None, "--arch", help=ARCH_HELP + " Optional for a fine-tuned subnet's "
                                    "checkpoint (`finetune`): its own arch."),
    published: bool = typer.Option(False, "--published", help="Evaluate A0-A6 and AlphaNet's A5 models and print "
                                   "them beside the top-1 published for the checkpoint (AlphaNet's for an AlphaNet "
                                   "checkpoint, else AttentiveNAS's) (instead of --arch)."),
    split: str | None = typer.Option(None, "--split", help=SPLIT_HELP, show_default=False),
    space: str | None = typer.Option(None, "--space", help=SPACE_HELP + " Default: from the checkpoint."),
    data: str | None = typer.Option(None, "--data", help=DATA_HELP),
    pipeline: str = typer.Option(DEFAULT_PIPELINE, "--pipeline", help=PIPELINE_HELP),
    interpolation: str | None = typer.Option(None, "--interpolation", help=INTERPOLATION_HELP, show_default=False),
    calib_batches: int = typer.Option(DEFAULT_CALIB_BATCHES, "--calib-batches", help=CALIB_BATCHES_HELP),
    calib_batch_size: int = typer.Option(DEFAULT_CALIB_BATCH_SIZE, "--calib-batch-size", help=CALIB_BATCH_SIZE_HELP),
    batch_size: int = typer.Option(DEFAULT_BATCH_SIZE, "--batch-size", min=1, help="Evaluation batch size."),
    max_images: int | None = typer.Option(None, "--max-images", min=1, help="Evaluate the first N images only."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    calib_seed: int | None = typer.Option(None, "--calib-seed", "--seed", show_default=False,
                                          help=calib_seed_help("0") + " --seed is another name for it."),
    threads: int | None = typer.Option(None, "--threads", min=1, help="CPU threads."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """BN-recalibrated top-1/top-5 of one subnet (or of the published models) with MFLOPs and params."""
    if arch is not None and published:
        raise UserError("give exactly one of --arch ARCH or --published")
    measure = measure_from_flags(split=split, pipeline=pipeline, interpolation=interpolation,
                                 calib_batches=calib_batches, calib_batch_size=calib_batch_size,
                                 batch_size=batch_size, max_images=max_images, calib_seed=calib_seed)
    _evaluate(checkpoint, arch, published, space, data, measure, device, threads, as_json)


def ranking_cmd(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="Our checkpoint or one released by the authors."),
    probe: Path = typer.Option(..., "--probe", help="Probe set: JSON {\"split\": ..., \"subnets\": [{\"name\", "
                               "\"arch\", \"top1\"}]} or JSON lines, each subnet's top-1 trained alone; or "
                               "finetune's index.json, or a folder of finetune runs (index.json, */result.json)."),
    split: str | None = typer.Option(None, "--split", help=SPLIT_HELP + " Default: the probe file's split, else "
                                     "as for evaluate.", show_default=False),
    space: str | None = typer.Option(None, "--space", help=SPACE_HELP + " Default: from the checkpoint."),
    data: str | None = typer.Option(None, "--data", help=DATA_HELP),
    calib_batches: int = typer.Option(DEFAULT_CALIB_BATCHES, "--calib-batches", help=CALIB_BATCHES_HELP),
    calib_batch_size: int = typer.Option(DEFAULT_CALIB_BATCH_SIZE, "--calib-batch-size", help=CALIB_BATCH_SIZE_HELP),
    max_images: int | None = typer.Option(None, "--max-images", min=1, help="Evaluate the first N images only."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    threads: int | None = typer.Option(None, "--threads", min=1, help="CPU threads."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """How far the supernet ranks subnets as training them alone does: Kendall tau, Spearman rho and
    the gap in points between inherited (BN-recalibrated) and standalone top-1 of a probe set."""
    import torch  # heavy (torch): loaded when the command runs

    from ..accuracy import SubnetEvaluator
    from ..accuracy.ranking import measure_ranking, read_probe_set
    from ..devices import resolve_device
    from ..nn import load_supernet

    flags = {"calib_batches": calib_batches, "calib_batch_size": calib_batch_size, "max_images": max_images}
    measure = measure_from_flags(split=split, **flags)  # the flags checked before loading
    if threads is not None:
        torch.set_num_threads(threads)
    dev = resolve_device(device)
    net, meta = load_supernet(checkpoint, space, device=dev)
    probes = read_probe_set(probe, net.space, split)  # refuses a probe file of another --split
    if split is None and probes.split is not None:
        measure = measure_from_flags(split=probes.split, **flags)  # the split the probe file names
    ev = SubnetEvaluator.for_supernet(net, meta, data, measure, dev, warn=warn_line)

    def said(i: int, n: int, p, value: float) -> None:
        if not as_json:
            typer.echo(f"[{i}/{n}] {p.name}: inherited {value:.2f} %, standalone {p.standalone_top1:.2f} %", err=True)

    report = measure_ranking(probes, ev, net.space, net.num_classes, progress=said)
    report.update(split=ev.settings.split, checkpoint=str(checkpoint), probe=str(probe))
    if as_json:
        print_json(report)
        return
    from ..accuracy import format_metric

    typer.echo(f"{report['n']} probe subnets on the {report['split']} split (inherited: BN recalibrated)")
    for r in report["subnets"]:
        typer.echo(f"  {r['name']:<12} {r['mflops']:8.2f} MFLOPs  inherited {r['inherited_top1']:6.2f}  "
                   f"standalone {r['standalone_top1']:6.2f}  gap {r['gap']:+6.2f}")
    typer.echo(f"Kendall tau  {format_metric(report['kendall_tau'])} (p {format_metric(report['kendall_p'])})")
    typer.echo(f"Spearman rho {format_metric(report['spearman_rho'])} (p {format_metric(report['spearman_p'])})")
    typer.echo(f"gap          {report['mean_gap']:+.2f} points on average ({report['mean_abs_gap']:.2f} absolute)")


def register(app: typer.Typer) -> None:
    """Add ``evaluate`` and ``ranking`` to ``app``."""
    app.command("evaluate")(evaluate_cmd)
    app.command("ranking")(ranking_cmd)
