"""INT8 models as their deployment runtimes run them: ExecuTorch (torchao PT2E with the XNNPACK
quantizer, lowered to the XNNPACK delegate), ONNX Runtime (static QDQ quantization) and OpenVINO
(NNCF post-training quantization).

All three are post-training static quantization: weights int8 per output channel (symmetric),
activations int8 with ranges observed on ``calib`` (normalised images, ``N x 3 x H x W``; min-max
observers, so the result is a deterministic function of the model and the images). The caller
recalibrates BN first (:func:`attentivenas.export.formats.export_subnet` does). A program has the
fixed input shape of its example ``x`` (``dynamic_batch`` for ONNX only); calibration images are
fed in batches of that size (the last batch filled up from the first images).

:func:`check_int8_accuracy` runs an INT8 file in a separate Python process that does not import
``attentivenas`` (:data:`CHECK_SCRIPT`: numpy and the runtime only; it blocks our package), so
the accuracy reported is the file's as a deployment loads it.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import UserError
from ..nn.bn import to_model_resolution
from ..nn.layers import resize_input
from .programs import (
    ExecutorchMethod,
    exported_program,
    onnx_bytes,
    onnx_session,
    openvino_config,
    private_temp_dir,
    quiet,
    require,
    set_executorch_threads,
)

PRECISIONS = ("fp32", "int8")
#: ``export --format`` values that take ``--precision int8``
INT8_FORMATS = ("executorch", "onnx", "openvino")
#: latency runtimes that take ``--precision int8``
INT8_RUNTIMES = ("executorch", "onnxruntime", "openvino")
#: Calibration images by default: 256. Min-max ranges of a MobileNet-like network settle after a
#: couple of hundred images (ONNX Runtime's and NNCF's examples use 100-300; NNCF's default subset
#: is 300), and 256 images at 224 px are 154 MB and about 10-30 s of calibration forwards on a CPU.
DEFAULT_CALIB_IMAGES = 256
#: Images of the accuracy check by default (``export --check-images``): enough for agreement with
#: fp32 to +-1-2 points, quick (a few seconds per runtime at 224 px).
DEFAULT_CHECK_IMAGES = 500
#: The largest drop of top-1 (points) an INT8 file's check may show below fp32 before a warning says so
#: (``export --max-int8-drop``): about the noise of the default 500-image check (1 image = 0.2 points).
DEFAULT_MAX_INT8_DROP = 2.0
#: the runtime that loads each INT8 export format
RUNTIME_OF_FORMAT = {"executorch": "executorch", "onnx": "onnxruntime", "openvino": "openvino"}
#: the quantizer each runtime's INT8 needs: (module, extra)
_QUANTIZERS = {"executorch": ("torchao", "executorch"), "onnxruntime": ("onnxruntime.quantization", ""),
               "openvino": ("nncf", "openvino")}


class QuantizationError(UserError):
    """A model that could not be quantized, or an INT8 file whose check failed."""


def check_precision(precision: str) -> str:
    """``precision`` if it is one of :data:`PRECISIONS`, else a one-line :class:`UserError`."""
    if precision not in PRECISIONS:
        raise UserError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    return precision


def check_int8_runtime(runtime: str) -> None:
    """Refuse (one line) INT8 for a runtime that does not run it here; a missing runtime or quantizer
    names its extra."""
    if runtime not in INT8_RUNTIMES:
        raise UserError(f"precision int8 is available for runtimes {', '.join(INT8_RUNTIMES)}, not {runtime!r}")
    require(runtime)
    module, extra = _QUANTIZERS[runtime]
    try:
        importlib.import_module(module)
    except ImportError as exc:
        hint = f"pip install 'attentivenas[{extra}]'" if extra else f"pip install {module.split('.')[0]}"
        raise UserError(f"INT8 for {runtime!r} needs the {module.split('.')[0]} package ({hint}); "
                        f"importing it failed: {exc}") from None


def seeded_calibration(shape: tuple[int, ...], n: int = 32, seed: int = 0) -> torch.Tensor:
    """``n`` seeded random-normal images of ``shape`` (``C x H x W``): calibration for latency, which
    does not depend on the calibration data (only on which ops are quantized)."""
    return torch.randn(n, *shape, generator=torch.Generator().manual_seed(seed))


def _calib_batches(calib: torch.Tensor, x: torch.Tensor) -> Iterator[torch.Tensor]:
    """``calib`` in batches of ``x``'s size at ``x``'s image size (the last filled up from the start)."""
    if calib.ndim != x.ndim or calib.shape[0] < 1:
        raise QuantizationError(f"calibration images must be a non-empty N x {' x '.join(map(str, x.shape[1:]))} "
                                f"tensor, got shape {tuple(calib.shape)}")
    calib = calib.detach().to("cpu", torch.float32)
    if calib.shape[1:] != x.shape[1:]:
        if calib.shape[1] != x.shape[1]:
            raise QuantizationError(f"calibration images have {calib.shape[1]} channels, the model takes {x.shape[1]}")
        if x.shape[2] != x.shape[3]:
            raise QuantizationError(f"calibration images are {tuple(calib.shape[2:])}, the model takes {tuple(x.shape[2:])}")
        calib = resize_input(calib, int(x.shape[2]))
    b, n = int(x.shape[0]), int(calib.shape[0])
    for i in range(0, n, b):
        chunk = calib[i:i + b]
        if chunk.shape[0] < b:
            idx = torch.arange(b - chunk.shape[0]) % n
            chunk = torch.cat([chunk, calib[idx]])
        yield chunk


def _fail(runtime: str, exc: BaseException) -> QuantizationError:
    first = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
    return QuantizationError(f"INT8 quantization for {runtime} failed: {exc.__class__.__name__}: {first[:300]}")


def _eval_cpu(model: nn.Module) -> nn.Module:
    return model.to(device="cpu", dtype=torch.float32).eval()


# --------------------------------------------------------------------------- ExecuTorch (PT2E, XNNPACK)
def pt2e_quantized(model: nn.Module, x: torch.Tensor, calib: torch.Tensor) -> torch.fx.GraphModule:
    """``model`` quantized with torchao's PT2E flow and ExecuTorch's XNNPACK quantizer (symmetric
    per-channel weights, per-tensor activations), calibrated on ``calib``."""
    check_int8_runtime("executorch")
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (  # optional (executorch extra)
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e  # optional (executorch extra)

    model = _eval_cpu(model)
    x = x.detach().to("cpu", torch.float32)
    batches = list(_calib_batches(calib, x))
    try:
        with quiet(), torch.no_grad():
            graph = exported_program(model, x).module()
            quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
            prepared = prepare_pt2e(graph, quantizer)
            for chunk in batches:
                prepared(chunk)
            return convert_pt2e(prepared)
    except QuantizationError:
        raise
    except Exception as exc:  # the quantizer's errors are about internals: one line naming the step
        raise _fail("executorch", exc) from exc


def int8_executorch_bytes(model: nn.Module, x: torch.Tensor, calib: torch.Tensor) -> bytes:
    """The INT8 ``.pte`` program of ``model`` at the shape of ``x``: PT2E-quantized (XNNPACK
    quantizer, calibrated on ``calib``), exported again and lowered to the XNNPACK delegate."""
    converted = pt2e_quantized(model, x, calib)
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import (  # optional (executorch extra)
        XnnpackPartitioner,
    )
    from executorch.exir import EdgeCompileConfig, to_edge_transform_and_lower  # optional (executorch extra)

    try:
        with quiet(), torch.no_grad():
            program = torch.export.export(converted, (x.detach().to("cpu", torch.float32),))
            edge = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()],
                                               compile_config=EdgeCompileConfig(_check_ir_validity=False))
            return bytes(edge.to_executorch().buffer)
    except Exception as exc:
        raise _fail("executorch", exc) from exc


# --------------------------------------------------------------------------- ONNX Runtime (QDQ)
class _Reader:
    """onnxruntime's ``CalibrationDataReader`` protocol over our batches."""

    def __init__(self, name: str, batches: list[np.ndarray]) -> None:
        self.name, self.batches, self.i = name, batches, 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.i >= len(self.batches):
            return None
        self.i += 1
        return {self.name: self.batches[self.i - 1]}

    def rewind(self) -> None:
        self.i = 0


