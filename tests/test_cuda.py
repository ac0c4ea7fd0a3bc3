"""CUDA paths (skipped without a GPU; ``benchmarks/gpu_check.sh`` runs them on a CUDA machine):
bf16 autocast and channels-last in the sandwich step, stage-2 evaluation on the GPU, and the NCCL
path with one rank under torchrun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from attentivenas.config import parse_config
from attentivenas.nn import Supernet
from attentivenas.space import TINY_SPACE

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def _train_config(**runtime):
    return parse_config({
        "seed": 0, "space": "tiny",
        "data": {"name": "digits", "image_size": 32, "batch_size": 32},
        "optim": {"epochs": 1}, "eval": {"every_epochs": 1, "calibration_batches": 2, "max_batches": 2},
        "runtime": {"device": "cuda", "steps_per_epoch": 4, **runtime},
        "log": {"progress": False, "tensorboard": False},
    })


@pytest.mark.parametrize("amp,channels_last", [("bf16", True), ("bf16", False), ("none", True)])
def test_the_step_trains_on_cuda_with_bf16_and_channels_last(tmp_path: Path, amp: str, channels_last: bool) -> None:
    from attentivenas.train import train

    res = train(_train_config(amp=amp, channels_last=channels_last), tmp_path / "run")
    assert res.status == "completed" and res.global_step == 4
    assert 0.0 <= res.final_eval["max_top1"] <= 100.0
    rec = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in rec if r["kind"] == "train")


def test_channels_last_gives_the_same_logits_on_cuda() -> None:
    torch.manual_seed(0)
    net = Supernet(TINY_SPACE, 10).cuda().eval()
    x = torch.randn(8, 3, 32, 32, device="cuda")
    ref = net(x)
    out = net.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(ref, out, atol=1e-4, rtol=1e-4)


def test_stage2_measures_the_same_on_cuda_and_cpu() -> None:
    from attentivenas.accuracy import SubnetEvaluator
    from attentivenas.config import MeasureSettings

    torch.manual_seed(0)
    net = Supernet(TINY_SPACE, 10).eval()
    p = MeasureSettings(split="test", calib_batches=2, calib_batch_size=64)
    cpu = SubnetEvaluator.for_supernet(net, {}, "digits", p, "cpu").evaluate(TINY_SPACE.min_arch())
    gpu = SubnetEvaluator.for_supernet(net.cuda(), {}, "digits", p, "cuda").evaluate(TINY_SPACE.min_arch())
    assert abs(cpu["top1"] - gpu["top1"]) <= 100.0 / cpu["samples"] + 1e-9  # at most one image flips


def test_nccl_with_one_rank_under_torchrun(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(_train_config().model_dump_json())  # JSON is YAML
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "1", "--master_port",
                        "29731", "-m", "attentivenas", "train", "--config", str(cfg), "--out", str(tmp_path / "run")],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    head = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
    assert head.get("world_size") == 1 and head.get("device", "").startswith("cuda")
