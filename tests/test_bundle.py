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
from attentivenas.export.bundle import write_bundle
from attentivenas.export.bundle_format import CardInfo
from attentivenas.export.pretrained import load_pretrained
from attentivenas.nn import Supernet, save_supernet
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
    assert cfg["model_type"] == "attentivenas-subnet" and cfg["format_version"] == 2
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
    summary = [ln for ln in (r.out + r.err).splitlines() if "model.int8.onnx against model.onnx:" in ln]
    assert len(summary) == 1 and "on 20 test images (drop" in summary[0] and "speed-up not measured" in summary[0]
    drop = cfg["accuracy"][1]["int8_drop"]  # the fp32 model's top-1 on the same images, and the drop
    assert drop == pytest.approx(max(0.0, cfg["accuracy"][1]["top1_fp32"] - cfg["accuracy"][1]["top1"]))


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


# --------------------------------------------------------------------------- checked loading (issue 42)
def _pre(resolution: int = 24) -> dict:
    from attentivenas.export.bundle import preprocessing_of

    return preprocessing_of(color="grayscale", resize=32, resize_mode="whole_image", crop=None,
                            interpolation="bilinear", mean=[0.5] * 3, std=[0.5] * 3, resolution=resolution,
                            source_size=(8, 8))


@pytest.fixture(scope="module")
def full(subnet, tmp_path_factory) -> Path:
    """A bundle with a .pt2 file, preprocessing and an accuracy entry."""
    folder = tmp_path_factory.mktemp("full") / "b"
    info = CardInfo(class_names=["cat", "dog", "fox", "owl"], normalization={"mean": [0.5] * 3, "std": [0.5] * 3},
                    interpolation="bilinear", preprocessing=_pre(),
                    accuracy=[{"split": "test", "precision": "fp32", "top1": 50.0, "top5": 90.0, "samples": 80}])
    write_bundle(subnet, folder, formats=("torch-export",), info=info)
    return folder


def _copy(folder: Path, dest: Path) -> Path:
    dest.mkdir()
    for f in folder.iterdir():
        (dest / f.name).write_bytes(f.read_bytes())
    return dest


