"""Two CPU processes with gloo: the same subnets on every rank, identical weights afterwards,
one gradient all-reduce per step, and only rank 0 writing files."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.multiprocessing as mp

from attentivenas.config import parse_config
from attentivenas.train.state import read_training_checkpoint

WORLD = 2


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config() -> Any:
    return parse_config({
        "seed": 0,
        "space": "tiny",
        "data": {"name": "digits", "image_size": 32, "batch_size": 8, "eval_batch_size": 64},
        "optim": {"epochs": 1, "warmup_epochs": 0.5, "lr": 0.4},
        "sampler": {"method": "bestup", "k": 3, "num_middle": 2, "bin_width": 0.25, "prior_samples": 2000,
                    "estimator": "loss"},
        "eval": {"calibration_batches": 1, "max_batches": 1},
        "checkpoint": {"every_steps": 2, "keep_last": 5},
        "runtime": {"device": "cpu", "threads": 1, "steps_per_epoch": 3},
        "log": {"progress": False, "tensorboard": False, "every_steps": 1},
    })


def _worker(rank: int, port: int, out_dir: str, result_dir: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(WORLD),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    import torch.distributed as dist

    from attentivenas.train import train
    from attentivenas.train.distributed import all_reduce_grads, init_distributed

    info = init_distributed("cpu", timeout_s=120)
    assert info.world_size == WORLD and info.rank == rank and dist.get_backend() == "gloo"
    # one flat all-reduce averages grads; a grad present on one rank only is zero elsewhere
    a, b, c = (torch.nn.Parameter(torch.zeros(n)) for n in (3, 2, 1))
    a.grad = torch.full((3,), float(rank + 1))
    b.grad = torch.full((2,), 4.0) if rank == 1 else None
    all_reduce_grads([a, b, c])
    grads = {"a": a.grad.clone(), "b": b.grad.clone(), "c_is_none": c.grad is None}

    trace: list[dict[str, Any]] = []

    def on_step(step: int, result: Any) -> None:
        trace.append({"step": step, "archs": [x.to_dict() for x in result.archs], "losses": result.losses})

    res = train(_config(), out_dir, on_step=on_step)  # joins the existing group, leaves it open
    state = {k: v.detach().clone() for k, v in res.model.state_dict().items()}
    torch.save({"state": state, "grads": grads, "status": res.status, "eval": res.final_eval},
               Path(result_dir) / f"rank{rank}.pt")
    (Path(result_dir) / f"rank{rank}.jsonl").write_text("".join(json.dumps(t) + "\n" for t in trace))
    dist.destroy_process_group()


def test_two_gloo_ranks_train_the_same_subnets_and_end_identical(tmp_path: Path) -> None:
    out, results = tmp_path / "run", tmp_path / "results"
    results.mkdir()
    ctx = mp.spawn(_worker, args=(_free_port(), str(out), str(results)), nprocs=WORLD, join=False)
    deadline = time.monotonic() + 240
    while not ctx.join(timeout=5):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail("distributed training did not finish in time")

    ranks = [torch.load(results / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]
    traces = [[json.loads(line) for line in (results / f"rank{r}.jsonl").read_text().splitlines()]
              for r in range(WORLD)]

    for r in ranks:
        assert torch.equal(r["grads"]["a"], torch.full((3,), 1.5))
        assert torch.equal(r["grads"]["b"], torch.full((2,), 2.0))
        assert r["grads"]["c_is_none"] and r["status"] == "completed"

    # every rank trained the same subnets with the same (all-reduced) losses, every step
    assert [t["step"] for t in traces[0]] == [1, 2, 3]
    assert traces[0] == traces[1]
    assert all(len(t["archs"]) == 4 for t in traces[0])

    # identical weights and buffers on both ranks, and in rank 0's checkpoint
    s0, s1 = ranks[0]["state"], ranks[1]["state"]
    assert s0.keys() == s1.keys()
    assert all(torch.equal(s0[k], s1[k]) for k in s0)
    ck = read_training_checkpoint(out / "checkpoints" / "last.pt")
    assert all(torch.equal(ck["model"][k], s0[k]) for k in s0)
    assert ck["progress"]["world_size"] == WORLD and ck["progress"]["global_step"] == 3
    assert len(ck["rng_ranks"]) == WORLD
    assert not torch.equal(ck["rng_ranks"][0]["torch"], ck["rng_ranks"][1]["torch"])  # per-rank dropout masks
    assert ranks[0]["eval"] == ranks[1]["eval"] and "max_top1" in ranks[0]["eval"]

    # only rank 0 wrote: one record per step
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["global_step"] for r in records if r["kind"] == "train"] == [1, 2, 3]
    assert next(r for r in records if r["kind"] == "start")["total_batch"] == 16
