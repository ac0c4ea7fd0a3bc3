"""INT8 models as their deployment runtimes run them, through the runtimes' records
(:mod:`attentivenas.runtimes.records`; each names its quantizer in :mod:`attentivenas.runtimes.int8`):
the precisions, the INT8 runtimes and formats, INT8 predictions (:func:`int8_predict_fn`) and the
INT8 accuracy check.

:func:`check_int8_accuracy` runs an INT8 file in a separate Python process that does not import
``attentivenas`` (:data:`CHECK_SCRIPT`: numpy and the runtime only, each runtime's lines from its
record; it blocks our package), so the accuracy reported is the file's as a deployment loads it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import UserError
from ..nn.bn import to_model_resolution
from .int8 import (
    DEFAULT_CALIB_IMAGES,
    QuantizationError,
    int8_executorch_bytes,
    int8_onnx_bytes,
    int8_openvino_model,
    pt2e_quantized,
    seeded_calibration,
)
from .programs import private_temp_dir, save_openvino
from .records import RUNTIMES, Runtime, find_format, int8_formats, int8_runtimes

__all__ = ["DEFAULT_CALIB_IMAGES", "QuantizationError", "int8_executorch_bytes", "int8_onnx_bytes",
           "int8_openvino_model", "pt2e_quantized", "seeded_calibration", "save_openvino"]

PRECISIONS = ("fp32", "int8")
#: ``export --format`` values that take ``--precision int8`` (the records with a quantizer)
INT8_FORMATS = int8_formats()
#: latency runtimes that take ``--precision int8`` (the records with a quantizer)
INT8_RUNTIMES = int8_runtimes()
#: Images of the accuracy check by default (``export --check-images``): enough for agreement with
#: fp32 to +-1-2 points, quick (a few seconds per runtime at 224 px).
DEFAULT_CHECK_IMAGES = 500
#: The largest drop of top-1 (points) an INT8 file's check may show below fp32 before a warning says so
#: (``export --max-int8-drop``): about the noise of the default 500-image check (1 image = 0.2 points).
DEFAULT_MAX_INT8_DROP = 2.0


def check_precision(precision: str) -> str:
    """``precision`` if it is one of :data:`PRECISIONS`, else a one-line :class:`UserError`."""
    if precision not in PRECISIONS:
        raise UserError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    return precision


def _eval_cpu(model: nn.Module) -> nn.Module:
    return model.to(device="cpu", dtype=torch.float32).eval()


def int8_runtime(runtime: str, key: str = "") -> Runtime:
    """The record of ``runtime`` when it has an INT8 quantizer, else a one-line :class:`UserError` naming
    ``key`` (the config key or flag that gave it, when given) and the runtimes that have one. Settings
    name an INT8 runtime as a plain string (``config`` sits below the records): it is checked here."""
    rt = RUNTIMES.get(runtime)
    if rt is None or rt.int8 is None:
        where = f"{key}: " if key else ""
        raise UserError(f"{where}precision int8 is available for runtimes {', '.join(INT8_RUNTIMES)}, not {runtime!r}")
    return rt


def check_int8_runtime(runtime: str, key: str = "") -> None:
    """Refuse (one line) INT8 for a runtime that does not run it here (:func:`int8_runtime`); a missing
    runtime or quantizer names its extra."""
    int8_runtime(runtime, key).check_int8()


# --------------------------------------------------------------------------- predictions
def fixed_batch_fn(run: Callable[[np.ndarray], np.ndarray], batch: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """``run`` (a program of fixed ``batch``) over batches of any size: split, the last one padded."""

    def predict(images: torch.Tensor) -> torch.Tensor:
        arr = images.detach().to("cpu", torch.float32).numpy()
        outs = []
        for i in range(0, arr.shape[0], batch):
            chunk = arr[i:i + batch]
            n = chunk.shape[0]
            if n < batch:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], batch - n, axis=0)])
            outs.append(np.asarray(run(np.ascontiguousarray(chunk)), dtype=np.float32)[:n])
        return torch.from_numpy(np.concatenate(outs)) if outs else torch.empty(0)

    return predict


def int8_predict_fn(model: nn.Module, runtime: str, calib: torch.Tensor, example: torch.Tensor,
                    threads: int = 1) -> Callable[[torch.Tensor], torch.Tensor]:
    """The model quantized for ``runtime`` (one of :data:`INT8_RUNTIMES`), loaded in it; returns
    ``batch -> logits`` (float tensor) for batches of any size (split and padded to the program's
    fixed batch, that of ``example``)."""
    check_int8_runtime(runtime)
    rt = RUNTIMES[runtime]
    loaded = rt.load(rt.export(model, example, "int8", calib), threads)
    return fixed_batch_fn(loaded.predict, int(example.shape[0]))


# --------------------------------------------------------------------------- the accuracy check
_CHECK_HEAD = r'''
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name == "attentivenas" or name.startswith("attentivenas."):
            raise ImportError("attentivenas is blocked in the INT8 check")
        return None
sys.meta_path.insert(0, _Block())
import numpy as np
fmt, path, batch, images, out, threads = sys.argv[1:7]
batch, threads = int(batch), int(threads)
x = np.load(images).astype(np.float32)
'''
_CHECK_TAIL = r'''else:
    raise SystemExit("unknown format " + fmt)
preds = []
for i in range(0, x.shape[0], batch):
    c = x[i:i + batch]; n = c.shape[0]
    if n < batch:
        c = np.concatenate([c, np.repeat(c[-1:], batch - n, axis=0)])
    preds.append(np.asarray(run(np.ascontiguousarray(c))).reshape(batch, -1)[:n].argmax(1))
np.save(out, np.concatenate(preds).astype(np.int64))
assert not any(m == "attentivenas" or m.startswith("attentivenas.") for m in sys.modules)
'''


def _check_script() -> str:
    """The isolated check: its head, one branch per INT8 runtime (the record's ``check_loader``), its tail."""
    int8 = [rt for rt in RUNTIMES.values() if rt.int8 is not None]
    branches = [f"{'el' if i else ''}if fmt == {rt.format!r}:\n" + textwrap.indent(rt.check_loader, "    ")
                for i, rt in enumerate(int8)]
    return _CHECK_HEAD + "".join(branches) + _CHECK_TAIL


#: Run as ``python -I -c CHECK_SCRIPT FORMAT FILE BATCH IMAGES.npy OUT.npy THREADS``: loads an INT8
#: file in its runtime (numpy and the runtime only; ``attentivenas`` is blocked), writes the argmax
#: (:func:`run_int8_file` builds it again from the records, so a record added later is run too).
CHECK_SCRIPT = _check_script()


def run_int8_file(path: str | Path, fmt: str, images: np.ndarray | torch.Tensor, batch: int = 1,
                  threads: int = 1, timeout: float = 1800.0) -> np.ndarray:
    """The argmax predictions of the INT8 file ``path`` (``fmt``: one of :data:`INT8_FORMATS`) on
    ``images``, run by its runtime in a separate ``python -I`` process that cannot import
    ``attentivenas`` (:data:`CHECK_SCRIPT`; images passed through a temporary ``.npy`` file)."""
    rt = find_format(fmt)
    if rt is None or rt.int8 is None:
        raise UserError(f"the INT8 check runs formats {', '.join(INT8_FORMATS)}, not {fmt!r}")
    arr = images.detach().cpu().float().numpy() if isinstance(images, torch.Tensor) else np.asarray(images, np.float32)
    with private_temp_dir("int8-check") as tmp:
        src, out = os.path.join(tmp, "images.npy"), os.path.join(tmp, "preds.npy")
        np.save(src, np.ascontiguousarray(arr, dtype=np.float32))
        cmd = [sys.executable, "-I", "-c", _check_script(), fmt, str(path), str(int(batch)), src, out, str(int(threads))]
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env.setdefault("OMP_NUM_THREADS", str(int(threads)))
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        if proc.returncode != 0 or not os.path.exists(out):
            tail = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()][-1:] or ["no output"]
            raise QuantizationError(f"the INT8 check of {path} failed in its runtime (exit {proc.returncode}): "
                                    f"{tail[0][:300]}")
        return np.load(out)


