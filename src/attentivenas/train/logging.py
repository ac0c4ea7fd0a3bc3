"""Watching a run: a progress bar, a JSONL metrics file and TensorBoard scalars (rank 0 only)."""

from __future__ import annotations

import json
import math
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..io import atomic_write_text, dumps_json, user_file_errors

METRICS = "metrics.jsonl"


def _count_lines(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines()) if path.is_file() else 0


def truncate_metrics(path: str | Path, global_step: int, records: int | None = None) -> None:
    """Drop what a resumed run writes again, atomically: the records after the checkpoint's first
    ``records`` lines (what the file held when the checkpoint was written; e.g. an evaluation logged
    just before a crash), and any record after ``global_step``."""
    p = Path(path)
    if not p.is_file():
        return
    keep = []
    for i, line in enumerate(p.read_text(encoding="utf-8").splitlines()):
        if records is not None and i >= records:
            break
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # a torn last line after a crash
        if int(rec.get("global_step", 0)) <= global_step:
            keep.append(line)
    atomic_write_text(p, "".join(f"{line}\n" for line in keep))


class MetricsLogger:
    """Appends JSON records to ``DIR/metrics.jsonl`` and mirrors numbers to TensorBoard (``DIR/tb``).
    A no-op on ranks other than 0 (``enabled=False``)."""

    def __init__(self, out_dir: str | Path, enabled: bool = True, tensorboard: bool = True) -> None:
        self.path = Path(out_dir) / METRICS
        self.enabled = enabled
        self.records = 0  # lines in the file: a checkpoint stores it, so a resume drops what came after
        self._writer = None
        self._file = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.records = _count_lines(self.path)
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter  # optional: TensorBoard may be missing or broken

                self._writer = SummaryWriter(str(Path(out_dir) / "tb"))
            except Exception as exc:  # tensorboard missing or broken: keep training
                warnings.warn(f"TensorBoard disabled ({type(exc).__name__}: {exc})", stacklevel=2)

    def log(self, kind: str, global_step: int, **values: Any) -> None:
        """One record ``{"kind", "global_step", "time", **values}``; numeric values go to TensorBoard
        as ``kind/name``."""
        if not self.enabled or self._file is None:
            return
        rec = {"kind": kind, "global_step": int(global_step), "time": round(time.time(), 3), **values}
        with user_file_errors(self.path):
            self._file.write(dumps_json(rec) + "\n")  # non-finite values as null (strict JSON)
            self._file.flush()
        self.records += 1
        if self._writer is not None:
            for k, v in values.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in ("epoch", "step"):
                    self._writer.add_scalar(f"{kind}/{k}", v, global_step)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class Progress:
    """A tqdm bar per epoch with loss, LR, sampled MFLOPs, images/s and the run's ETA."""

    def __init__(self, enabled: bool, total_steps: int, done_steps: int) -> None:
        self.enabled = enabled
        self.total_steps = total_steps
        self.done_start = done_steps
        self.done = done_steps
        self.t0 = time.perf_counter()
        self._bar = None

    def start_epoch(self, epoch: int, epochs: int, steps: int, start: int) -> None:
        if not self.enabled:
            return
        self._bar = tqdm(total=steps, initial=start, desc=f"epoch {epoch + 1}/{epochs}", file=sys.stderr,
                         dynamic_ncols=True, leave=True)

    def eta_s(self) -> float:
        ran = self.done - self.done_start
        if ran <= 0:
            return float("nan")
        per = (time.perf_counter() - self.t0) / ran
        return per * (self.total_steps - self.done)

    def update(self, loss: float, lr: float, mflops: float, images_per_s: float) -> None:
        self.done += 1
        if self._bar is None:
            return
        eta = self.eta_s()
        eta_txt = time.strftime("%H:%M:%S", time.gmtime(eta)) if math.isfinite(eta) else "?"
        self._bar.set_postfix_str(
            f"loss={loss:.3f} lr={lr:.4g} mflops={mflops:.1f} img/s={images_per_s:.0f} eta={eta_txt}", refresh=False
        )
        self._bar.update(1)

    def end_epoch(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def write(self, text: str) -> None:
        """A line that does not break the bar."""
        if not self.enabled:
            return
        tqdm.write(text, file=sys.stderr)
