"""Model folders a user can hand on (issue 26, item 5): ``export --format bundle`` writes weights,
``config.json``, runtime files and a model card; ``attentivenas.load_pretrained`` rebuilds the model from
them alone, and so does huggingface_hub's local loading, with no network."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import torch

import attentivenas
from attentivenas.config import DataConfig
from attentivenas.costs import count_flops, count_params
from attentivenas.data import build_data
from attentivenas.errors import UserError
from attentivenas.nn import Supernet, save_supernet
from attentivenas.nn.bundle import CardInfo, load_pretrained, write_bundle
from attentivenas.space import SearchSpace, get_space

from .cli_helpers import run_cli

SPACE = get_space("tiny")
CLASSES = 4


@pytest.fixture(scope="module")
def subnet() -> torch.nn.Module:
    torch.manual_seed(0)
    net = Supernet(SPACE, CLASSES).eval()
    return net.extract(SPACE.min_arch()).eval()


@pytest.fixture(scope="module")
def weights_only(subnet, tmp_path_factory) -> Path:
    """A bundle without runtime files (fast), with a card's accuracy entries."""
    folder = tmp_path_factory.mktemp("bundle") / "a0"
    info = CardInfo(class_names=["cat", "dog", "fox", "owl"], normalization={"mean": [0.5] * 3, "std": [0.5] * 3},
                    interpolation="bilinear", source={"checkpoint": "sn.pt", "sha256": "ab" * 32, "kind": "ours"},
                    command="attentivenas export --checkpoint sn.pt --arch min --format bundle --out a0",
                    accuracy=[{"split": "holdout", "precision": "fp32", "top1": 51.25, "top5": 90.0, "samples": 80},
                              {"split": "test", "precision": "fp32", "top1": 49.5, "top5": 88.0, "samples": 80}])
    write_bundle(subnet, folder, formats=(), info=info)
    return folder


def _logits(model: torch.nn.Module, seed: int = 1) -> torch.Tensor:
    x = torch.randn(3, 3, 24, 24, generator=torch.Generator().manual_seed(seed))
    with torch.inference_mode():
        return model.eval()(x)


def test_load_pretrained_gives_the_same_logits_without_the_supernet(subnet, weights_only) -> None:
    model = attentivenas.load_pretrained(weights_only)  # the top-level name, imported on first use
    assert model.arch == subnet.arch and model.num_classes == CLASSES and not model.training
    assert torch.equal(_logits(model), _logits(subnet))
    assert model.class_names == ["cat", "dog", "fox", "owl"]


def test_config_json_describes_the_model(subnet, weights_only) -> None:
    cfg = json.loads((weights_only / "config.json").read_text())
    assert cfg["model_type"] == "attentivenas-subnet" and cfg["format_version"] == 1
    assert SearchSpace.from_dict(cfg["space"]).same_as(SPACE) and cfg["arch"] == subnet.arch.to_dict()
    assert cfg["num_classes"] == CLASSES and cfg["resolution"] == 24 and cfg["class_names"][1] == "dog"
    assert cfg["normalization"] == {"mean": [0.5] * 3, "std": [0.5] * 3} and cfg["interpolation"] == "bilinear"
    assert cfg["mflops"] == pytest.approx(count_flops(SPACE, subnet.arch, CLASSES))
    assert "multiply-accumulates" in cfg["mflops_unit"]
    assert cfg["params_m"] == pytest.approx(count_params(SPACE, subnet.arch, CLASSES) / 1e6)
    assert cfg["files"] == {} and cfg["source"]["sha256"] == "ab" * 32 and cfg["command"].startswith("attentivenas")
    assert [a["split"] for a in cfg["accuracy"]] == ["holdout", "test"]


def test_the_model_card_has_hub_front_matter_and_the_tables(weights_only) -> None:
    card = (weights_only / "README.md").read_text()
    front, body = card.split("---\n")[1], card.split("---\n", 2)[2]
    assert "library_name: attentivenas" in front and "pipeline_tag: image-classification" in front
    assert "- accuracy" in front and "value: 51.2500" in front
    assert "| mb1 | 8 | 1 | 3 | 1 |" in body  # the arch table: stage, width, depth, kernel, expand
    assert "| holdout | fp32 | 51.25 | 90.00 | 80 |" in body
    assert "Not measured (`--no-latency`)" in body
    assert "attentivenas export --checkpoint sn.pt" in body and "sha256 `" + "ab" * 32 in body


