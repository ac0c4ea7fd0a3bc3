"""`attentivenas space`, `flops` and `export`; bad input gives one line and exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from attentivenas.nn import Supernet, save_supernet
from attentivenas.space import TINY_SPACE

from .cli_helpers import run_cli


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    return save_supernet(tmp_path_factory.mktemp("c") / "tiny.pt", Supernet(TINY_SPACE, 10))


def test_flops_json_of_named_models() -> None:
    r = run_cli("flops", "--arch", "a6", "--json")
    assert r.code == 0
    assert json.loads(r.out)["mflops"] == pytest.approx(709.01, abs=0.01)


def test_flops_of_inline_and_file_arch(tmp_path: Path) -> None:
    arch = TINY_SPACE.max_arch().to_dict()
    r = run_cli("flops", "--space", "tiny", "--arch", json.dumps(arch), "--json", "--num-classes", "10")
    f = tmp_path / "arch.json"
    f.write_text(json.dumps(arch))
    r2 = run_cli("flops", "--space", "tiny", "--arch", str(f), "--json", "--num-classes", "10")
    assert r.code == r2.code == 0 and json.loads(r.out) == json.loads(r2.out)


def test_space_json() -> None:
    r = run_cli("space", "--json")
    info = json.loads(r.out)
    assert r.code == 0 and info["min_mflops"] == pytest.approx(203.39, abs=0.01)
    assert info["max_mflops"] == pytest.approx(1939.34, abs=0.01)
    assert 4.3e11 < info["num_architectures"] < 4.5e11


def test_space_from_authors_yaml(tmp_path: Path) -> None:
    import yaml

    f = tmp_path / "train_attentive_nas_models.yml"
    f.write_text(yaml.safe_dump({"arch": "x", "supernet_config": TINY_SPACE.to_supernet_config()}))
    r = run_cli("space", "--space", str(f), "--json")
    assert r.code == 0 and json.loads(r.out)["supernet_config"] == TINY_SPACE.to_supernet_config()


@pytest.mark.parametrize(
    "args, needle",
    [
        (["flops", "--arch", "a9"], "unknown arch"),
        (["flops", "--arch", '{"resolution": 100, "width": [16,16,24,32,64,112,192,216,1792], "depth": [1,3,3,3,3,3,1],'
          ' "kernel_size": [3,3,3,3,3,3,3], "expand_ratio": [1,4,4,4,4,6,6]}'], "'resolution' = 100"),
        (["flops", "--arch", '{"resolution": 192, "width": [16,16], "depth": [1,3,3,3,3,3,1],'
          ' "kernel_size": [3,3,3,3,3,3,3], "expand_ratio": [1,4,4,4,4,6,6]}'], "has 2 values"),
        (["flops", "--arch", "missing.json"], "not found"),
        (["space", "--space", "nospace"], "unknown space"),
        (["export", "--checkpoint", "missing.pt", "--arch", "a0", "--out", "x.ts"], "not found"),
    ],
)
def test_bad_input_exit_2(args: list[str], needle: str) -> None:
    r = run_cli(*args)
    assert r.code == 2
    assert needle in r.err and r.err.count("\n") == 1 and "Traceback" not in r.err


def test_export_torchscript_loads_alone(tiny_ckpt: Path, tmp_path: Path) -> None:
    out = tmp_path / "sub.ts"
    r = run_cli("export", "--checkpoint", str(tiny_ckpt), "--arch", "max", "--format", "torchscript",
                "--out", str(out), "--no-calibrate-bn")  # the stored statistics, compared below
    assert r.code == 0, r.err
    warning = [ln for ln in r.err.splitlines() if "deprecated" in ln]  # said once, in one line
    assert len(warning) == 1 and warning[0].startswith("warning: the torchscript format is deprecated")
    loaded = torch.jit.load(str(out))
    from attentivenas.nn import load_supernet

    net, _ = load_supernet(tiny_ckpt)
    ref = net.extract(TINY_SPACE.max_arch()).eval()
    x = torch.randn(2, 3, 32, 32)
    assert torch.allclose(loaded(x), ref(x), atol=1e-6)


def test_export_from_authors_checkpoint(authors_checkpoint, tmp_path: Path) -> None:
    ckpt = authors_checkpoint[0]
    out = tmp_path / "a0.pt2"
    r = run_cli("export", "--checkpoint", str(ckpt), "--arch", "a0", "--out", str(out),
                "--no-calibrate-bn")  # default: torch-export; no ImageNet here to recalibrate on
    assert r.code == 0, r.err
    assert "torch-export" in r.out and "batch dynamic" in r.out
    assert torch.export.load(str(out)).module()(torch.randn(1, 3, 192, 192)).shape == (1, 1000)


def test_export_arch_of_wrong_space(tiny_ckpt: Path, tmp_path: Path) -> None:
    r = run_cli("export", "--checkpoint", str(tiny_ckpt), "--arch", "a0", "--out", str(tmp_path / "x.ts"))
    assert r.code == 2 and "not in space 'tiny'" in r.err


def test_module_entry_point() -> None:
    r = subprocess.run([sys.executable, "-m", "attentivenas", "flops", "--arch", "a0", "--json"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and json.loads(r.stdout)["mflops"] == pytest.approx(203.39, abs=0.01)


def test_export_onnx_and_safetensors_with_calibration(tiny_ckpt: Path, tmp_path: Path) -> None:
    onnx_path = tmp_path / "min.onnx"
    r = run_cli("export", "--checkpoint", str(tiny_ckpt), "--arch", "min", "--format", "onnx", "--out", str(onnx_path),
                "--no-calibrate-bn")
    assert r.code == 0, r.err
    assert onnx_path.is_file()
    st = tmp_path / "max.safetensors"
    r = run_cli("export", "--checkpoint", str(tiny_ckpt), "--arch", "max", "--format", "safetensors",
                "--out", str(st), "--calibrate-bn", "--data", "digits", "--calib-batches", "2")
    assert r.code == 0, r.err
    from attentivenas.export.pretrained import load_safetensors_subnet

    sub = load_safetensors_subnet(st)
    bn = sub.first_conv.bn
    # recalibrated statistics differ from the fresh supernet's (zeros / ones)
    assert not torch.allclose(bn.running_mean, torch.zeros_like(bn.running_mean))


def test_export_pareto_set_in_one_command(tiny_ckpt: Path, tmp_path: Path) -> None:
    pareto = tmp_path / "pareto.json"
    pareto.write_text(json.dumps([{"arch": TINY_SPACE.min_arch().to_dict()}, {"arch": TINY_SPACE.max_arch().to_dict()}]))
    r = run_cli("export", "--checkpoint", str(tiny_ckpt), "--pareto", str(pareto), "--out", str(tmp_path / "models"),
                "--no-calibrate-bn")
    assert r.code == 0, r.err
    index = json.loads((tmp_path / "models" / "index.json").read_text())
    assert len(index) == 2 and all((tmp_path / "models" / e["file"]).is_file() for e in index)
    assert all(e["format"] == "torch-export" and e["file"].endswith(".pt2") and e["batch"] == "dynamic"
               for e in index)  # the default format, its batch recorded


def test_export_needs_exactly_one_of_arch_or_pareto(tiny_ckpt: Path, tmp_path: Path) -> None:
    r = run_cli("export", "--checkpoint", str(tiny_ckpt), "--out", str(tmp_path / "x"))
    assert r.code == 2 and "exactly one" in r.err


def test_version() -> None:
    import attentivenas

    r = run_cli("--version")
    assert r.code == 0 and r.out.strip() == f"attentivenas {attentivenas.__version__}"


@pytest.mark.parametrize("command", [["export"], ["latency", "build-table"], ["latency", "measure"]])
def test_help_names_the_extras(command: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    # plain help (no rich markup): "[executorch]" prints as written
    monkeypatch.setenv("COLUMNS", "300")
    r = run_cli(*command, "--help")
    assert r.code == 0
    assert "extra [executorch]" in " ".join(r.out.split())
