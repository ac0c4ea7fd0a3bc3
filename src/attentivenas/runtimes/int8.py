"""INT8 builders, one per runtime: ExecuTorch (torchao PT2E with the XNNPACK quantizer, lowered to the
XNNPACK delegate), ONNX Runtime (static QDQ quantization) and OpenVINO (NNCF post-training
quantization); each runtime's record (:mod:`attentivenas.runtimes.records`) names its builder, the
quantizer's package and extra, and the settings it passes.

All three are post-training static quantization: weights int8 per output channel (symmetric),
activations int8 with ranges observed on ``calib`` (normalised images, ``N x 3 x H x W``; min-max
observers, so the result is a deterministic function of the model and the images). The caller
recalibrates BN first (:func:`attentivenas.export.formats.export_subnet` does). A program has the
fixed input shape of its example ``x`` (``dynamic_batch`` for ONNX only); calibration images are
fed in batches of that size (the last batch filled up from the first images). The builders assume
the record checked that the runtime and its quantizer import (``Runtime.check_int8``).

The two caches (:func:`cached_onnx_registry`, :func:`cached_pt2e_patterns`) make repeated builds of
a latency table quicker without changing what is built.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import UserError
from ..nn.layers import resize_input
from .programs import exported_program, onnx_bytes, private_temp_dir, quiet

#: Calibration images by default: 256. Min-max ranges of a MobileNet-like network settle after a
#: couple of hundred images (ONNX Runtime's and NNCF's examples use 100-300; NNCF's default subset
#: is 300), and 256 images at 224 px are 154 MB and about 10-30 s of calibration forwards on a CPU.
DEFAULT_CALIB_IMAGES = 256


class QuantizationError(UserError):
    """A model that could not be quantized, or an INT8 file whose check failed."""


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
def pt2e_quantized(model: nn.Module, x: torch.Tensor, calib: torch.Tensor,
                   is_per_channel: bool = True) -> torch.fx.GraphModule:
    """``model`` quantized with torchao's PT2E flow and ExecuTorch's XNNPACK quantizer (symmetric
    per-channel weights, per-tensor activations), calibrated on ``calib``."""
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
            quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=is_per_channel))
            prepared = prepare_pt2e(graph, quantizer)
            for chunk in batches:
                prepared(chunk)
            return convert_pt2e(prepared)
    except QuantizationError:
        raise
    except Exception as exc:  # the quantizer's errors are about internals: one line naming the step
        raise _fail("executorch", exc) from exc


def int8_executorch_bytes(model: nn.Module, x: torch.Tensor, calib: torch.Tensor, dynamic_batch: bool = False,
                          is_per_channel: bool = True) -> bytes:
    """The INT8 ``.pte`` program of ``model`` at the shape of ``x``: PT2E-quantized (XNNPACK
    quantizer, calibrated on ``calib``), exported again and lowered to the XNNPACK delegate (a fixed
    input shape: ``dynamic_batch`` is not taken)."""
    assert not dynamic_batch, "ExecuTorch programs have a fixed input shape"
    converted = pt2e_quantized(model, x, calib, is_per_channel)
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


def int8_onnx_bytes(model: nn.Module, x: torch.Tensor, calib: torch.Tensor, dynamic_batch: bool = False,
                    per_channel: bool = True, reduce_range: bool = True) -> bytes:
    """The INT8 ONNX file of ``model``: exported at the shape of ``x`` (a symbolic batch with
    ``dynamic_batch``), then ONNX Runtime static quantization in QDQ format (uint8 activations,
    int8 per-channel weights in 7 bits, min-max calibration on ``calib``).

    ``reduce_range`` (7-bit weights): ONNX Runtime's uint8 x int8 kernels on x86 CPUs without VNNI
    (AVX2, AVX-512F) add pairs of products in int16 and saturate; with full-range weights the quick
    start's max subnet lost 7.0 points of top-1 here (agreement with fp32 92.2%), with 7-bit weights
    none (agreement 100%). The file runs the same on every CPU."""
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
            quantize_static(pre, dst, _Reader(name, batches), quant_format=QuantFormat.QDQ, per_channel=per_channel,
                            reduce_range=reduce_range, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax)
            return Path(dst).read_bytes()
    except Exception as exc:
        raise _fail("onnxruntime", exc) from exc


# --------------------------------------------------------------------------- OpenVINO (NNCF)
def int8_openvino_model(model: nn.Module, x: torch.Tensor, calib: torch.Tensor, dynamic_batch: bool = False,
                        overflow_fix: bool = True) -> Any:
    """The INT8 ``openvino.Model`` of ``model`` at the shape of ``x``: converted from its
    ``torch.export`` program, then NNCF post-training quantization calibrated on ``calib`` (all its
    images; NNCF's default preset, symmetric int8) with its overflow fix on every layer (7-bit
    weights, as for ONNX Runtime: without VNNI the CPU plugin's int8 kernels saturate; the quick
    start's max subnet: agreement with fp32 95.9% without, 98.1% with it). A fixed input shape."""
    assert not dynamic_batch, "OpenVINO models here have a fixed input shape"
    ov = importlib.import_module("openvino")
    import nncf  # optional (openvino extra)

    model = _eval_cpu(model)
    x = x.detach().to("cpu", torch.float32)
    batches = [c.numpy() for c in _calib_batches(calib, x)]
    try:
        with quiet(), torch.no_grad():
            converted = ov.convert_model(exported_program(model, x))
            nncf.set_log_level(40)  # errors only
            fix = nncf.OverflowFix.ENABLE if overflow_fix else nncf.OverflowFix.DISABLE
            advanced = nncf.AdvancedQuantizationParameters(overflow_fix=fix)
            return nncf.quantize(converted, nncf.Dataset(batches), subset_size=len(batches) * int(x.shape[0]),
                                 advanced_parameters=advanced)
    except Exception as exc:
        raise _fail("openvino", exc) from exc



_ONNX_REGISTRIES: dict[Any, Any] = {}


@contextlib.contextmanager
def cached_onnx_registry() -> Iterator[None]:
    """Meanwhile, ``torch.onnx``'s dynamo exporter (the INT8 ONNX path) builds its registry of torchlib
    functions once per opset and reuses it: it builds it again on every export otherwise, which was
    most of an INT8 op's export in a latency table (``benchmarks/results/int8-table-build.json``).
    The registry is only read by an export without a custom translation table (ours). Where the
    exporter's private API differs, nothing is cached."""
    try:
        from torch.onnx._internal.exporter import _registration  # heavy (torch.onnx), private API: guarded
        real = _registration.ONNXRegistry.__dict__["from_torchlib"].__func__
    except (ImportError, AttributeError, KeyError):
        yield
        return

    def from_torchlib(cls: type, opset_version: Any = None) -> Any:
        key = (cls, opset_version)
        if key not in _ONNX_REGISTRIES:
            _ONNX_REGISTRIES[key] = real(cls) if opset_version is None else real(cls, opset_version)
        return _ONNX_REGISTRIES[key]

    _registration.ONNXRegistry.from_torchlib = classmethod(from_torchlib)
    try:
        yield
    finally:
        _registration.ONNXRegistry.from_torchlib = classmethod(real)


_PT2E_PATTERNS: dict[Any, Any] = {}


@contextlib.contextmanager
def cached_pt2e_patterns() -> Iterator[None]:
    """Meanwhile, the XNNPACK quantizer's conv + BN patterns (each ``torch.export``-ed again, 4 per
    conv pattern, on every INT8 ExecuTorch export) are exported once and copied: the pattern graph
    depends on the pattern's code, its closure (conv function, ReLU flags) and the example inputs'
    shapes only. Patterns without such a key, or another quantizer version, are not cached."""
    try:
        from executorch.backends.xnnpack.quantizer import xnnpack_quantizer_utils as utils  # optional, private
        real = utils._get_aten_graph_module_for_pattern
    except (ImportError, AttributeError):
        yield
        return

    def cached(pattern: Any, example_inputs: tuple[Any, ...], is_cuda: bool = False, **kwargs: Any) -> Any:
        key = _pattern_key(pattern, example_inputs, is_cuda, kwargs)
        if key is None:
            return real(pattern, example_inputs, is_cuda, **kwargs)
        if key not in _PT2E_PATTERNS:
            _PT2E_PATTERNS[key] = real(pattern, example_inputs, is_cuda, **kwargs)
        return copy.deepcopy(_PT2E_PATTERNS[key])

    utils._get_aten_graph_module_for_pattern = cached
    try:
        yield
    finally:
        utils._get_aten_graph_module_for_pattern = real


def _pattern_key(pattern: Any, example_inputs: tuple[Any, ...], is_cuda: bool, kwargs: dict[str, Any]) -> Any:
    """What a quantizer pattern's graph depends on, hashable; ``None`` when it cannot be told."""
    fn = getattr(pattern, "fn", None)
    code = getattr(fn, "__code__", None)
    if code is None:
        return None
    try:
        cells = tuple(c.cell_contents for c in (fn.__closure__ or ()))
        shapes = tuple((tuple(x.shape), str(x.dtype)) if isinstance(x, torch.Tensor) else x for x in example_inputs)
        key = (code, cells, shapes, bool(is_cuda), tuple(sorted(kwargs.items())))
        hash(key)
    except (TypeError, ValueError):  # an empty cell, an unhashable closure or argument
        return None
    return key