def test_runtime_files_are_listed_checked_and_timed(subnet, tmp_path: Path) -> None:
    calls = []

    def fake_latency(path: Path, fmt: str, precision: str, batch: int | str) -> dict:
        calls.append((path.name, fmt, precision, batch))
        return {"median_ms": 1.5, "p90_ms": 2.0, "batch": 1, "threads": 1, "repeats": 10}

    folder = tmp_path / "b"
    (folder).mkdir()
    (folder / "model.onnx").write_bytes(b"stale")  # a runtime file of an earlier bundle
    cfg = write_bundle(subnet, folder, formats=("torch-export",), info=CardInfo(machine="test machine"),
                       latency_fn=fake_latency)
    assert calls == [("model.pt2", "torch-export", "fp32", "dynamic")]
    assert cfg["files"]["model.pt2"]["batch"] == "dynamic" and not (folder / "model.onnx").exists()
    program = torch.export.load(folder / "model.pt2").module()
    with torch.inference_mode():
        x = torch.randn(2, 3, 24, 24)
        assert torch.allclose(program(x), subnet(x), atol=1e-5)
    card = (folder / "README.md").read_text()
    assert "on test machine:" in card and "| `model.pt2` | fp32 | 1.500 | 2.000 | 1 |" in card
    assert cfg["latency"]["entries"][0]["median_ms"] == 1.5


def test_int8_files_join_the_bundle_beside_fp32(subnet, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="needs an INT8 runtime file"):
        write_bundle(subnet, tmp_path / "x", formats=("torch-export",), precisions=("fp32", "int8"))
    calib = torch.randn(8, 3, 24, 24, generator=torch.Generator().manual_seed(0))
    cfg = write_bundle(subnet, tmp_path / "q", formats=("onnx", "torch-export"), precisions=("fp32", "int8"),
                       batch=1, int8_options={"calib_images": calib},
                       accuracy_fn=lambda folder, files: [{"split": "test", "precision": "int8", "top1": 12.5,
                                                           "samples": 8, "file": "model.int8.onnx"}])
    assert {k: (v["format"], v["precision"], v["batch"]) for k, v in cfg["files"].items()} == {
        "model.pt2": ("torch-export", "fp32", 1), "model.onnx": ("onnx", "fp32", 1),
        "model.int8.onnx": ("onnx", "int8", 1)}  # no INT8 .pt2: torch.export files are fp32
    assert (tmp_path / "q" / "model.int8.onnx").stat().st_size > 0
    assert "| test | int8 | 12.50 | - | 8 |" in (tmp_path / "q" / "README.md").read_text()


def test_huggingface_hub_loads_the_folder_offline(subnet, weights_only, monkeypatch) -> None:
    """``PyTorchModelHubMixin.from_pretrained(local_folder)`` reads config.json and model.safetensors
    with HF_HUB_OFFLINE=1 and every network connection refused."""
    hub_mixin = pytest.importorskip("huggingface_hub.hub_mixin")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("network used")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)

    class HubSubnet(attentivenas.nn.StaticSubnet, hub_mixin.PyTorchModelHubMixin):
        def __init__(self, config: dict) -> None:
            space = SearchSpace.from_dict(config["space"])
            super().__init__(space, space.arch_from_dict(config["arch"]), config["num_classes"])

    model = HubSubnet.from_pretrained(str(weights_only), strict=True)
    assert torch.equal(_logits(model), _logits(subnet))
    from huggingface_hub import ModelCard  # the card parses as a Hub model card

    card = ModelCard.load(weights_only / "README.md")
    assert card.data.library_name == "attentivenas" and card.data.pipeline_tag == "image-classification"