def _rewrite_weights(folder: Path, change) -> None:  # noqa: ANN001 - a callable on the state dict
    """Rewrite model.safetensors (keeping its metadata) and, as a careful tamperer would, its sha256 in config.json."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save

    from attentivenas.export.folders import file_sha256

    path = folder / "model.safetensors"
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    state = load_file(str(path))
    change(state)
    path.write_bytes(save(state, metadata=meta))
    cfg = json.loads((folder / "config.json").read_text())
    cfg["weights_sha256"] = file_sha256(path)
    (folder / "config.json").write_text(json.dumps(cfg))


def _edit(folder: Path, change) -> None:  # noqa: ANN001 - a callable on the config
    cfg = json.loads((folder / "config.json").read_text())
    change(cfg)
    (folder / "config.json").write_text(json.dumps(cfg))


def _first_bn(state: dict) -> str:
    return next(k for k in state if k.endswith("running_var"))


TAMPERS = {
    "std-zero": (lambda f: _edit(f, lambda c: c["normalization"].update(std=[0.0, 0.5, 0.5])), "normalization.std"),
    "std-nan": (lambda f: _edit(f, lambda c: c["normalization"].update(std=[float("nan")] * 3)), "config.json"),
    "interpolation": (lambda f: _edit(f, lambda c: c.update(interpolation="lanczos")), "interpolation"),
    "pre-interp": (lambda f: _edit(f, lambda c: c["preprocessing"]["resize"].update(interpolation="area")),
                   "preprocessing.resize.interpolation"),
    "pre-crop": (lambda f: _edit(f, lambda c: c["preprocessing"]["resize"].update(mode="shorter_side")),
                 "preprocessing.crop"),
    "pre-size": (lambda f: _edit(f, lambda c: c["preprocessing"]["model_input"].update(size=32)),
                 "preprocessing.model_input"),
    "missing-file": (lambda f: _edit(f, lambda c: c["files"].update({"model.onnx": {
        "format": "onnx", "precision": "fp32", "batch": "dynamic", "sha256": "0" * 64}})), "model.onnx not found"),
    "odd-name": (lambda f: _edit(f, lambda c: c["files"].update({"../x.pt2": dict(c["files"]["model.pt2"])})),
                 "files['../x.pt2']"),
    "batch": (lambda f: _edit(f, lambda c: c["files"]["model.pt2"].update(batch=10**9)), "batch"),
    "swapped-pt2": (lambda f: (f / "model.pt2").write_bytes((f / "model.pt2").read_bytes()[:-1] + b"x"),
                    "files['model.pt2'].sha256"),
    "mflops": (lambda f: _edit(f, lambda c: c.update(mflops=c["mflops"] * 2)), "mflops"),
    "params": (lambda f: _edit(f, lambda c: c.update(params_m=1.0)), "params_m"),
    "top1": (lambda f: _edit(f, lambda c: c["accuracy"][0].update(top1=150.0)), "accuracy[0].top1"),
    "top5": (lambda f: _edit(f, lambda c: c["accuracy"][0].update(top5=10.0)), "accuracy[0].top5"),
    "resolution": (lambda f: _edit(f, lambda c: (c["arch"].update(resolution=28), c.update(resolution=28),
                                                 c["preprocessing"]["model_input"].update(size=28))), "arch differs"),
    "activation": (lambda f: _edit(f, lambda c: c["space"]["supernet_config"]["mb1"].update(act_func="relu")),
                   "space differs"),
    "classes": (lambda f: _edit(f, lambda c: c.update(num_classes=5, class_names=[*c["class_names"], "emu"])),
                "num_classes differs"),
    "int-weights": (lambda f: _rewrite_weights(f, lambda s: s.update(
        {"classifier.weight": s["classifier.weight"].to(torch.int32)})), "classifier.weight is int32"),
    "bool-weights": (lambda f: _rewrite_weights(f, lambda s: s.update(
        {"classifier.bias": s["classifier.bias"] > 0})), "classifier.bias is bool"),
    "negative-var": (lambda f: _rewrite_weights(f, lambda s: s[_first_bn(s)].fill_(-1.0)), "negative"),
    "inf-weights": (lambda f: _rewrite_weights(f, lambda s: s["classifier.weight"].fill_(float("inf"))),
                    "non-finite"),
}


@pytest.mark.parametrize("how", sorted(TAMPERS))
def test_a_bundle_that_does_not_describe_its_model_is_refused(full, tmp_path: Path, how: str) -> None:
    bad = _copy(full, tmp_path / how)
    tamper, names = TAMPERS[how]
    tamper(bad)
    with pytest.raises(UserError) as err:
        load_pretrained(bad)
    message = str(err.value)
    assert "\n" not in message and names in message and str(bad) in message, message


def test_benign_edits_still_load(full, subnet, tmp_path: Path) -> None:
    ok = _copy(full, tmp_path / "ok")
    _edit(ok, lambda c: c.update(class_names=["a", "b", "c", "d"], command="edited"))
    (ok / "README.md").write_text("my own card\n")
    model = load_pretrained(ok)
    assert model.class_names == ["a", "b", "c", "d"] and torch.equal(_logits(model), _logits(subnet))
    cfg = json.loads((ok / "config.json").read_text())
    assert set(cfg["files"]["model.pt2"]) >= {"sha256", "batch"} and len(cfg["weights_sha256"]) == 64


def test_the_card_escapes_what_it_did_not_write(subnet, tmp_path: Path) -> None:
    evil = "evil`\n# Owned <img src=x onerror=alert(1)>\n```\n"
    info = CardInfo(class_names=["<b>cat</b>", "dog\n# H", "`x`", "```"], preprocessing=_pre(),
                    normalization={"mean": [0.5] * 3, "std": [0.5] * 3}, interpolation="bilinear",
                    source={"checkpoint": evil, "sha256": evil, "kind": "ours"},
                    command="attentivenas export --out 'a\n```\n<script>alert(1)</script>' ````x")
    folder = tmp_path / "e"
    write_bundle(subnet, folder, formats=(), info=info)
    card = (folder / "README.md").read_text()
    assert "<img" not in card and "<b>" not in card
    assert [ln for ln in card.splitlines() if "<script" in ln] == [ln for ln in card.splitlines()
                                                                   if ln.startswith("attentivenas export")]
    headings = [ln for ln in card.splitlines() if ln.startswith("#")]
    assert headings[0].startswith("# AttentiveNAS subnet") and all(h.startswith("## ") for h in headings[1:])
    lines = card.splitlines()
    i = lines.index("Made with:") + 2
    fence = lines[i][: len(lines[i]) - len("bash")]
    assert set(fence) == {"`"} and len(fence) > 4 and lines[i + 2] == fence  # one line inside, not closable
    assert "\\n" in lines[i + 1] and "&lt;script&gt;" not in lines[i + 1]  # a code block shows it as written
    assert "&lt;b&gt;cat&lt;/b&gt;" in card and "Owned &lt;img" in card
    assert load_pretrained(folder).class_names[1] == "dog\n# H"  # config.json keeps them as given


def test_preprocess_matches_the_image_folder_evaluation_transform() -> None:
    """An RGB image through a bundle's ``shorter_side`` preprocessing: torchvision's Resize / CenterCrop /
    ToTensor / Normalize of the data's evaluation, then the network's resize to its resolution."""
    from PIL import Image
    from torchvision import transforms as T

    from attentivenas.export.bundle import preprocessing_of
    from attentivenas.export.pretrained import preprocess_image
    from attentivenas.nn.layers import resize_input

    pre = preprocessing_of(color="rgb", resize=36, resize_mode="shorter_side", crop=32, interpolation="bicubic",
                           mean=[0.4, 0.5, 0.6], std=[0.2, 0.25, 0.3], resolution=24)
    rng = torch.Generator().manual_seed(0)
    img = Image.fromarray((torch.rand(30, 45, 3, generator=rng) * 255).to(torch.uint8).numpy())
    expected = T.Compose([T.Resize(36, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(32), T.ToTensor(),
                          T.Normalize([0.4, 0.5, 0.6], [0.2, 0.25, 0.3])])(img)
    got = preprocess_image(img, pre)
    assert got.shape == (3, 24, 24)
    torch.testing.assert_close(got, resize_input(expected[None], 24)[0], rtol=0, atol=1e-6)
    grey = preprocess_image(img.convert("L"), pre)  # a grey image for an RGB model: as RGB
    assert grey.shape == (3, 24, 24)
    with pytest.raises(UserError, match="cannot read image"):
        preprocess_image("/nonexistent.png", pre)


def test_int8_summary_says_when_fp32_is_the_better_file() -> None:
    from attentivenas.export.bundle_set import int8_summary

    cfg = {"files": {"model.onnx": {"format": "onnx", "precision": "fp32"},
                     "model.int8.onnx": {"format": "onnx", "precision": "int8"}},
           "latency": {"entries": [{"file": "model.onnx", "median_ms": 0.095},
                                   {"file": "model.int8.onnx", "median_ms": 0.092}]},
           "accuracy": [{"file": "model.int8.onnx", "split": "test", "top1": 75.8, "top1_fp32": 77.4,
                         "int8_drop": 1.6, "samples": 500}]}
    ((line, worse),) = int8_summary(cfg, 2.0)
    assert worse and "drop 1.60 points" in line and "speed-up 1.03x" in line and "ship model.onnx" in line
    assert "only 1.03x as fast" in line and "\n" not in line
    cfg["latency"]["entries"][1]["median_ms"] = 0.03
    ((line, worse),) = int8_summary(cfg, 2.0)
    assert not worse and "speed-up 3.17x" in line and "better file" not in line
    cfg["accuracy"][0].update(int8_drop=5.0)
    ((line, worse),) = int8_summary(cfg, 2.0)
    assert worse and "loses 5.00 points" in line


def test_the_cards_standalone_preprocessing_is_the_models(tmp_path: Path, monkeypatch) -> None:
    """The card's numpy/Pillow ``preprocess`` gives what ``preprocess_image`` gives (a model whose resolution is
    the crop: no resampling of PyTorch's in between)."""
    import numpy as np
    from PIL import Image

    from attentivenas.export.bundle import preprocessing_of
    from attentivenas.export.card import standalone_preprocess_code
    from attentivenas.export.pretrained import preprocess_image

    pre = preprocessing_of(color="rgb", resize=36, resize_mode="shorter_side", crop=32, interpolation="bilinear",
                           mean=[0.4, 0.5, 0.6], std=[0.2, 0.25, 0.3], resolution=32)
    (tmp_path / "config.json").write_text(json.dumps({"class_names": None}))
    monkeypatch.chdir(tmp_path)
    for size in ((45, 30), (30, 45), (40, 40)):
        img = Image.fromarray(np.random.default_rng(sum(size)).integers(0, 256, (*size[::-1], 3), dtype=np.uint8))
        img.save(tmp_path / "image.png")
        scope: dict = {}
        exec("\n".join(standalone_preprocess_code({"preprocessing": pre})), scope)  # noqa: S102 - our own code
        got = scope["preprocess"]("image.png")
        torch.testing.assert_close(torch.from_numpy(got[0]), preprocess_image(img, pre), rtol=0, atol=1e-5)


def test_a_format_version_1_bundle_still_loads(full, subnet, tmp_path: Path) -> None:
    """Bundles written before sha256s and preprocessing were recorded load (their files are not hashed)."""
    old = _copy(full, tmp_path / "v1")

    def downgrade(c: dict) -> None:
        c.update(format_version=1)
        for key in ("weights_sha256", "preprocessing"):
            c.pop(key)
        for f in c["files"].values():
            f.pop("sha256")

    _edit(old, downgrade)
    model = load_pretrained(old)
    assert torch.equal(_logits(model), _logits(subnet))
    with pytest.raises(UserError, match="records no preprocessing"):
        model.preprocess("x.png")
    _edit(old, lambda c: c.update(format_version=2))  # a version-2 bundle must record them
    with pytest.raises(UserError, match="weights_sha256"):
        load_pretrained(old)
