"""The noise of a search's measured top-1: a Wilson 95% interval per measured entry (binomial on the
images of the split), and one line when the search's pick is within noise of a cheaper subnet, with
the number of images that would resolve the difference (:func:`annotate_noise`)."""

from __future__ import annotations

from typing import Any

from ..accuracy import images_to_resolve, intervals_overlap, split_label, wilson_interval
from ..config import OBJECTIVES
from .problem import UNITS

INTERVAL = "Wilson 95%"


def annotate_noise(result: Any, cost_col: str, images: int | None, split: str | None,
                   report_images: int | None = None, report_split: str | None = None,
                   split_images: int | None = None) -> dict[str, Any]:
    """Add ``accuracy_ci95`` (and ``report_top1_ci95``) to every measured entry of ``result`` (a
    :class:`~.results.SearchResult`), and ``result.extra["noise"]``: the interval, the splits and their
    images, and ``within_noise`` (one line per pick that a cheaper subnet matches within noise).
    ``split_images``: the images of the whole split when ``images`` is capped (``max_images``)."""
    entries = [e for e in (*result.pareto, *result.budget_winners) if e.get("arch") is not None]
    for e in entries:
        if images and e.get("accuracy_source") == "measured":
            e["accuracy_ci95"] = list(wilson_interval(float(e["accuracy"]), images))
        if report_images and e.get("report_top1") is not None:
            e["report_top1_ci95"] = list(wilson_interval(float(e["report_top1"]), report_images))
    noise: dict[str, Any] = {"interval": INTERVAL, "split": split, "split_label": split_label(split),
                             "images": images, "report_split": report_split,
                             "report_label": split_label(report_split) if report_split else None,
                             "report_images": report_images, "within_noise": []}
    if images:
        for pick, col in _picks(result, cost_col):
            line = _within_noise(pick, result.pareto, col, images, split, split_images)
            if line is not None and line not in noise["within_noise"]:
                noise["within_noise"].append(line)
    result.extra["noise"] = noise
    return noise


def _picks(result: Any, cost_col: str) -> list[tuple[dict[str, Any], str]]:
    """The search's picks: each budget winner (on the budget's metric), else the front's best."""
    won = [(w, _column(w["metric"])) for w in result.budget_winners if w.get("arch") is not None]
    if won:
        return won
    measured = [e for e in result.pareto if e.get("accuracy_source") == "measured"]
    return [(max(measured, key=lambda e: e["accuracy"]), cost_col)] if measured else []


def _column(metric: str) -> str:
    return OBJECTIVES.get(metric, metric)


def _within_noise(pick: dict[str, Any], front: list[dict[str, Any]], col: str, images: int, split: str | None,
                  split_images: int | None) -> str | None:
    """One line when a cheaper front subnet's interval overlaps the pick's (or the two differ by less
    than one image), else None."""
    if pick.get("accuracy_source") != "measured" or pick.get(col) is None:
        return None
    mine = wilson_interval(float(pick["accuracy"]), images)
    one_image = 100.0 / images
    cheaper = [e for e in front if e.get("accuracy_source") == "measured" and e.get(col) is not None
               and float(e[col]) < float(pick[col])]
    close = [e for e in cheaper if intervals_overlap(mine, wilson_interval(float(e["accuracy"]), images))
             or abs(float(pick["accuracy"]) - float(e["accuracy"])) < one_image]
    if not close:
        return None
    other = min(close, key=lambda e: float(e[col]))
    label, unit = split_label(split), UNITS.get(col, col)
    diff = float(pick["accuracy"]) - float(other["accuracy"])
    need = images_to_resolve(float(pick["accuracy"]), float(other["accuracy"]))
    report = ""
    if pick.get("report_top1") is not None and other.get("report_top1") is not None:
        report = f"; {split_label(pick.get('report_split'))} top-1 {pick['report_top1']:.2f}% against " \
                 f"{other['report_top1']:.2f}%"
    resolve = (f"about {need:,} images would resolve a {abs(diff):.2f}-point difference" if need and diff > 0
               else "a cheaper subnet measures as well or better")
    return (f"the pick ({label} top-1 {pick['accuracy']:.2f}% at {pick[col]:.4g} {unit}) is within noise of a "
            f"cheaper subnet ({other['accuracy']:.2f}% at {other[col]:.4g} {unit}): their {INTERVAL} intervals "
            f"overlap on {images:,} {label} images{report}; {resolve} ({_advice(split, images, split_images)})")


def _advice(split: str | None, images: int, split_images: int | None) -> str:
    """The split settings that give more images."""
    if split_images is not None and split_images > images:
        return f"raise accuracy.max_images: the split has {split_images:,} images"
    if split in (None, "holdout"):
        return "hold out more training images: data.val_fraction when training the supernet"
    if split and "-" in split:
        return "measure on the whole test split (--split test, no --report-split) or a larger val/"
    return "a larger test split (more images in val/)"