def _damage(folder: Path, tmp_path: Path, how: str) -> Path:
    bad = tmp_path / how
    bad.mkdir()
    for f in folder.iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    cfg = json.loads((bad / "config.json").read_text())
    if how == "not-json":
        (bad / "config.json").write_text('{"model_type": "attentivenas-subnet", ')
    elif how == "foreign":
        (bad / "config.json").write_text(json.dumps(dict(cfg, model_type="bert")))
    elif how == "outside":
        arch = dict(cfg["arch"], depth=[9] * len(cfg["arch"]["depth"]))
        (bad / "config.json").write_text(json.dumps(dict(cfg, arch=arch)))
    elif how == "classes":
        (bad / "config.json").write_text(json.dumps(dict(cfg, num_classes=10**9)))
    elif how == "no-weights":
        (bad / "model.safetensors").unlink()
    elif how == "torn-weights":
        data = (bad / "model.safetensors").read_bytes()
        (bad / "model.safetensors").write_bytes(data[: len(data) // 2])
    elif how == "other-weights":
        cfg["arch"] = SPACE.max_arch().to_dict()
        cfg["resolution"] = SPACE.max_arch().resolution
        (bad / "config.json").write_text(json.dumps(cfg))
    return bad


@pytest.mark.parametrize(("how", "names"), [
    ("not-json", "config.json"), ("foreign", "model_type"), ("outside", "depth"), ("classes", "num_classes"),
    ("no-weights", "model.safetensors"), ("torn-weights", "model.safetensors"), ("other-weights", "do not match"),
])
def test_a_damaged_bundle_is_one_line_naming_the_file(weights_only, tmp_path: Path, how: str, names: str) -> None:
    bad = _damage(weights_only, tmp_path, how)
    with pytest.raises(UserError) as err:
        load_pretrained(bad)
    message = str(err.value)
    assert "\n" not in message and names in message and str(bad) in message, message


def test_a_missing_folder_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="bundle folder not found"):
        load_pretrained(tmp_path / "nowhere")


# --------------------------------------------------------------------------- the command line
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A tiny-space checkpoint (10 classes) with the digits' hold-out record."""
    record = dict(build_data(DataConfig(name="digits", image_size=32)).holdout)
    torch.manual_seed(0)
    return save_supernet(tmp_path_factory.mktemp("ck") / "tiny.pt", Supernet(SPACE, 10).eval(),
                         extra={"holdout": record})


SMALL = ["--data", "digits", "--calib-batches", "1", "--calib-batch-size", "16"]


@pytest.mark.slow
def test_export_bundle_end_to_end(checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "a0"
    r = run_cli("export", "--checkpoint", str(checkpoint), "--arch", "min", "--format", "bundle", "--out", str(out),
                *SMALL, "--calibrate-bn")
    assert r.code == 0, r.err
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.pt2", "model.safetensors"]
    cfg = json.loads((out / "config.json").read_text())
    assert [(a["split"], a["precision"], a["samples"]) for a in cfg["accuracy"]] == [("holdout", "fp32", 270),
                                                                                      ("test", "fp32", 270)]
    assert cfg["class_names"] == [str(i) for i in range(10)]
    assert cfg["normalization"]["mean"] == [0.5, 0.5, 0.5] and cfg["source"]["checkpoint"] == "tiny.pt"
    assert cfg["command"].startswith("attentivenas export --checkpoint") and "--calibrate-bn" in cfg["command"]
    assert cfg["latency"]["entries"][0]["file"] == "model.pt2" and cfg["latency"]["entries"][0]["batch"] == 1
    card = (out / "README.md").read_text()
    assert "BN statistics recalibrated" in card and "| holdout | fp32 |" in card and "| test | fp32 |" in card
    model = attentivenas.load_pretrained(out)
    from attentivenas.accuracy import resolve_data
    from attentivenas.accuracy.evaluate import evaluate_subnet
    from attentivenas.nn import load_supernet

    net, meta = load_supernet(checkpoint)
    test = resolve_data("digits", net.space, meta).test
    top1 = evaluate_subnet(model, test)["top1"]  # the card's top-1 is that of the weights bundled
    assert top1 == pytest.approx(cfg["accuracy"][1]["top1"])


@pytest.mark.slow
def test_export_bundle_with_int8_files_measures_them_in_their_runtime(checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "q"
    r = run_cli("export", "--checkpoint", str(checkpoint), "--arch", "min", "--format", "bundle", "--out", str(out),
                *SMALL, "--with", "onnx", "--precision", "int8", "--calib-images", "32", "--check-images", "20",
                "--card-split", "test", "--no-latency")
    assert r.code == 0, r.err
    cfg = json.loads((out / "config.json").read_text())
    assert sorted(cfg["files"]) == ["model.int8.onnx", "model.onnx"]
    assert [(a["split"], a["precision"], a["samples"]) for a in cfg["accuracy"]] == [("test", "fp32", 270),
                                                                                      ("test", "int8", 20)]
    card = (out / "README.md").read_text()
    assert "| test | int8 |" in card and "fp32 top-1 on the same 20 images" in card and "recalibrated" in card


def test_export_pareto_bundles_and_index_quickly(checkpoint: Path, tmp_path: Path) -> None:
    pareto = tmp_path / "pareto.json"
    pareto.write_text(json.dumps({"pareto": [{"arch": SPACE.min_arch().to_dict()},
                                             {"arch": SPACE.max_arch().to_dict()}]}))
    out = tmp_path / "models"
    r = run_cli("export", "--checkpoint", str(checkpoint), "--pareto", str(pareto), "--format", "bundle",
                "--out", str(out), "--with", "", "--no-card-metrics", "--no-latency", *SMALL)
    assert r.code == 0, r.err
    index = json.loads((out / "index.json").read_text())
    folders = [b["folder"] for b in index["bundles"]]
    assert len(folders) == 2 and folders[0].startswith("subnet-00-") and folders[0].endswith("mflops")
    for b in index["bundles"]:
        model = load_pretrained(out / b["folder"])
        assert model.arch.to_dict() == b["arch"] and b["files"] == []
        assert "Not measured (`--no-card-metrics`)" in (out / b["folder"] / "README.md").read_text()


def test_a_fine_tuned_subnet_checkpoint_bundles_its_own_subnet(checkpoint: Path, tmp_path: Path) -> None:
    from attentivenas.io import atomic_torch_save
    from attentivenas.nn import load_supernet, sealed, subnet_payload

    net, meta = load_supernet(checkpoint)
    sub = net.extract(SPACE.min_arch()).eval()
    ck = atomic_torch_save(sealed({**subnet_payload(sub), "holdout": meta["holdout"]}), tmp_path / "sub.pt")
    out = tmp_path / "b"
    r = run_cli("export", "--checkpoint", str(ck), "--format", "bundle", "--out", str(out), "--with", "",
                "--card-split", "test", "--no-latency", *SMALL)
    assert r.code == 0, r.err
    model = load_pretrained(out)
    assert model.arch == sub.arch and torch.equal(_logits(model), _logits(sub))
    assert json.loads((out / "config.json").read_text())["accuracy"][0]["split"] == "test"
    r = run_cli("export", "--checkpoint", str(ck), "--format", "bundle", "--out", str(out), "--pareto",
                str(tmp_path / "p.json"), *SMALL)
    assert r.code == 2 and "--pareto needs a supernet" in r.err


def test_bundle_flags_with_another_format_are_refused(tmp_path: Path) -> None:
    r = run_cli("export", "--checkpoint", str(tmp_path / "missing.pt"), "--arch", "min", "--format", "onnx",
                "--out", str(tmp_path / "a.onnx"), "--with", "onnx")
    assert r.code == 2 and "--with applies to --format bundle, not to onnx" in r.err, r.err


@pytest.mark.parametrize(("flags", "message"), [
    (["--with", "torchscript"], "not a runtime format of a bundle"),
    (["--card-split", "val"], "--card-split 'val'"),
    (["--with", "executorch", "--batch", "dynamic"], "dynamic is not supported for executorch"),
    (["--onnx-exporter", "torchscript"], "--onnx-exporter applies to --format onnx"),
])
def test_bad_bundle_flags_are_one_line_before_loading(tmp_path: Path, flags: list[str], message: str) -> None:
    r = run_cli("export", "--checkpoint", str(tmp_path / "missing.pt"), "--arch", "min", "--format", "bundle",
                "--out", str(tmp_path / "b"), *flags)
    assert r.code == 2 and message in r.err and r.err.count("\n") == 1, r.err
