"""One subnet-weights format and one loader: ``export --format safetensors`` writes what a bundle's weights
are (``model.safetensors`` + ``config.json``), read by ``load_pretrained``; subnet files of the old format
(``X.safetensors`` + ``X.arch.json``) still load, with a warning naming the new one."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save

import attentivenas
from attentivenas.errors import UserError
from attentivenas.export.bundle import write_bundle
from attentivenas.export.formats import ExportError, arch_json_path, export_safetensors, export_subnet, subnet_spec
from attentivenas.export.pretrained import BundledSubnet, load_pretrained
from attentivenas.nn import Supernet
from attentivenas.space import TINY_SPACE

X = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def tiny_net() -> Supernet:
    torch.manual_seed(0)
    net = Supernet(TINY_SPACE, 10).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # non-trivial BN statistics, so a wrong tensor would change the logits
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return net


def _old_subnet_file(sub: torch.nn.Module, path: Path) -> Path:
    """A subnet file as ``export --format safetensors`` wrote it before: the state dict with the subnet's
    description in its metadata, and ``X.arch.json`` beside it."""
    spec = subnet_spec(sub)
    state = {k: v.detach().contiguous().clone() for k, v in sub.state_dict().items()}
    path.write_bytes(save(state, metadata={"attentivenas": json.dumps(spec)}))
    arch_json_path(path).write_text(json.dumps(spec))
    return path


def test_safetensors_export_is_a_bundles_weights_and_load_pretrained_reads_it(tiny_net: Supernet,
                                                                             tmp_path: Path) -> None:
    arch = TINY_SPACE.max_arch()
    sub = tiny_net.extract(arch).eval()
    info = export_safetensors(sub, tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.safetensors"]
    assert info["path"] == str(tmp_path / "m" / "model.safetensors") and info["config"].endswith("config.json")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["model_type"] == "attentivenas-subnet" and cfg["arch"] == arch.to_dict() and cfg["files"] == {}
    assert cfg["num_classes"] == 10 and cfg["space"]["name"] == "tiny"
    # the same weights file and the same config core as a bundle of the same subnet
    bundle = write_bundle(sub, tmp_path / "b", formats=())
    for name in ("m", "b"):  # (the metadata's order in the file is safetensors' own)
        with safe_open(str(tmp_path / name / "model.safetensors"), framework="pt") as f:
            assert f.metadata() == {"format": "pt", "attentivenas": json.dumps(subnet_spec(sub))}
    torch.testing.assert_close(load_file(tmp_path / "b" / "model.safetensors"),
                               load_file(tmp_path / "m" / "model.safetensors"), rtol=0, atol=0)
    assert {k: v for k, v in bundle.items() if k in cfg and k != "weights_sha256"} == {
        k: v for k, v in cfg.items() if k != "weights_sha256"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new format loads without a warning
        for where in (tmp_path / "m", tmp_path / "m" / "model.safetensors"):
            loaded = load_pretrained(where)
            assert isinstance(loaded, BundledSubnet) and loaded.arch == arch
            with torch.no_grad():
                torch.testing.assert_close(loaded(X), sub(X), rtol=0, atol=0)
        assert attentivenas.load_pretrained(tmp_path / "m").arch == arch
    # it is checked as a bundle is: a changed weights file is refused
    data = bytearray((tmp_path / "m" / "model.safetensors").read_bytes())
    data[-1] ^= 1
    (tmp_path / "m" / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(ExportError, match="sha256"):
        load_pretrained(tmp_path / "m")


def test_export_subnet_writes_the_folder_and_refuses_a_file_in_its_place(tiny_net: Supernet, tmp_path: Path) -> None:
    info = export_subnet(tiny_net.extract(TINY_SPACE.min_arch()), tmp_path / "w", "safetensors")
    assert Path(info["path"]).name == "model.safetensors" and info["precision"] == "fp32"
    (tmp_path / "taken").write_text("x")
    with pytest.raises(UserError, match="exists and is not a folder"):
        export_safetensors(tiny_net.extract(TINY_SPACE.min_arch()), tmp_path / "taken")


def test_an_old_subnet_file_loads_with_a_warning_naming_the_new_format(tiny_net: Supernet, tmp_path: Path) -> None:
    arch = TINY_SPACE.max_arch()
    sub = tiny_net.extract(arch).eval()
    old = _old_subnet_file(sub, tmp_path / "m.safetensors")
    with pytest.warns(FutureWarning, match=r"X\.safetensors \+ X\.arch\.json.*--format safetensors.*model\.safetensors "
                                           r"and config\.json"):
        loaded = load_pretrained(old)
    assert loaded.arch == arch and loaded.num_classes == 10
    with torch.no_grad():
        torch.testing.assert_close(loaded(X), sub(X), rtol=0, atol=0)
    # without the JSON beside it the description in the safetensors metadata is used
    arch_json_path(old).unlink()
    with pytest.warns(FutureWarning, match="old-format subnet file"):
        assert load_pretrained(old).arch == arch


def test_an_old_subnet_file_that_does_not_match_is_one_line(tiny_net: Supernet, tmp_path: Path) -> None:
    old = _old_subnet_file(tiny_net.extract(TINY_SPACE.min_arch()), tmp_path / "a.safetensors")
    js = arch_json_path(old)
    spec = json.loads(js.read_text())
    spec["arch"] = TINY_SPACE.max_arch().to_dict()
    js.write_text(json.dumps(spec))
    with pytest.warns(FutureWarning), pytest.raises(ExportError, match="do not match its arch"):
        load_pretrained(old)
    with pytest.raises(ExportError, match="not found"):
        load_pretrained(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    arch_json_path(tmp_path / "junk.safetensors").write_text(js.read_text())
    with pytest.warns(FutureWarning), pytest.raises(ExportError, match="not a valid safetensors file"):
        load_pretrained(tmp_path / "junk.safetensors")


def test_config_json_is_a_typed_section(tiny_net: Supernet, tmp_path: Path) -> None:
    """``config.json`` is read as :class:`~attentivenas.config.bundle.BundleConfig`: an unknown key, a wrong type
    or a rule broken is one line naming the file and the field."""
    from attentivenas.config.bundle import BundleConfig

    export_safetensors(tiny_net.extract(TINY_SPACE.min_arch()), tmp_path / "w")
    path = tmp_path / "w" / "config.json"
    good = json.loads(path.read_text())
    assert BundleConfig.model_validate(good).num_classes == 10
    for change, field in (({"extra_key": 1}, "extra_key"), ({"num_classes": True}, "num_classes"),
                          ({"files": {"model.pt2": {"format": "torch-export", "precision": "fp16", "batch": 1}}},
                           "files['model.pt2'].precision"), ({"weights_sha256": "x"}, "weights_sha256")):
        path.write_text(json.dumps({**good, **change}))
        with pytest.raises(UserError) as err:
            load_pretrained(tmp_path / "w")
        assert "\n" not in str(err.value) and field in str(err.value) and str(path) in str(err.value), str(err.value)
