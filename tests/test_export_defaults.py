"""Exports that cannot silently ship a broken model (issues 38 and 42): BN recalibrated by default as stage 2
measures (``--no-calibrate-bn`` warns), bounded ``--batch``, INT8 flags refused at fp32, the INT8 drop
flagged, and export folders locked, written in order and cleaned after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from attentivenas.config import DataConfig
from attentivenas.data import build_data
from attentivenas.export import folders as export_folders
from attentivenas.export import formats as export_mod
from attentivenas.export import pareto as pareto_export
from attentivenas.export.pareto import export_pareto_set
from attentivenas.export.pretrained import load_safetensors_subnet
from attentivenas.nn import Supernet, load_supernet, save_supernet
from attentivenas.nn.layers import resize_input
from attentivenas.space import TINY_SPACE

from .cli_helpers import run_cli

ROOT = Path(__file__).resolve().parents[1]
#: a small BN recalibration (4 x 64 training images), the same for export and evaluate
CALIB = ["--calib-batches", "4", "--calib-batch-size", "64"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny supernet trained briefly on the digits (its min subnet, 20 steps), then its stored BN statistics
    reset to placeholders (mean 0, variance 1), as a supernet's stored statistics are for most subnets;
    the checkpoint records its data (the digits) and hold-out."""
    data = build_data(DataConfig(name="digits", image_size=32))
    torch.manual_seed(0)
    net = Supernet(TINY_SPACE, 10)
    net.set_arch(TINY_SPACE.min_arch())
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    loader = torch.utils.data.DataLoader(data.train, batch_size=64, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    net.train()
    for x, y in loader:
        loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
    return save_supernet(tmp_path_factory.mktemp("trained") / "tiny.pt", net.eval(),
                         extra={"config": {"data": {"name": "digits"}}, "holdout": dict(data.holdout)})


@pytest.fixture(scope="module")
def measured(trained: Path) -> float:
    """The min subnet's top-1 on the digits test split as ``evaluate`` measures it (BN recalibrated; its JSON
    rounds to 4 decimals)."""
    r = run_cli("evaluate", "--checkpoint", str(trained), "--arch", "min", "--split", "test", *CALIB,
                "--device", "cpu", "--json")
    assert r.code == 0, r.err
    return float(json.loads(r.out)["top1"])


def _test_split(ckpt: Path):  # noqa: ANN202 - a torch Dataset
    from attentivenas.accuracy import resolve_data

    net, meta = load_supernet(ckpt)
    return resolve_data(None, net.space, meta).test


def _top1(run, dataset, resolution: int) -> float:  # noqa: ANN001 - a callable model
    loader = torch.utils.data.DataLoader(dataset, batch_size=128)
    correct = total = 0
    with torch.inference_mode():
        for x, y in loader:
            correct += int((run(resize_input(x, resolution)).argmax(1) == y).sum())
            total += len(y)
    return 100.0 * correct / total


def test_a_default_export_is_the_measured_recalibrated_subnet(trained: Path, measured: float, tmp_path: Path) -> None:
    out = tmp_path / "min.pt2"
    r = run_cli("export", "--checkpoint", str(trained), "--arch", "min", "--out", str(out), *CALIB)
    assert r.code == 0, r.err
    assert "warning" not in r.err
    program = torch.export.load(str(out)).module()
    top1 = _top1(program, _test_split(trained), TINY_SPACE.min_arch().resolution)
    assert measured > 60.0  # far above chance (10%)
    assert abs(top1 - measured) <= 100.0 / 270 + 1e-9  # the same model, up to one image of float noise


def test_default_pareto_and_bundle_exports_recalibrate(trained: Path, measured: float, tmp_path: Path) -> None:
    pareto = tmp_path / "pareto.json"
    pareto.write_text(json.dumps([{"arch": TINY_SPACE.min_arch().to_dict()}]))
    r = run_cli("export", "--checkpoint", str(trained), "--pareto", str(pareto), "--format", "safetensors",
                "--out", str(tmp_path / "models"), *CALIB)
    assert r.code == 0, r.err
    index = json.loads((tmp_path / "models" / "index.json").read_text())
    sub = load_safetensors_subnet(tmp_path / "models" / index[0]["file"])
    assert _top1(sub, _test_split(trained), sub.resolution) == pytest.approx(measured, abs=1e-3)
    r = run_cli("export", "--checkpoint", str(trained), "--arch", "min", "--format", "bundle", "--with", "",
                "--card-split", "test", "--no-latency", "--out", str(tmp_path / "b"), *CALIB)
    assert r.code == 0, r.err
    cfg = json.loads((tmp_path / "b" / "config.json").read_text())
    assert cfg["accuracy"][0]["split"] == "test" and cfg["accuracy"][0]["top1"] == pytest.approx(measured, abs=1e-3)
    assert "BN statistics recalibrated" in (tmp_path / "b" / "README.md").read_text()


def test_no_calibrate_bn_warns_in_one_line_and_keeps_the_stored_statistics(trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "raw.safetensors"
    r = run_cli("export", "--checkpoint", str(trained), "--arch", "min", "--format", "safetensors", "--out", str(out),
                "--no-calibrate-bn")
    assert r.code == 0, r.err
    warnings = [ln for ln in r.err.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 1 and "--no-calibrate-bn" in warnings[0] and "placeholders" in warnings[0]
    bn = load_safetensors_subnet(out).first_conv.bn
    assert torch.equal(bn.running_mean, torch.zeros_like(bn.running_mean))  # as stored
    r = run_cli("export", "--checkpoint", str(trained), "--arch", "min", "--format", "onnx", "--precision", "int8",
                "--out", str(tmp_path / "q.onnx"), "--no-calibrate-bn")
    assert r.code == 2 and "recalibrates BN first" in r.err and r.err.count("\n") == 1


def test_help_says_when_bn_is_recalibrated() -> None:
    r = run_cli("export", "--help")
    text = " ".join(r.out.split())
    assert "--no-calibrate-bn" in text and "fine-tuned subnet" in text and "--max-int8-drop" in text


def test_a_checkpoint_without_data_names_the_opt_out(tmp_path: Path) -> None:
    torch.manual_seed(0)
    ckpt = save_supernet(tmp_path / "bare.pt", Supernet(TINY_SPACE, 10))
    for fmt in ("torch-export", "bundle"):
        r = run_cli("export", "--checkpoint", str(ckpt), "--arch", "min", "--format", fmt,
                    "--out", str(tmp_path / f"x-{fmt}"))
        assert r.code == 2 and "pass --data" in r.err and "--no-calibrate-bn" in r.err, r.err
        assert r.err.count("\n") == 1


@pytest.mark.parametrize("fmt", ["onnx", "torch-export", "executorch", "bundle"])
def test_a_huge_batch_is_one_line_before_loading(tmp_path: Path, fmt: str) -> None:
    r = run_cli("export", "--checkpoint", str(tmp_path / "missing.pt"), "--arch", "min", "--format", fmt,
                "--batch", "100000000", "--out", str(tmp_path / "x"))
    assert r.code == 2 and "--batch" in r.err and "256" in r.err and r.err.count("\n") == 1, r.err
    assert export_mod.MAX_BATCH == 256  # the command's --help repeats it
    from attentivenas.cli import export_cmd
    from attentivenas.runtimes import quantize

    assert export_cmd.MAX_BATCH == export_mod.MAX_BATCH
    assert (export_cmd.DEFAULT_MAX_INT8_DROP, export_cmd.DEFAULT_CHECK_IMAGES) == (
        quantize.DEFAULT_MAX_INT8_DROP, quantize.DEFAULT_CHECK_IMAGES)


@pytest.mark.parametrize("flag", [["--calib-images", "8"], ["--check-images", "5"], ["--check-split", "holdout"],
                                  ["--max-int8-drop", "1"]])
def test_int8_flags_at_fp32_are_refused(tmp_path: Path, flag: list[str]) -> None:
    for fmt in ("onnx", "bundle"):
        r = run_cli("export", "--checkpoint", str(tmp_path / "missing.pt"), "--arch", "min", "--format", fmt,
                    *flag, "--out", str(tmp_path / "x"))
        assert r.code == 2 and f"{flag[0]} applies to --precision int8, not to fp32" in r.err, r.err
        assert r.err.count("\n") == 1


INT8 = ["--format", "onnx", "--precision", "int8", "--calib-batches", "1", "--calib-batch-size", "16",
        "--calib-images", "16", "--check-images", "20", "--json"]


def test_the_int8_drop_fields_and_warning() -> None:
    from attentivenas.runtimes.quantize import int8_drop_fields, int8_drop_warning

    check = {"top1_fp32": 99.0, "top1_int8": 32.0, "check_images": 500}
    fields = int8_drop_fields(check, 2.0)
    assert fields == {"int8_drop": 67.0, "max_int8_drop": 2.0, "int8_drop_exceeded": True}
    line = int8_drop_warning({**check, **fields}, "a.xml")
    assert line is not None and "\n" not in line and "67.00 points below fp32" in line and "a.xml" in line
    better = {"top1_fp32": 90.0, "top1_int8": 91.0, "check_images": 500}
    assert int8_drop_fields(better)["int8_drop"] == 0.0
    assert int8_drop_warning({**better, **int8_drop_fields(better)}) is None


@pytest.mark.slow
def test_an_int8_drop_is_in_the_json_and_flagged_over_the_threshold(trained: Path, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    r = run_cli("export", "--checkpoint", str(trained), "--arch", "min", "--out", str(tmp_path / "a.onnx"), *INT8)
    assert r.code == 0, r.err
    info = json.loads(r.out)["files"][0]
    assert info["int8_drop"] == pytest.approx(max(0.0, info["top1_fp32"] - info["top1_int8"]))
    assert info["max_int8_drop"] == 2.0 and info["int8_drop_exceeded"] == (info["int8_drop"] > 2.0)

    def worse(*args: object, **kwargs: object) -> dict:  # a check that lost 6 points (what OpenVINO INT8 did)
        return {"top1_fp32": 96.0, "top1_int8": 90.0, "agreement": 0.9, "drop_points": 6.0, "check_images": 20}

    monkeypatch.setattr(export_mod, "check_int8_accuracy", worse)
    r = run_cli("export", "--checkpoint", str(trained), "--arch", "min", "--out", str(tmp_path / "b.onnx"), *INT8,
                "--max-int8-drop", "5")
    assert r.code == 0, r.err
    info = json.loads(r.out)["files"][0]
    assert info["int8_drop"] == 6.0 and info["int8_drop_exceeded"] is True
    warning = [ln for ln in r.err.splitlines() if ln.startswith("warning:")]
    assert len(warning) == 1 and "6.00 points below fp32" in warning[0] and "--max-int8-drop 5" in warning[0]


# --------------------------------------------------------------------------- folders: lock, order, kills
def _hold_lock(path: Path, folder: bool) -> subprocess.Popen:
    """Another process holding the export lock of ``path`` (as ``export.folders.export_lock`` takes it) until killed."""
    lock = f"OutputLock({str(path)!r})" if folder else f"OutputLock({str(path.parent)!r}, name='.{path.name}.lock')"
    code = f"import time; from attentivenas.io import OutputLock; {lock}.acquire(); print('held', flush=True); time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


@pytest.mark.parametrize(("fmt", "pareto"), [("bundle", False), ("safetensors", True), ("torch-export", False)])
def test_an_export_into_a_folder_in_use_is_refused(trained: Path, tmp_path: Path, fmt: str, pareto: bool) -> None:
    out = tmp_path / ("models" if pareto else "a")
    holder = _hold_lock(out, folder=pareto)
    assert export_folders.export_lock(out, folder=pareto).path == (out / ".attentivenas.lock" if pareto else
                                                               tmp_path / f".{out.name}.lock")
    try:
        target = ["--pareto", str(tmp_path / "p.json")] if pareto else ["--arch", "min"]
        (tmp_path / "p.json").write_text(json.dumps([{"arch": TINY_SPACE.min_arch().to_dict()}]))
        extra = ["--with", "", "--no-card-metrics", "--no-latency"] if fmt == "bundle" else []
        r = run_cli("export", "--checkpoint", str(trained), *target, "--format", fmt, "--out", str(out), *extra,
                    "--no-calibrate-bn")  # (a warning line, then the refusal)
        assert r.code == 2 and "in use by another attentivenas process" in r.err.splitlines()[-1], r.err
        assert not (out / "config.json").exists() and not (out / "index.json").exists()
    finally:
        holder.kill()
        holder.wait()


def test_index_is_removed_before_files_are_rewritten_and_written_last(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    net = Supernet(TINY_SPACE, 10).eval()
    archs = [{"arch": TINY_SPACE.min_arch().to_dict()}, {"arch": TINY_SPACE.max_arch().to_dict()}]
    out = tmp_path / "models"
    export_pareto_set(net, archs, out, "safetensors")
    (out / ".subnet_00_x.safetensors.abc.tmp").write_bytes(b"torn")  # a killed export's temporary file
    orphan = out / "attentivenas-4194999-openvino-x"  # a killed export's temporary folder (no such process)
    orphan.mkdir()
    real = pareto_export.export_subnet
    seen = []

    def spy(*args: object, **kwargs: object) -> dict:
        seen.append((out / "index.json").exists())
        return real(*args, **kwargs)

    monkeypatch.setattr(pareto_export, "export_subnet", spy)
    records = export_pareto_set(net, archs, out, "safetensors")
    assert seen == [False, False]  # no index.json while any file it describes is rewritten
    assert json.loads((out / "index.json").read_text()) == records
    assert all(r["sha256"] == export_folders.file_sha256(out / r["file"]) for r in records)
    assert not (out / ".subnet_00_x.safetensors.abc.tmp").exists() and not orphan.exists()


#: runs the command line in a process whose exports pause (``paused`` on stdout) inside their first file
PAUSED_EXPORT = """
import sys, time
import attentivenas.export.weights as b  # a bundle's first file: its weights
import attentivenas.export.pareto as e
real = e.export_subnet
def paused(*args, **kwargs):
    print("paused", flush=True)
    time.sleep(60)
    return real(*args, **kwargs)
real_write = b.atomic_write_bytes
def paused_write(*args, **kwargs):
    print("paused", flush=True)
    time.sleep(60)
    return real_write(*args, **kwargs)
e.export_subnet = paused
b.atomic_write_bytes = paused_write
from attentivenas.cli import main
main(sys.argv[1:])
"""


def _kill_paused(args: list[str]) -> None:
    """Run ``attentivenas ARGS`` in another process and SIGKILL it while it writes its first file."""
    proc = subprocess.Popen([sys.executable, "-c", PAUSED_EXPORT, *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "paused"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()


@pytest.mark.slow
def test_a_killed_pareto_export_leaves_no_index(trained: Path, tmp_path: Path) -> None:
    """SIGKILL while a Pareto set is re-exported: no index.json describes files that are being rewritten;
    the next export completes and cleans up."""
    pareto = tmp_path / "p.json"
    pareto.write_text(json.dumps([{"arch": TINY_SPACE.min_arch().to_dict()}, {"arch": TINY_SPACE.max_arch().to_dict()}]))
    out = tmp_path / "models"
    args = ["export", "--checkpoint", str(trained), "--pareto", str(pareto), "--format", "safetensors",
            "--out", str(out), "--calib-batches", "1", "--calib-batch-size", "16"]
    assert run_cli(*args).code == 0 and (out / "index.json").is_file()
    _kill_paused(args)
    assert not (out / "index.json").exists()
    r = run_cli(*args)
    assert r.code == 0, r.err
    index = json.loads((out / "index.json").read_text())
    assert all(e["sha256"] == export_folders.file_sha256(out / e["file"]) for e in index)
    assert not list(out.glob(".*.tmp"))


@pytest.mark.slow
def test_a_killed_bundle_export_leaves_a_folder_that_does_not_load(trained: Path, tmp_path: Path) -> None:
    from attentivenas.errors import UserError
    from attentivenas.export.pretrained import load_pretrained

    out = tmp_path / "b"
    args = ["export", "--checkpoint", str(trained), "--arch", "min", "--format", "bundle", "--with", "",
            "--no-card-metrics", "--no-latency", "--out", str(out), "--calib-batches", "1", "--calib-batch-size", "16"]
    assert run_cli(*args).code == 0
    load_pretrained(out)
    args[args.index("min")] = "max"  # a re-export of another subnet into the same folder, killed
    _kill_paused(args)
    with pytest.raises(UserError, match="config.json"):
        load_pretrained(out)  # neither the old subnet nor a mix of the two
    r = run_cli(*args)
    assert r.code == 0, r.err
    assert load_pretrained(out).arch == TINY_SPACE.max_arch()


# --------------------------------------------------------------------------- bundles a user can call (issue 38)
def _digit_images(n: int):  # noqa: ANN202 - PIL images and the model's input tensors of the same digits
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    images = load_digits().images[:n]
    pil = [Image.fromarray(np.round(im * 255.0 / 16.0).astype(np.uint8), mode="L") for im in images]
    x = torch.from_numpy(np.round(images * 255.0 / 16.0).astype(np.float32) / 255.0).unsqueeze(1)
    x = torch.nn.functional.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)
    return pil, ((x - 0.5) / 0.5).expand(-1, 3, -1, -1)


def _card_blocks(card: str) -> list[str]:
    """The python code blocks of a model card."""
    blocks, current = [], None
    for line in card.splitlines():
        if current is None and line == "```python":
            current = []
        elif current is not None and line == "```":
            blocks.append("\n".join(current))
            current = None
        elif current is not None:
            current.append(line)
    return blocks


@pytest.fixture(scope="module")
def user_bundle(trained: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("user") / "digits-model"
    r = run_cli("export", "--checkpoint", str(trained), "--arch", "min", "--format", "bundle", "--with",
                "torch-export,onnx", "--card-split", "test", "--no-latency", "--out", str(out), *CALIB)
    assert r.code == 0, r.err
    return out


def test_a_bundle_records_its_preprocessing_and_classifies_images(user_bundle: Path, tmp_path: Path) -> None:
    from attentivenas.export.pretrained import load_pretrained

    cfg = json.loads((user_bundle / "config.json").read_text())
    pre = cfg["preprocessing"]
    assert pre["source"] == {"color": "grayscale", "channels": 1, "size": [8, 8]}
    assert pre["resize"] == {"size": 32, "mode": "whole_image", "interpolation": "bilinear"} and pre["crop"] is None
    assert pre["mean"] == [0.5] * 3 and pre["std"] == [0.5] * 3
    assert pre["model_input"] == {"channels": 3, "size": 24, "resize": "bicubic", "layout": "NCHW", "dtype": "float32"}
    model = load_pretrained(user_bundle)
    pil, x = _digit_images(40)
    with torch.inference_mode():
        expected = model(x).argmax(1).tolist()
    got = model.classify(pil, top_k=3)
    assert [g["index"] for g in got] == expected  # as the model sees the digits data
    assert all(g["label"] == str(g["index"]) and 0 < g["probability"] <= 1 for g in got)
    assert got[0]["top"][0] == (got[0]["label"], got[0]["probability"]) and len(got[0]["top"]) == 3
    pil[0].save(tmp_path / "a.png")
    pil[0].convert("RGB").save(tmp_path / "rgb.png")  # an RGB file for a greyscale model
    from_files = model.classify([tmp_path / "a.png", str(tmp_path / "rgb.png")])
    assert [f["index"] for f in from_files] == [expected[0]] * 2
    assert model.preprocess(pil[0]).shape == (3, 24, 24)


@pytest.mark.slow
def test_the_card_runs_each_runtime_file_without_attentivenas(user_bundle: Path, tmp_path: Path) -> None:
    """The card's code: its numpy/Pillow preprocessing and each runtime's lines, run where attentivenas
    cannot be imported, give the class attentivenas gives."""
    from attentivenas.export.pretrained import load_pretrained

    card = (user_bundle / "README.md").read_text()
    blocks = _card_blocks(card)
    pre = next(b for b in blocks if "def preprocess(path)" in b)
    runtimes = [b for b in blocks if "logits =" in b and "attentivenas" not in b]
    assert len(runtimes) == 2  # model.pt2 and model.onnx
    pil, _ = _digit_images(12)
    model = load_pretrained(user_bundle)
    confident = next(i for i, g in enumerate(model.classify(pil)) if g["probability"] > 0.9)
    pil[confident].save(user_bundle / "image.png")
    expected = model.classify([user_bundle / "image.png"])[0]["label"]
    block = ("import sys\nclass _Block:\n    def find_spec(self, name, path=None, target=None):\n"
             "        if name.split('.')[0] == 'attentivenas':\n            raise ImportError('blocked')\n"
             "sys.meta_path.insert(0, _Block())\n")
    for code in runtimes:
        script = block + pre + "\n" + code + "\nprint(CLASSES[int(probabilities.argmax(1)[0])])\n"
        r = subprocess.run([sys.executable, "-I", "-c", script], cwd=user_bundle, capture_output=True, text=True,
                           timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
        assert r.stdout.strip() == expected
    (user_bundle / "image.png").unlink()
