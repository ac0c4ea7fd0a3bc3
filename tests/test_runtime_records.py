"""One record per runtime (issue 39, item 2): the records say what every other module asks, and a
runtime added as one record is exported, checked, quantized, timed and run as a file with nothing
else edited."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from attentivenas.errors import UserError
from attentivenas.export.card_measure import file_runner
from attentivenas.export.formats import BATCH_FORMATS, FIXED_BATCH_FORMATS, FORMATS, SUFFIXES, export_subnet
from attentivenas.nn import Supernet
from attentivenas.runtimes import records
from attentivenas.runtimes.quantize import CHECK_SCRIPT, INT8_FORMATS, INT8_RUNTIMES, int8_predict_fn
from attentivenas.runtimes.records import RUNTIMES, find_format, runtime, runtime_for_format
from attentivenas.runtimes.runners import CPU_CLOCK_RUNTIMES, PROGRAM_RUNTIMES, prepare
from attentivenas.space import TINY_SPACE

SRC = Path(__file__).resolve().parents[1] / "src" / "attentivenas"
NAMES = {r.name for r in RUNTIMES.values()} | {r.format for r in RUNTIMES.values()} | {"safetensors", "torchscript"}
#: every module of the package: runtime specifics live in the records; at most 5 branches on a runtime or
#: format name are left outside them (issue 39), each listed here with why
BEHIND_RECORDS = sorted(SRC.rglob("*.py"))
ALLOWED = {("export/formats.py", "fmt == 'safetensors'"),  # export_subnet: safetensors is no runtime's format
           ("export/commands.py", "fmt == 'safetensors'"),  # --out of a weights export is a folder
           ("export/commands.py", "fmt == 'torchscript'"),  # the deprecation warning of torchscript files
           ("pipeline.py", "fmt == 'torchscript'"),  # the quick start's test top-1 of a TorchScript file
           ("latency/kit_runner.py", "man.get('runtime') != 'onnxruntime'")}  # the kit's runner cannot import us


def test_each_runtime_and_format_has_one_record() -> None:
    assert list(RUNTIMES) == ["torch", "onnxruntime", "executorch", "openvino"]
    assert len({r.format for r in RUNTIMES.values()}) == len(RUNTIMES)
    assert all(runtime_for_format(r.format) is r and runtime(r.name) is r for r in RUNTIMES.values())
    assert find_format("safetensors") is None
    with pytest.raises(UserError, match="unknown runtime 'tflite'; use one of torch, onnxruntime, executorch, openvino"):
        runtime("tflite")
    with pytest.raises(UserError, match="no runtime writes format 'tflite'"):
        runtime_for_format("tflite")


def test_the_old_tables_are_the_records_answers() -> None:
    assert FORMATS == ("torch-export", "onnx", "safetensors", "torchscript", "executorch", "openvino")
    assert BATCH_FORMATS == ("onnx", "torch-export", "executorch", "openvino")
    assert FIXED_BATCH_FORMATS == ("executorch", "openvino")
    assert SUFFIXES == {"torch-export": ".pt2", "onnx": ".onnx", "executorch": ".pte", "openvino": ".xml",
                        "safetensors": ".safetensors", "torchscript": ".pt"}
    assert (INT8_FORMATS, INT8_RUNTIMES) == (("executorch", "onnx", "openvino"), ("executorch", "onnxruntime", "openvino"))
    assert CPU_CLOCK_RUNTIMES == ("torch", "onnxruntime", "executorch") and PROGRAM_RUNTIMES == ("onnxruntime", "executorch")
    assert [r.format for r in RUNTIMES.values() if r.bundle] == ["torch-export", "onnx", "executorch"]
    assert [r.name for r in RUNTIMES.values() if r.kit] == ["onnxruntime", "executorch"]
    for rt in RUNTIMES.values():  # the isolated INT8 check has a branch per INT8 record, from its lines
        assert (f'fmt == "{rt.format}"' in CHECK_SCRIPT.replace("'", '"')) == (rt.int8 is not None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        RUNTIMES["onnxruntime"].suffix = ".ort"  # type: ignore[misc]


def _branches(path: Path) -> list[str]:
    """Comparisons with a literal runtime or format name (or a literal tuple of them), and subscripts
    or ``.get`` keyed by one (not ``"torch"``: there, the key of torch's version)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Compare):
            parts = [node.left, *node.comparators]
            if any(isinstance(p, ast.Name) and p.id == "exporter" for p in parts):  # ONNX exporters, not formats
                continue
            consts = [c.value for p in parts if isinstance(p, (ast.Constant, ast.Tuple, ast.List, ast.Set))
                      for c in ast.walk(p) if isinstance(c, ast.Constant)]
            if NAMES & set(consts):
                found.append(ast.unparse(node))
        elif (isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant)
              and node.slice.value in NAMES - {"torch"}):  # ["torch"]: torch's version in a record of versions
            found.append(ast.unparse(node))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
              and node.args and isinstance(node.args[0], ast.Constant) and node.args[0].value in NAMES - {"torch"}):
            found.append(ast.unparse(node))
    return found