def check_int8_accuracy(path: str | Path, fmt: str, images: torch.Tensor, labels: torch.Tensor | np.ndarray,
                        fp32_model: nn.Module, batch: int = 1, threads: int = 1,
                        eval_batch: int = 64) -> dict[str, Any]:
    """Top-1 of the INT8 file ``path`` (run by its runtime without ``attentivenas``:
    :func:`run_int8_file`, at its fixed ``batch``) and of ``fp32_model`` (PyTorch, CPU) on
    ``images``/``labels`` (resized to the model's resolution, bicubic, as in BN calibration).

    Returns ``{"top1_fp32", "top1_int8"`` (percent), ``"agreement"`` (fraction of images with the
    same argmax), ``"drop_points"`` (``top1_fp32 - top1_int8``), ``"check_images"}``."""
    images = to_model_resolution(images.detach().to("cpu", torch.float32), fp32_model)
    y = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels).astype(np.int64).reshape(-1)
    if images.shape[0] != y.shape[0] or y.shape[0] == 0:
        raise UserError(f"the INT8 check needs as many labels as images (got {y.shape[0]} and {images.shape[0]})")
    int8 = run_int8_file(path, fmt, images, batch, threads)
    model = _eval_cpu(fp32_model)
    with torch.inference_mode():
        fp32 = torch.cat([model(images[i:i + eval_batch].to("cpu", torch.float32)).argmax(1)
                          for i in range(0, images.shape[0], eval_batch)]).numpy()
    top1_fp32, top1_int8 = 100.0 * float((fp32 == y).mean()), 100.0 * float((int8 == y).mean())
    return {"top1_fp32": top1_fp32, "top1_int8": top1_int8, "agreement": float((fp32 == int8).mean()),
            "drop_points": top1_fp32 - top1_int8, "check_images": int(y.shape[0])}