def int8_onnx_bytes(model: nn.Module, x: torch.Tensor, calib: torch.Tensor, dynamic_batch: bool = False) -> bytes:
    """The INT8 ONNX file of ``model``: exported at the shape of ``x`` (a symbolic batch with
    ``dynamic_batch``), then ONNX Runtime static quantization in QDQ format (uint8 activations,
    int8 per-channel weights in 7 bits, min-max calibration on ``calib``).

    ``reduce_range`` (7-bit weights): ONNX Runtime's uint8 x int8 kernels on x86 CPUs without VNNI
    (AVX2, AVX-512F) add pairs of products in int16 and saturate; with full-range weights the quick
    start's max subnet lost 7.0 points of top-1 here (agreement with fp32 92.2%), with 7-bit weights
    none (agreement 100%). The file runs the same on every CPU."""
    check_int8_runtime("onnxruntime")
    import onnx  # heavy
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static  # heavy
    from onnxruntime.quantization.shape_inference import quant_pre_process  # heavy

    model = _eval_cpu(model)
    x = x.detach().to("cpu", torch.float32)
    batches = [c.numpy() for c in _calib_batches(calib, x)]
    fp32 = onnx_bytes(model, x, exporter="dynamo", dynamic_batch=dynamic_batch)
    try:
        with private_temp_dir("int8") as tmp, quiet():
            src, pre, dst = (os.path.join(tmp, f) for f in ("fp32.onnx", "pre.onnx", "int8.onnx"))
            Path(src).write_bytes(fp32)
            quant_pre_process(src, pre, skip_symbolic_shape=True)
            name = onnx.load(pre, load_external_data=False).graph.input[0].name
            quantize_static(pre, dst, _Reader(name, batches), quant_format=QuantFormat.QDQ, per_channel=True,
                            reduce_range=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax)
            return Path(dst).read_bytes()
    except Exception as exc:
        raise _fail("onnxruntime", exc) from exc


