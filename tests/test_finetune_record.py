"""What a fine-tuning result records (issue 41): the seed, the supernet's sha256 and training config,
the data it used and the measurement and transforms actually applied (small images: no Resize 256 /
CenterCrop 224)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from attentivenas.nn import Supernet, save_supernet
from attentivenas.space import TINY_SPACE

from .cli_helpers import run_cli

QUICK = ["--data", "digits", "--calib-batches", "1", "--calib-batch-size", "32", "--max-images", "64",
         "--device", "cpu", "--threads", "1", "--epochs", "1", "--steps-per-epoch", "1", "--json"]


@pytest.fixture(scope="module")
def supernet_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("ftrec")
    return save_supernet(folder / "tiny.pt", Supernet(TINY_SPACE, 10),
                         extra={"config": {"data": {"name": "digits", "batch_size": 16}}})


def test_finetune_result_records_seed_checkpoint_config_and_the_pipeline_applied(supernet_ckpt: Path,
                                                                                 tmp_path: Path) -> None:
    r = run_cli("finetune", "--checkpoint", str(supernet_ckpt), "--arch", "min", "--init", "scratch",
                "--distill", "none", "--seed", "3", "--out", str(tmp_path / "ft"), *QUICK)
    assert r.code == 0, r.err
    res = json.loads(r.out)
    assert res["seed"] == 3 and res["init"] == "scratch"
    assert res["supernet_sha256"] == hashlib.sha256(supernet_ckpt.read_bytes()).hexdigest()
    assert res["supernet_config"]["data"] == {"name": "digits", "batch_size": 16}
    assert res["data"]["name"] == "digits" and res["data"]["image_size"] == 32
    pipe = res["data_pipeline"]
    assert set(pipe) == {"train", "eval", "calibration"}
    assert all("224" not in v and "256" not in v for v in pipe.values()), pipe
    assert "224" not in res["measure"] and "whole, at 32x32" in res["measure"], res["measure"]
    assert "1 x 32 training crops" in res["measure"]
