"""ONNX (checked with onnxruntime) and safetensors export of static subnets; Pareto sets."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch

from attentivenas.export import formats as export_formats
from attentivenas.export.formats import ExportError, export_onnx, export_subnet
from attentivenas.export.pareto import export_pareto_set
from attentivenas.export.pretrained import load_safetensors_subnet
from attentivenas.nn import Supernet, calibrate_bn
from attentivenas.space import TINY_SPACE


@pytest.fixture(scope="module")
def tiny_net() -> Supernet:
    torch.manual_seed(0)
    net = Supernet(TINY_SPACE, 10).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # non-trivial BN so that the export checks see real statistics
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return net


def _arch(seed: int):
    return TINY_SPACE.sample(np.random.default_rng(seed))


def test_onnx_export_matches_pytorch_with_dynamic_batch(tiny_net: Supernet, tmp_path) -> None:
    sub = tiny_net.extract(_arch(0))
    info = export_onnx(sub, tmp_path / "m.onnx", exporter="torchscript")
    assert info["rel_error"] <= 1e-4 and info["exporter"] == "torchscript"
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    r = sub.resolution
    for batch in (1, 5):
        x = torch.randn(batch, 3, r, r, generator=torch.Generator().manual_seed(batch))
        out = sess.run(None, {"input": x.numpy()})[0]
        with torch.no_grad():
            ref = sub(x).numpy()
        assert out.shape == (batch, 10)
        assert np.abs(out - ref).max() / np.abs(ref).max() <= 1e-4


def test_onnx_export_refuses_a_mismatch(tiny_net: Supernet, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(export_formats, "file_relative_error", lambda *a, **k: 3e-3)
    with pytest.raises(ExportError, match="relative error 0.003 > 0.0001"):
        export_onnx(tiny_net.extract(_arch(1)), tmp_path / "bad.onnx", exporter="torchscript")
    assert not (tmp_path / "bad.onnx").exists()


@pytest.mark.slow
def test_onnx_dynamo_exporter(tiny_net: Supernet, tmp_path) -> None:
    info = export_onnx(tiny_net.extract(_arch(2)), tmp_path / "d.onnx", exporter="dynamo")
    assert info["exporter"] == "dynamo" and info["rel_error"] <= 1e-4 and info["opset"] >= 18


@pytest.mark.slow
def test_onnx_default_is_dynamo_and_a_fixed_batch_is_recorded(tiny_net: Supernet, tmp_path) -> None:
    sub = tiny_net.extract(_arch(6))
    info = export_onnx(sub, tmp_path / "f.onnx", batch=3)
    assert info["exporter"] == "dynamo" and info["batch"] == 3 and info["rel_error"] <= 1e-4
    sess = ort.InferenceSession(str(tmp_path / "f.onnx"), providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].shape == [3, 3, sub.resolution, sub.resolution]
    with pytest.raises(ExportError, match="unknown ONNX exporter"):
        export_onnx(sub, tmp_path / "g.onnx", exporter="auto")
    with pytest.raises(ExportError, match="positive integer or 'dynamic'"):
        export_onnx(sub, tmp_path / "g.onnx", batch=0)
    with pytest.raises(ExportError, match="--batch applies to onnx"):
        export_subnet(sub, tmp_path / "g.safetensors", "safetensors", batch=2)


def test_torchscript_says_it_is_deprecated(tiny_net: Supernet, tmp_path) -> None:
    with pytest.warns(FutureWarning, match="torchscript format is deprecated"):
        export_subnet(tiny_net.extract(TINY_SPACE.min_arch()), tmp_path / "m.pt", "torchscript")


def test_export_with_calibration(tiny_net: Supernet, tmp_path) -> None:
    arch = _arch(4)
    batches = [torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(s)) for s in range(2)]
    export_subnet(tiny_net.extract(arch), tmp_path / "c.safetensors", "safetensors", calib_batches=batches)
    loaded = load_safetensors_subnet(tmp_path / "c.safetensors")
    expected = calibrate_bn(tiny_net.extract(arch), batches)
    torch.testing.assert_close(loaded.first_conv.bn.running_mean, expected.first_conv.bn.running_mean)
    assert not torch.allclose(loaded.first_conv.bn.running_mean, tiny_net.extract(arch).first_conv.bn.running_mean)
    with pytest.raises(ExportError, match="unknown export format"):
        export_subnet(tiny_net.extract(arch), tmp_path / "x.bin", "tflite")


def test_export_pareto_set_in_one_call(tiny_net: Supernet, tmp_path) -> None:
    archs = [TINY_SPACE.min_arch(), _arch(5)]
    pareto = [{"arch": a.to_dict(), "mflops": 0.0, "accuracy": 50.0} for a in archs]
    (tmp_path / "pareto.json").write_text(json.dumps(pareto))
    records = export_pareto_set(tiny_net, tmp_path / "pareto.json", tmp_path / "models", "safetensors")
    index = json.loads((tmp_path / "models" / "index.json").read_text())
    assert index == records and [r["arch"] for r in records] == [a.to_dict() for a in archs]
    for r in records:
        assert load_safetensors_subnet(tmp_path / "models" / r["file"]).arch.to_dict() == r["arch"]
    (tmp_path / "empty.json").write_text("[]")
    with pytest.raises(ExportError, match="Pareto set is empty"):
        export_pareto_set(tiny_net, tmp_path / "empty.json", tmp_path / "none", "onnx")
