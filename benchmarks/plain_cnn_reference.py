"""A plain CNN trained alone on a supernet config's data and budget: the reference a supernet's
subnets are judged against (``docs/training.md``, "Small images").

The CNN (five 3x3/1x1 conv-BN-ReLU layers, global pooling, a linear classifier; 3.85 M
multiply-accumulates at 28x28, the tiny space's range) sees exactly what ``train`` would feed the
supernet: the config's training images (``data.train_size`` included), its augmentation, batch size
and number of epochs, label smoothing, and the recipe's own optimiser, schedule and clipping
(:func:`attentivenas.train.optim.build_optimizer` and ``build_scheduler``, ``optim.grad_clip_value``).
It prints one JSON object: top-1 on the config's hold-out and test splits (the network's own BN
statistics, no recalibration), train seconds, MACs, parameters, the seed, the data config and the
transforms applied.

    python benchmarks/plain_cnn_reference.py --config configs/fashion_mnist.yaml data.train_size=10000 optim.epochs=4
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from attentivenas.config import load_config
from attentivenas.data import batches_per_epoch, build_data, describe_pipeline, eval_loader, train_loader
from attentivenas.train.optim import build_optimizer, build_scheduler


def plain_cnn(in_channels: int, num_classes: int) -> nn.Sequential:
    """conv 3x3 16 -> 32 s2 -> 64 s2 -> 128 s2 -> 1x1 256, each with BN and ReLU; pool; linear."""
    def block(cin: int, cout: int, k: int, s: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, k, s, k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
    return nn.Sequential(*block(in_channels, 16, 3, 1), *block(16, 32, 3, 2), *block(32, 64, 3, 2),
                         *block(64, 128, 3, 2), *block(128, 256, 1, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(256, num_classes))


def macs(model: nn.Module, shape: tuple[int, ...]) -> float:
    """Multiply-accumulates of one image, in millions."""
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model.eval()(torch.zeros(1, *shape))
    return counter.get_total_flops() / 2e6


@torch.no_grad()
def top1(model: nn.Module, dataset, batch_size: int) -> float:
    model.eval()
    correct = total = 0
    for x, y in eval_loader(dataset, batch_size):
        correct += int((model(x).argmax(1) == y).sum())
        total += len(y)
    return 100.0 * correct / total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("overrides", nargs="*", help="dotted key=value, as train takes")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(args.config, args.overrides)
    torch.manual_seed(cfg.seed)
    data = build_data(cfg.data, cfg.seed)
    x0, _ = data.train[0]
    model = plain_cnn(x0.shape[0], data.num_classes)
    mmacs = macs(model, tuple(x0.shape))
    params = sum(p.numel() for p in model.parameters())
    batch = cfg.data.batch_size
    opt = build_optimizer(model, cfg.optim, batch)
    schedule = build_scheduler(opt, cfg.optim, batches_per_epoch(len(data.train), batch))
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.loss.label_smoothing)
    t0 = time.perf_counter()
    for epoch in range(cfg.optim.epochs):
        model.train()
        for x, y in train_loader(data.train, batch, cfg.seed, epoch):
            opt.zero_grad(set_to_none=True)
            loss_fn(model(x), y).backward()
            if cfg.optim.grad_clip_value is not None:
                nn.utils.clip_grad_value_(model.parameters(), cfg.optim.grad_clip_value)
            opt.step()
            schedule.step()
    train_s = time.perf_counter() - t0
    print(json.dumps({"model": "plain CNN", "mmacs": round(mmacs, 2), "params": params,
                      "train_images": len(data.train), "epochs": cfg.optim.epochs, "batch": batch,
                      "train_s": round(train_s, 1), "threads": args.threads, "seed": cfg.seed,
                      "data": cfg.data.model_dump(mode="json"), "data_pipeline": describe_pipeline(cfg.data),
                      "holdout_images": len(data.val),
                      "holdout_top1": round(top1(model, data.val, cfg.data.eval_batch_size), 2) if len(data.val) else None,
                      "test_top1": round(top1(model, data.test, cfg.data.eval_batch_size), 2)}))


if __name__ == "__main__":
    main()