def test_runtime_specifics_stay_in_the_records() -> None:
    left = {(str(p.relative_to(SRC)), b) for p in BEHIND_RECORDS if p.name != "records.py" for b in _branches(p)}
    assert left <= ALLOWED, sorted(left - ALLOWED)


@pytest.fixture
def added_runtime(monkeypatch: pytest.MonkeyPatch) -> records.Runtime:
    """A runtime added as one record: ONNX Runtime again, under another name, with fixed-batch files."""
    rt = dataclasses.replace(RUNTIMES["onnxruntime"], name="ort-fixed", format="onnx-fixed", suffix=".fixed.onnx",
                             batch="fixed", title="ORT (fixed batch)", check_title="ORT fixed")
    monkeypatch.setitem(RUNTIMES, rt.name, rt)
    return rt


@pytest.mark.slow
def test_a_runtime_added_as_one_record_runs_everywhere(added_runtime: records.Runtime, tmp_path: Path) -> None:
    torch.manual_seed(0)
    sub = Supernet(TINY_SPACE, 10).eval().extract(TINY_SPACE.min_arch())
    r = sub.resolution
    gen = torch.Generator().manual_seed(1)
    images, labels = torch.randn(12, 3, r, r, generator=gen), torch.randint(0, 10, (12,), generator=gen)
    info = export_subnet(sub, tmp_path / "m.fixed.onnx", "onnx-fixed", exporter="torchscript")  # fp32, checked
    assert info["batch"] == 1 and info["rel_error"] <= 1e-4 and info["exporter"] == "torchscript"
    with pytest.raises(UserError, match="--batch dynamic is not supported for onnx-fixed"):
        export_subnet(sub, tmp_path / "d.fixed.onnx", "onnx-fixed", batch="dynamic")
    int8 = export_subnet(sub, tmp_path / "q.fixed.onnx", "onnx-fixed", precision="int8", calib_images=images,
                         check_data=(images, labels), batch=4)  # INT8 export and its isolated check
    assert int8["batch"] == 4 and int8["check_images"] == 12 and 0.0 <= int8["agreement"] <= 1.0
    predict = int8_predict_fn(sub, "ort-fixed", images, images[:4])  # INT8 prediction
    assert predict(images).shape == (12, 10)
    runner = prepare(sub, images[:1], "ort-fixed", threads=1)  # latency
    assert runner.runtime == "ort-fixed" and np.asarray(runner.run()[0]).shape == (1, 10)
    timed = file_runner(Path(info["path"]), "onnx-fixed", 1, r, 1)  # a bundle's file timing
    assert np.asarray(timed.run()[0]).shape == (1, 10)