# --------------------------------------------------------------------------- OpenVINO (NNCF)
def int8_openvino_model(model: nn.Module, x: torch.Tensor, calib: torch.Tensor) -> Any:
    """The INT8 ``openvino.Model`` of ``model`` at the shape of ``x``: converted from its
    ``torch.export`` program, then NNCF post-training quantization calibrated on ``calib`` (all its
    images; NNCF's default preset, symmetric int8) with its overflow fix on every layer (7-bit
    weights, as for ONNX Runtime: without VNNI the CPU plugin's int8 kernels saturate; the quick
    start's max subnet: agreement with fp32 95.9% without, 98.1% with it)."""
    check_int8_runtime("openvino")
    ov = require("openvino")
    import nncf  # optional (openvino extra)

    model = _eval_cpu(model)
    x = x.detach().to("cpu", torch.float32)
    batches = [c.numpy() for c in _calib_batches(calib, x)]
    try:
        with quiet(), torch.no_grad():
            converted = ov.convert_model(exported_program(model, x))
            nncf.set_log_level(40)  # errors only
            advanced = nncf.AdvancedQuantizationParameters(overflow_fix=nncf.OverflowFix.ENABLE)
            return nncf.quantize(converted, nncf.Dataset(batches), subset_size=len(batches) * int(x.shape[0]),
                                 advanced_parameters=advanced)
    except Exception as exc:
        raise _fail("openvino", exc) from exc


