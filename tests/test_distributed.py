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


def _config(online: bool = False) -> Any:
    cfg = {
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
    }
    if online:  # uniform in epoch 1, then ranked by a predictor fitted after it
        cfg["optim"]["epochs"] = 2
        cfg["runtime"]["steps_per_epoch"] = 2
        cfg["eval"]["every_epochs"] = 0
        cfg["sampler"].update(estimator="online", online={
            "start_epoch": 1, "num_archs": 6, "folds": 2, "kinds": ["ridge"], "calibration_batches": 1,
            "max_batches": 1})
    return parse_config(cfg)


def _worker(rank: int, port: int, out_dir: str, result_dir: str, online: bool = False) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(WORLD),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    import torch.distributed as dist

    from attentivenas.distributed import init_distributed
    from attentivenas.train import train
    from attentivenas.train.distributed import all_reduce_grads

    info = init_distributed("cpu", timeout_s=120)
    assert info.world_size == WORLD and info.rank == rank and dist.get_backend() == "gloo"
    # one flat all-reduce averages grads; a grad present on one rank only is zero elsewhere
    a, b, c = (torch.nn.Parameter(torch.zeros(n)) for n in (3, 2, 1))
    a.grad = torch.full((3,), float(rank + 1))
    b.grad = torch.full((2,), 4.0) if rank == 1 else None
    all_reduce_grads([a, b, c])
    grads = {"a": a.grad.clone(), "b": b.grad.clone(), "c_is_none": c.grad is None}

    trace: list[dict[str, Any]] = []
    groups: list[list[list[dict[str, Any]]]] = []
    if online:  # record the candidate groups that BestUp chose from
        from attentivenas.train.sampling import ArchSampler

        real_choose = ArchSampler.choose

        def spy(self: Any, cands: Any, scores: Any = None) -> Any:
            if scores is not None:  # a scored choice (BestUp), not a uniform one
                groups.append([[a.to_dict() for a in g] for g in cands.archs(self.space)])
            return real_choose(self, cands, scores)

        ArchSampler.choose = spy  # type: ignore[method-assign]

    def on_step(step: int, result: Any) -> None:
        trace.append({"step": step, "archs": [x.to_dict() for x in result.archs], "losses": result.losses,
                      "groups": groups.pop() if groups else None})

    res = train(_config(online), out_dir, on_step=on_step)  # joins the existing group, leaves it open
    state = {k: v.detach().clone() for k, v in res.model.state_dict().items()}
    torch.save({"state": state, "grads": grads, "status": res.status, "eval": res.final_eval,
                "predictor": str(res.predictor)},
               Path(result_dir) / f"rank{rank}.pt")
    (Path(result_dir) / f"rank{rank}.jsonl").write_text("".join(json.dumps(t) + "\n" for t in trace))
    dist.destroy_process_group()


def _spawn(tmp_path: Path, online: bool = False) -> tuple[Path, list[dict[str, Any]], list[list[dict[str, Any]]]]:
    out, results = tmp_path / "run", tmp_path / "results"
    results.mkdir()
    ctx = mp.spawn(_worker, args=(_free_port(), str(out), str(results), online), nprocs=WORLD, join=False)
    deadline = time.monotonic() + 240
    while not ctx.join(timeout=5):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail("distributed training did not finish in time")
    ranks = [torch.load(results / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]
    traces = [[json.loads(line) for line in (results / f"rank{r}.jsonl").read_text().splitlines()]
              for r in range(WORLD)]
    return out, ranks, traces


def test_two_gloo_ranks_train_the_same_subnets_and_end_identical(tmp_path: Path) -> None:
    out, ranks, traces = _spawn(tmp_path)

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


@pytest.mark.slow
def test_two_gloo_ranks_share_one_online_predictor(tmp_path: Path) -> None:
    import numpy as np

    from attentivenas.accuracy import ArchDataset, load_predictor
    from attentivenas.space import TINY_SPACE, Arch

    out, ranks, traces = _spawn(tmp_path, online=True)
    assert [r["status"] for r in ranks] == ["completed", "completed"]
    assert ranks[0]["predictor"] == ranks[1]["predictor"] == str(out / "predictors" / "epoch_001.json")
    assert sorted(p.name for p in (out / "predictors").iterdir()) == ["archs_epoch_001.jsonl", "epoch_001.json"]
    # the same subnets on both ranks, uniform in epoch 1 and predictor-ranked in epoch 2
    assert [t["step"] for t in traces[0]] == [1, 2, 3, 4] and traces[0] == traces[1]
    s0, s1 = ranks[0]["state"], ranks[1]["state"]
    assert all(torch.equal(s0[k], s1[k]) for k in s0)
    # accuracies summed over both ranks' shards of the validation split (max_batches=1: 2 x 64 images)
    ds = ArchDataset.load(out / "predictors" / "archs_epoch_001.jsonl", TINY_SPACE)
    assert len(ds) == 6 and all(abs(r.accuracy * 128 / 100 - round(r.accuracy * 128 / 100)) < 1e-6 for r in ds)
    predictor = load_predictor(out / "predictors" / "epoch_001.json")
    assert [t["groups"] is None for t in traces[0]] == [True, True, False, False]
    for t in traces[0][2:]:  # epoch 2: each middle subnet is the predicted best of its 3 candidates
        for group, arch in zip(t["groups"], t["archs"][1:3], strict=True):
            cands = [Arch.from_dict(a) for a in group]
            assert len(cands) == 3 and arch == cands[int(np.argmax(predictor.predict_archs(cands)))].to_dict()
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if r["kind"] == "predictor"] == [1]
