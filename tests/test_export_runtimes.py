"""``torch.export`` (.pt2) and ExecuTorch (.pte) exports, each checked against the PyTorch subnet by
its own runtime in a fresh interpreter that never imports attentivenas."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from attentivenas.export import commands as export_commands
from attentivenas.export.formats import FORMATS, SUFFIXES, export_subnet
from attentivenas.export.pareto import export_pareto_set
from attentivenas.nn import Supernet, save_supernet
from attentivenas.nn.static import SqueezeExcite
from attentivenas.runtimes.programs import MissingRuntimeError, exported_program
from attentivenas.runtimes.records import is_available
from attentivenas.space import TINY_SPACE

from .cli_helpers import run_cli
from .test_runtimes import needs_executorch, no_executorch  # noqa: F401 - no_executorch: a fixture

#: loads each file with its runtime alone, runs its saved input, writes the output: one interpreter for every
#: file of this module (starting one with ExecuTorch takes seconds)
RUNNER = r"""
import json
import sys
import numpy as np
import torch
for kind, model, x_path in json.loads(sys.argv[1]):
    if kind == "torch-export":
        run = torch.export.load(model).module()
    else:
        from executorch.runtime import Runtime
        program = Runtime.get().load_program(model)
        method = program.load_method("forward")
        run = lambda x, method=method: method.execute([x])[0]
    np.save(x_path.replace(".x.npy", ".y.npy"), run(torch.from_numpy(np.load(x_path))).detach().numpy())
assert not any(m.startswith("attentivenas") for m in sys.modules), "the check must not need our package"
"""


@pytest.fixture(scope="module")
def tiny_net() -> Supernet:
    torch.manual_seed(0)
    net = Supernet(TINY_SPACE, 10).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # non-trivial BN so that the checks see real statistics
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return net


def _run_alone(jobs: list[tuple[str, Path, torch.Tensor]], tmp_path: Path) -> list[np.ndarray]:
    """Outputs of each ``(kind, model, x)`` run by its runtime in one fresh interpreter (no attentivenas)."""
    paths = [tmp_path / f"{i}.x.npy" for i in range(len(jobs))]
    for p, (_, _, x) in zip(paths, jobs, strict=True):
        np.save(p, x.numpy())
    script = tmp_path / "check.py"
    script.write_text(RUNNER)
    args = json.dumps([[kind, str(model), str(p)] for (kind, model, _), p in zip(jobs, paths, strict=True)])
    proc = subprocess.run([sys.executable, str(script), args], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return [np.load(str(p).replace(".x.npy", ".y.npy")) for p in paths]


@pytest.fixture(scope="module")
def exported(tiny_net: Supernet, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The files the tests below check by their runtime alone, exported once and run in one interpreter:
    a sampled subnet as torch-export (batches 1 and 3), the min subnet of a Pareto set at batch 2, and,
    with ExecuTorch, `export --arch min --format executorch --batch 2` (the CLI's result and the info its
    ``export_subnet`` returned; a batch for each of two tests)."""
    tmp = tmp_path_factory.mktemp("exported")
    e: dict[str, Any] = {"dir": tmp, "ckpt": save_supernet(tmp / "tiny.pt", tiny_net)}
    e["sub"] = sub = tiny_net.extract(TINY_SPACE.sample(np.random.default_rng(0)))
    e["info"] = export_subnet(sub, tmp / "m.pt2", "torch-export")
    r = sub.resolution
    e["xs"] = [torch.randn(batch, 3, r, r, generator=torch.Generator().manual_seed(batch)) for batch in (1, 3)]
    jobs = [("torch-export", tmp / "m.pt2", x) for x in e["xs"]]
    e["fixed"] = export_pareto_set(tiny_net, [{"arch": TINY_SPACE.min_arch().to_dict()}], tmp / "fixed",
                                   "torch-export", batch=2)
    r = TINY_SPACE.min_arch().resolution
    jobs.append(("torch-export", tmp / "fixed" / e["fixed"][0]["file"], torch.randn(2, 3, r, r)))
    if is_available("executorch"):
        e["et"] = _executorch_cli_export(tiny_net, e["ckpt"], tmp)
        if e["et"]["cli"].code == 0:
            jobs += [("executorch", tmp / "min.pte", x) for x in e["et"]["xs"]]
    e["outs"] = _run_alone(jobs, tmp)
    return e


def _executorch_cli_export(tiny_net: Supernet, ckpt: Path, tmp: Path) -> dict[str, Any]:
    """`export --arch min --format executorch --batch 2` into ``tmp/min.pte``, with what ``export_subnet`` returned."""
    infos: list[dict[str, Any]] = []

    def spy(*args: Any, **kwargs: Any) -> dict[str, Any]:
        infos.append(export_subnet(*args, **kwargs))
        return infos[-1]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(export_commands, "export_subnet", spy)
        r = run_cli("export", "--checkpoint", str(ckpt), "--arch", "min", "--format", "executorch", "--batch", "2",
                    "--out", str(tmp / "min.pte"), "--no-calibrate-bn")  # the stored statistics, compared below
    sub = tiny_net.extract(TINY_SPACE.min_arch())
    xs = [torch.randn(2, 3, sub.resolution, sub.resolution, generator=torch.Generator().manual_seed(s)) for s in (7, 3)]
    return {"cli": r, "infos": infos, "sub": sub, "xs": xs}