def int8_drop_fields(check: dict[str, Any], max_drop: float = DEFAULT_MAX_INT8_DROP) -> dict[str, Any]:
    """``int8_drop`` (points of top-1 the INT8 file lost against fp32 in its check, 0 when none),
    ``max_int8_drop`` (the threshold) and ``int8_drop_exceeded`` of an INT8 check's result."""
    drop = max(0.0, float(check["top1_fp32"]) - float(check["top1_int8"]))
    return {"int8_drop": drop, "max_int8_drop": float(max_drop), "int8_drop_exceeded": bool(drop > max_drop)}


def int8_drop_warning(check: dict[str, Any], name: str = "the INT8 file") -> str | None:
    """One line when an INT8 check dropped more than its threshold below fp32, else None."""
    if not check.get("int8_drop_exceeded"):
        return None
    return (f"{name}: INT8 top-1 {check['top1_int8']:.2f}% is {check['int8_drop']:.2f} points below fp32's "
            f"{check['top1_fp32']:.2f}% on {check['check_images']} images (more than --max-int8-drop "
            f"{check['max_int8_drop']:g}): the fp32 file is the better one unless INT8's speed matters more")


def accuracy_line(check: dict[str, Any]) -> str:
    """One line of an INT8 check: both top-1s, the drop and the agreement."""
    return (f"INT8 check on {check['check_images']} images: top-1 fp32 {check['top1_fp32']:.2f}%, "
            f"int8 {check['top1_int8']:.2f}% (drop {check['drop_points']:.2f} points), "
            f"agreement {100 * check['agreement']:.1f}%")