def save_openvino(ov_model: Any, path: str | Path) -> dict[str, str]:
    """Write an ``openvino.Model`` as ``path`` (``.xml``) and its ``.bin`` (weights not compressed to
    fp16), atomically: written in a temporary folder beside, then renamed."""
    ov = require("openvino")
    out = Path(path).with_suffix(".xml")
    out.parent.mkdir(parents=True, exist_ok=True)
    with private_temp_dir("openvino", out.parent) as tmp:
        tmp_xml = Path(tmp) / out.name
        ov.save_model(ov_model, str(tmp_xml), compress_to_fp16=False)
        os.replace(tmp_xml.with_suffix(".bin"), out.with_suffix(".bin"))
        os.replace(tmp_xml, out)
    return {"path": str(out), "weights": str(out.with_suffix(".bin"))}


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
    batch = int(example.shape[0])
    if runtime == "executorch":
        data = int8_executorch_bytes(model, example, calib)
        set_executorch_threads(threads)
        method = ExecutorchMethod(data)
        return fixed_batch_fn(lambda a: method.execute([torch.from_numpy(a)])[0].numpy(), batch)
    if runtime == "onnxruntime":
        sess = onnx_session(int8_onnx_bytes(model, example, calib), threads)
        name = sess.get_inputs()[0].name
        return fixed_batch_fn(lambda a: sess.run(None, {name: a})[0], batch)
    ov = require("openvino")
    compiled = ov.Core().compile_model(int8_openvino_model(model, example, calib), "CPU", openvino_config(threads))
    request = compiled.create_infer_request()
    return fixed_batch_fn(lambda a: np.array(request.infer({0: a})[0]), batch)


# --------------------------------------------------------------------------- the accuracy check
#: Run as ``python -I -c CHECK_SCRIPT FORMAT FILE BATCH IMAGES.npy OUT.npy THREADS``: loads an INT8
#: file in its runtime (numpy and the runtime only; ``attentivenas`` is blocked), writes the argmax.
CHECK_SCRIPT = r'''
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
if fmt == "onnx":
    import onnxruntime as ort
    o = ort.SessionOptions(); o.intra_op_num_threads = threads; o.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, sess_options=o, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    run = lambda a: sess.run(None, {name: a})[0]
elif fmt == "executorch":
    import torch
    from executorch.runtime import Runtime
    from executorch.extension.pybindings import portable_lib
    portable_lib._unsafe_reset_threadpool(threads)
    method = Runtime.get().load_program(path).load_method("forward")
    run = lambda a: method.execute([torch.from_numpy(a)])[0].numpy()
elif fmt == "openvino":
    import openvino as ov
    req = ov.Core().compile_model(path, "CPU", {"INFERENCE_NUM_THREADS": threads}).create_infer_request()
    run = lambda a: np.array(req.infer({0: a})[0])
else:
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


def run_int8_file(path: str | Path, fmt: str, images: np.ndarray | torch.Tensor, batch: int = 1,
                  threads: int = 1, timeout: float = 1800.0) -> np.ndarray:
    """The argmax predictions of the INT8 file ``path`` (``fmt``: one of :data:`INT8_FORMATS`) on
    ``images``, run by its runtime in a separate ``python -I`` process that cannot import
    ``attentivenas`` (:data:`CHECK_SCRIPT`; images passed through a temporary ``.npy`` file)."""
    if fmt not in INT8_FORMATS:
        raise UserError(f"the INT8 check runs formats {', '.join(INT8_FORMATS)}, not {fmt!r}")
    arr = images.detach().cpu().float().numpy() if isinstance(images, torch.Tensor) else np.asarray(images, np.float32)
    with private_temp_dir("int8-check") as tmp:
        src, out = os.path.join(tmp, "images.npy"), os.path.join(tmp, "preds.npy")
        np.save(src, np.ascontiguousarray(arr, dtype=np.float32))
        cmd = [sys.executable, "-I", "-c", CHECK_SCRIPT, fmt, str(path), str(int(batch)), src, out, str(int(threads))]
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