def _rel_error(out: np.ndarray, sub: torch.nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad():
        ref = sub(x).numpy()
    assert out.shape == ref.shape
    return float(np.abs(out - ref).max() / np.abs(ref).max())


def test_exported_squeeze_excite_keeps_its_convs_for_the_runtimes() -> None:
    """torch.export sees the SE's 1x1 convs on a kept-dim mean (XNNPACK delegates it with the rest of
    the network); eager runs them as matrix products; both give the same values."""
    torch.manual_seed(0)
    se = SqueezeExcite(16, 8).eval()
    x = torch.randn(2, 16, 5, 5)
    program = exported_program(se, x)
    targets = [str(n.target) for n in program.graph.nodes if n.op == "call_function"]
    assert targets.count("aten.conv2d.default") == 2 and not any("linear" in t for t in targets)
    with torch.no_grad():
        torch.testing.assert_close(program.module()(x), se(x), rtol=1e-5, atol=1e-6)


def test_formats_and_suffixes() -> None:
    assert {"torch-export", "executorch"} <= set(FORMATS)
    assert (SUFFIXES["torch-export"], SUFFIXES["executorch"]) == (".pt2", ".pte")


@pytest.mark.slow
def test_torch_export_loads_with_torch_alone_at_any_batch(exported: dict[str, Any]) -> None:
    info, sub = exported["info"], exported["sub"]
    assert info["rel_error"] <= 1e-4 and Path(info["path"]).is_file()
    for x, out in zip(exported["xs"], exported["outs"][:2], strict=True):
        assert out.shape == (len(x), 10) and _rel_error(out, sub, x) <= 1e-4


@needs_executorch
@pytest.mark.slow
def test_executorch_program_runs_in_executorch_alone(exported: dict[str, Any]) -> None:
    e = exported["et"]
    assert e["cli"].code == 0, e["cli"].err
    (info,) = e["infos"]
    assert info["rel_error"] <= 1e-4 and info["batch"] == 2 and Path(info["path"]) == exported["dir"] / "min.pte"
    assert _rel_error(exported["outs"][3], e["sub"], e["xs"][0]) <= 1e-4  # XNNPACK runs float32 kernels


@needs_executorch
@pytest.mark.slow
def test_cli_executorch_batch_2_runs_at_batch_2(exported: dict[str, Any]) -> None:
    """`export --batch 2`: the .pte takes a batch of 2 (the default batch-1 program refuses one)."""
    e, tmp = exported["et"], exported["dir"]
    r = e["cli"]
    assert r.code == 0, r.err
    assert "batch 2" in r.out
    out, sub, x = exported["outs"][4], e["sub"], e["xs"][1]
    assert out.shape == (2, 10) and _rel_error(out, sub, x) <= 1e-4
    r = run_cli("export", "--checkpoint", str(exported["ckpt"]), "--arch", "min", "--format", "executorch", "--batch",
                "dynamic", "--out", str(tmp / "dyn.pte"))
    assert r.code == 2 and "not supported for executorch" in r.err and r.err.count("\n") == 1
    assert not (tmp / "dyn.pte").exists()


def test_executorch_export_without_the_extra_names_it(tiny_net: Supernet, tmp_path: Path,
                                                      no_executorch: None) -> None:  # noqa: F811
    with pytest.raises(MissingRuntimeError, match=r"attentivenas\[executorch\]"):
        export_subnet(tiny_net.extract(TINY_SPACE.min_arch()), tmp_path / "m.pte", "executorch")
    assert not (tmp_path / "m.pte").exists()


@pytest.mark.slow
def test_cli_export_torch_export_and_pareto_set(tiny_net: Supernet, exported: dict[str, Any], tmp_path: Path) -> None:
    ckpt = save_supernet(tmp_path / "tiny.pt", tiny_net)
    r = run_cli("export", "--checkpoint", str(ckpt), "--arch", "min", "--format", "torch-export",
                "--out", str(tmp_path / "min.pt2"), "--no-calibrate-bn")
    assert r.code == 0, r.err
    assert "torch-export" in r.out and (tmp_path / "min.pt2").is_file()
    archs = [{"arch": TINY_SPACE.min_arch().to_dict()}, {"arch": TINY_SPACE.max_arch().to_dict()}]
    records = export_pareto_set(tiny_net, archs, tmp_path / "models", "torch-export")
    assert [r["file"].endswith(".pt2") for r in records] == [True, True]
    assert all(r["rel_error"] <= 1e-4 for r in records)
    assert json.loads((tmp_path / "models" / "index.json").read_text())[1]["format"] == "torch-export"
    records = exported["fixed"]  # export_pareto_set(tiny_net, archs[:1], DIR / "fixed", "torch-export", batch=2)
    assert json.loads((exported["dir"] / "fixed" / "index.json").read_text())[0]["batch"] == records[0]["batch"] == 2
    assert exported["outs"][2].shape == (2, 10)  # run by torch alone
    r = run_cli("export", "--checkpoint", str(ckpt), "--arch", "min", "--format", "tflite", "--out", "x")
    assert r.code == 2 and "torch-export" in r.err
