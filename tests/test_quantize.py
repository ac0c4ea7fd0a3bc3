"""INT8 export and INT8 latency (:mod:`attentivenas.runtimes.quantize`): files quantized for ExecuTorch,
ONNX Runtime and OpenVINO, the accuracy check run by each runtime in a process without our
package, INT8 refused where it does not apply, and latency tables that record their precision."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from attentivenas.config import LatencyTableConfig
from attentivenas.errors import UserError
from attentivenas.export.formats import ExportError, export_subnet
from attentivenas.export.pareto import export_pareto_set
from attentivenas.latency import LatencyTable, check_table_precision, measure_arch
from attentivenas.latency.table import PRECISIONS as TABLE_PRECISIONS
from attentivenas.nn import Supernet, save_supernet
from attentivenas.runtimes.quantize import (
    CHECK_SCRIPT,
    DEFAULT_CALIB_IMAGES,
    INT8_FORMATS,
    INT8_RUNTIMES,
    PRECISIONS,
    QuantizationError,
    check_int8_accuracy,
    check_int8_runtime,
    int8_predict_fn,
    run_int8_file,
)
from attentivenas.runtimes.records import is_available
from attentivenas.space import TINY_SPACE

from .cli_helpers import run_cli

needs_executorch = pytest.mark.skipif(not is_available("executorch"), reason="executorch not installed")
needs_nncf = pytest.mark.skipif(not (is_available("openvino") and importlib.util.find_spec("nncf")),
                                reason="openvino or nncf not installed (pip install 'attentivenas[openvino]')")


@pytest.fixture(scope="module")
def tiny_net() -> Supernet:
    torch.manual_seed(0)
    return Supernet(TINY_SPACE, 10).eval()


@pytest.fixture(scope="module")
def subnet(tiny_net: Supernet) -> torch.nn.Module:
    return tiny_net.extract(TINY_SPACE.min_arch()).eval()


def _images(n: int, r: int, seed: int) -> torch.Tensor:
    return torch.randn(n, 3, r, r, generator=torch.Generator().manual_seed(seed))


def test_constants() -> None:
    assert PRECISIONS == TABLE_PRECISIONS == ("fp32", "int8")
    assert INT8_FORMATS == ("executorch", "onnx", "openvino")
    assert INT8_RUNTIMES == ("executorch", "onnxruntime", "openvino")
    assert isinstance(DEFAULT_CALIB_IMAGES, int) and DEFAULT_CALIB_IMAGES > 0


@pytest.mark.parametrize("fmt", ["safetensors", "torch-export", "torchscript"])
def test_int8_refused_for_other_formats(subnet: torch.nn.Module, tmp_path: Path, fmt: str) -> None:
    with pytest.raises(ExportError, match="int8 applies to formats executorch, onnx, openvino") as info:
        export_subnet(subnet, tmp_path / "m", fmt, precision="int8", calib_images=_images(4, 24, 0))
    assert "\n" not in str(info.value) and not list(tmp_path.iterdir())
    with pytest.raises(UserError, match="unknown precision"):
        export_subnet(subnet, tmp_path / "m", "onnx", precision="int4")


def test_int8_needs_calibration_images(subnet: torch.nn.Module, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="needs calibration images"):
        export_subnet(subnet, tmp_path / "m.onnx", "onnx", precision="int8")


def test_cli_refuses_int8_for_safetensors_in_one_line(tiny_net: Supernet, tmp_path: Path) -> None:
    ckpt = save_supernet(tmp_path / "tiny.pt", tiny_net)
    for fmt in ("safetensors", "torch-export"):
        r = run_cli("export", "--checkpoint", str(ckpt), "--arch", "min", "--format", fmt, "--precision", "int8",
                    "--out", str(tmp_path / "m.bin"))
        assert r.code == 2 and "--precision int8 applies to --format executorch, onnx, openvino" in r.err
        assert len(r.err.strip().splitlines()) == 1
    r = run_cli("export", "--checkpoint", str(ckpt), "--arch", "min", "--format", "onnx", "--precision", "int16",
                "--out", str(tmp_path / "m.onnx"))
    assert r.code == 2 and "--precision 'int16'" in r.err


def test_int8_runtime_refused_for_torch() -> None:
    with pytest.raises(UserError, match="int8 is available for runtimes executorch, onnxruntime, openvino"):
        check_int8_runtime("torch")
    r = run_cli("latency", "measure", "--arch", "min", "--space", "tiny", "--runtime", "torch", "--precision", "int8")
    assert r.code == 2 and len(r.err.strip().splitlines()) == 1 and "int8" in r.err


def test_missing_quantizer_names_its_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.import_module

    def fake(name: str, *args, **kwargs):
        if name.split(".")[0] == "nncf":
            raise ImportError("No module named 'nncf'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", fake)
    if not is_available("openvino"):
        pytest.skip("openvino not installed")
    with pytest.raises(UserError, match=r"attentivenas\[openvino\]"):
        check_int8_runtime("openvino")


def _tiny_onnx(path: Path, weight: np.ndarray) -> None:
    """A 3x4x4 -> len(weight) linear classifier as an ONNX file (no exporter: quick)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("Flatten", ["input"], ["flat"]), helper.make_node("MatMul", ["flat", "w"], ["logits"])],
        "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 4, 4])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", weight.shape[1]])],
        [numpy_helper.from_array(weight.astype(np.float32), "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def test_check_runs_the_file_without_attentivenas(tmp_path: Path) -> None:
    """The check's process blocks our package and loads only numpy and the runtime."""
    w = np.random.default_rng(0).standard_normal((48, 5))
    _tiny_onnx(tmp_path / "t.onnx", w)
    x = _images(7, 4, 1)
    preds = run_int8_file(tmp_path / "t.onnx", "onnx", x, batch=3)
    assert preds.tolist() == (x.reshape(7, -1).numpy() @ w).argmax(1).tolist()
    blocker = CHECK_SCRIPT.split("import numpy")[0]
    proc = subprocess.run([sys.executable, "-I", "-c", blocker + "import attentivenas\n"], capture_output=True,
                          text=True)
    assert proc.returncode != 0 and "blocked" in proc.stderr


def test_check_failure_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "bad.onnx").write_bytes(b"not onnx")
    with pytest.raises(QuantizationError, match="failed in its runtime") as info:
        run_int8_file(tmp_path / "bad.onnx", "onnx", _images(2, 4, 0))
    assert "\n" not in str(info.value)


def test_check_int8_accuracy_against_fp32(tmp_path: Path) -> None:
    w = np.random.default_rng(0).standard_normal((48, 5)).astype(np.float32)
    _tiny_onnx(tmp_path / "t.onnx", w)

    class Linear(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.flatten(1) @ torch.from_numpy(w)

    x = _images(20, 4, 2)
    labels = (x.flatten(1).numpy() @ w).argmax(1)
    labels[:5] = (labels[:5] + 1) % 5  # 5 of 20 wrong for both
    check = check_int8_accuracy(tmp_path / "t.onnx", "onnx", x, torch.as_tensor(labels), Linear(), batch=4)
    assert check == {"top1_fp32": 75.0, "top1_int8": 75.0, "agreement": 1.0, "drop_points": 0.0,
                     "check_images": 20}


def test_table_precision_recorded_and_checked() -> None:
    tab = LatencyTable(space={"name": "tiny", "supernet_config": {}}, entries={}, runtime="onnxruntime",
                       meta={"precision": "int8"})
    assert tab.precision == "int8" and tab.setting()["precision"] == "int8"
    check_table_precision(tab, "int8")
    with pytest.raises(UserError, match="measured in int8, not fp32") as info:
        check_table_precision(tab, "fp32")
    assert "\n" not in str(info.value)
    with pytest.raises(UserError, match="precision 'int8'"):
        tab.check_setting(precision="fp32")
    old = LatencyTable.from_dict({**tab.to_dict(), "meta": {}})
    assert old.precision == "fp32"  # tables without it are fp32
    check_table_precision(old, "fp32")
    with pytest.raises(UserError, match="measured in fp32, not int8"):
        check_table_precision(old, "int8")
    with pytest.raises(UserError, match="malformed"):
        LatencyTable.from_dict({**tab.to_dict(), "meta": {"precision": "int4"}})
    assert LatencyTableConfig().precision == "fp32"
    with pytest.raises(ValueError):
        LatencyTableConfig(precision="int4")


def _int8_export(subnet: torch.nn.Module, path: Path, fmt: str) -> dict:
    """``export_subnet`` at int8, calibrated on 16 seeded images and checked on 20 others labelled
    with the float subnet's own predictions."""
    r = subnet.resolution
    calib, test = _images(16, r, 1), _images(20, r, 2)
    with torch.no_grad():
        labels = subnet(test).argmax(1)
    return export_subnet(subnet, path, fmt, precision="int8", calib_images=calib, check_data=(test, labels))


# --------------------------------------------------------------------------- real quantization (slower)
@pytest.mark.slow
def test_int8_onnx_export_loads_runs_and_agrees(tiny_net: Supernet, subnet: torch.nn.Module, tmp_path: Path) -> None:
    r = subnet.resolution
    calib, test = _images(32, r, 1), _images(40, r, 2)
    with torch.no_grad():
        labels = subnet(test).argmax(1)
    info = export_subnet(subnet, tmp_path / "m.onnx", "onnx", precision="int8", calib_images=calib,
                         check_data=(test, labels))
    assert info["precision"] == "int8" and info["calib_images"] == 32 and info["batch"] == "dynamic"
    assert info["top1_fp32"] == 100.0 and info["agreement"] >= 0.9
    assert info["drop_points"] == pytest.approx(100.0 - info["top1_int8"])
    import onnx

    ops = {n.op_type for n in onnx.load(str(tmp_path / "m.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    # the Pareto set's index records precision and the check
    records = export_pareto_set(tiny_net, [TINY_SPACE.min_arch()], tmp_path / "set", "onnx", precision="int8",
                                calib_images=calib, check_data=(test, labels), batch=2)
    index = json.loads((tmp_path / "set" / "index.json").read_text())
    assert records == index and index[0]["precision"] == "int8" and index[0]["batch"] == 2
    assert {"top1_fp32", "top1_int8", "agreement", "drop_points"} <= set(index[0])


@pytest.mark.slow
def test_int8_predict_fn_onnxruntime_close_to_fp32(subnet: torch.nn.Module) -> None:
    r = subnet.resolution
    test = _images(10, r, 3)
    predict = int8_predict_fn(subnet, "onnxruntime", _images(16, r, 1), _images(4, r, 0))
    out = predict(test)  # 10 images through a batch-4 program: split and padded
    with torch.no_grad():
        ref = subnet(test)
    assert out.shape == ref.shape and out.dtype == torch.float32
    assert (out - ref).abs().max() / ref.abs().max() < 0.2
    assert (out.argmax(1) == ref.argmax(1)).float().mean() >= 0.8


@pytest.mark.slow
@needs_executorch
def test_int8_executorch_export_loads_and_agrees(subnet: torch.nn.Module, tmp_path: Path) -> None:
    info = _int8_export(subnet, tmp_path / "m.pte", "executorch")
    assert info["batch"] == 1 and (tmp_path / "m.pte").stat().st_size > 0
    assert info["agreement"] >= 0.9 and info["rel_error"] < 0.2


@pytest.mark.slow
@needs_nncf
def test_int8_openvino_export_loads_and_agrees(subnet: torch.nn.Module, tmp_path: Path) -> None:
    info = _int8_export(subnet, tmp_path / "m.xml", "openvino")
    assert Path(info["path"]).is_file() and Path(info["weights"]).is_file()
    assert "FakeQuantize" in Path(info["path"]).read_text()
    assert info["agreement"] >= 0.9 and info["rel_error"] < 0.2


@pytest.mark.slow
def test_latency_measure_int8() -> None:
    """ONNX Runtime here; ExecuTorch's INT8 runner is the INT8 program of the export test above loaded
    as every ExecuTorch runner is (lowering it again would add about half a minute to the suite)."""
    runtime = "onnxruntime"
    res = measure_arch(TINY_SPACE, TINY_SPACE.min_arch(), warmup=1, repeats=3, threads=1, num_classes=10,
                       runtime=runtime, precision="int8")
    assert res.precision == "int8" and res.to_dict()["precision"] == "int8" and res.median_ms > 0
    r = run_cli("latency", "measure", "--arch", "min", "--space", "tiny", "--runtime", runtime, "--precision", "int8",
                "--warmup", "1", "--repeats", "2", "--threads", "1", "--num-classes", "10", "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["precision"] == "int8"


def test_build_table_passes_precision_and_records_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every op, the null op and every whole subnet are prepared in the table's precision, and the
    table records it (timed in PyTorch here, to stay quick: the quantized runners are tested above)."""
    from attentivenas.latency import build_latency_table
    from attentivenas.latency import measure as measure_mod
    from attentivenas.latency import ops as ops_mod
    from attentivenas.runtimes.runners import prepare

    asked = []

    def fake_prepare(model, x, runtime="torch", device="cpu", threads=None, precision="fp32"):
        asked.append((runtime, precision))
        return prepare(model, x, "torch", device, threads)

    monkeypatch.setattr(ops_mod, "prepare", fake_prepare)
    monkeypatch.setattr(measure_mod, "prepare", fake_prepare)
    tab = build_latency_table(TINY_SPACE, archs=[TINY_SPACE.min_arch()], num_classes=10, warmup=0, repeats=1,
                              calibration_archs=0, runtime="onnxruntime", precision="int8", drift_correction=False,
                              progress=False)
    assert set(asked) == {("onnxruntime", "int8")} and len(asked) == len(tab.entries) + 1  # + the null op
    path = tab.save(tmp_path / "t.json")
    assert LatencyTable.load(path).precision == "int8" and json.loads(path.read_text())["meta"]["precision"] == "int8"
    r = run_cli("latency", "build-table", "--space", "tiny", "--runtime", "torch", "--precision", "int8",
                "--out", str(tmp_path / "x.json"))
    assert r.code == 2 and len(r.err.strip().splitlines()) == 1 and not (tmp_path / "x.json").exists()


def test_refit_keeps_the_precision(tmp_path: Path) -> None:
    from attentivenas.latency.fit import subnet_records

    from .synthetic import synthetic_latency_table

    table = synthetic_latency_table()
    rng = np.random.default_rng(8)
    calib = [TINY_SPACE.sample(rng) for _ in range(4)]
    table.meta.update(precision="int8", calibration_subnets=subnet_records(
        calib, [sum(table.group_sums(TINY_SPACE, a).values()) for a in calib]))
    path = table.save(tmp_path / "t.json")
    r = run_cli("latency", "refit", "--table", str(path), "--model", "sum", "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["precision"] == "int8" and LatencyTable.load(path).precision == "int8"
