"""Test helpers: checkpoints in the authors' layout, and an independent functional re-statement of
the authors' forward pass (operating on their raw state dict) to compare our subnets against."""

from __future__ import annotations

import ast
import sys
import types
from pathlib import Path

import torch
import torch.nn.functional as F

KEYS_TSV = Path(__file__).resolve().parent / "data" / "official_supernet_keys.tsv"  # copied from the reference
_DTYPES = {"float32": torch.float32, "int64": torch.int64}


def official_keys() -> list[tuple[str, tuple[int, ...], str, str]]:
    rows = []
    for line in KEYS_TSV.read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        key, shape, dtype, kind = line.split("\t")
        rows.append((key, tuple(ast.literal_eval(shape)), dtype, kind))
    return rows


def random_authors_state(rows, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights and BN statistics for every key, prefixed ``module.``."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape, dtype, _kind in rows:
        if dtype == "int64":
            t = torch.zeros(shape, dtype=torch.int64)
        elif key.endswith("running_var"):
            t = torch.rand(shape, generator=g) * 0.5 + 0.75
        elif key.endswith("running_mean"):
            t = torch.randn(shape, generator=g) * 0.1
        elif key.endswith("bn.weight"):
            t = torch.rand(shape, generator=g) * 0.5 + 0.75
        elif key.endswith(".bias"):
            t = torch.randn(shape, generator=g) * 0.05
        else:
            fan_in = max(1, int(torch.tensor(shape[1:]).prod().item())) if len(shape) > 1 else 1
            t = torch.randn(shape, generator=g) * (1.0 / fan_in) ** 0.5
        state["module." + key] = t
    return state


#: ``args`` entries of the authors' two training configs that tell them apart
ATTENTIVENAS_ARGS = {"exp_name": "attentive_nas_dynamic_model_bestup3"}  # configs/train_attentive_nas_models.yml
ALPHANET_ARGS = {"exp_name": "alphanet", "alpha_min": -1.0, "alpha_max": 1.0, "iw_clip": 5.0}  # train_alphanet_models.yml


def save_authors_checkpoint(path: Path, state: dict[str, torch.Tensor], supernet_config: dict | None = None,
                            args: dict | None = None) -> None:
    """Save like the authors' saver: legacy serialisation, ``args`` an ``utils.config.AttrDict`` (with the
    entries of ``args`` added, e.g. :data:`ALPHANET_ARGS`)."""
    utils = types.ModuleType("utils")
    config = types.ModuleType("utils.config")

    class AttrDict(dict):
        pass

    AttrDict.__module__ = "utils.config"
    AttrDict.__qualname__ = "AttrDict"
    config.AttrDict = AttrDict
    utils.config = config
    saved = {k: sys.modules.get(k) for k in ("utils", "utils.config")}
    sys.modules["utils"], sys.modules["utils.config"] = utils, config
    try:
        saved_args = AttrDict(arch="attentive_nas_dynamic_model", n_classes=1000, epochs=360, **(args or {}))
        if supernet_config is not None:
            saved_args["supernet_config"] = AttrDict(supernet_config)
        ckpt = {"epoch": 359, "args": saved_args, "state_dict": state, "optimizer": {"state": {}, "param_groups": []},
                "lr_scheduler": {"last_epoch": 10}}
        torch.save(ckpt, path, _use_new_zipfile_serialization=False)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


def save_small_authors_checkpoint(path: Path, space, num_classes: int, args: dict | None = None, seed: int = 0) -> Path:
    """A checkpoint in the authors' layout for a small space (its ``supernet_config`` in ``args``): the
    weights of a fresh :class:`~attentivenas.nn.Supernet`, keys prefixed ``module.``."""
    from attentivenas.nn import Supernet

    torch.manual_seed(seed)
    state = {"module." + k: v for k, v in Supernet(space, num_classes).state_dict().items()}
    save_authors_checkpoint(path, state, supernet_config=space.to_supernet_config(), args=args)
    return path


def _make_div(v: float, d: int = 8) -> int:
    new_v = max(1, int(v + d / 2) // d * d)
    return new_v + d if new_v < 0.9 * v else new_v


def reference_forward(state: dict[str, torch.Tensor], cfg: dict, x: torch.Tensor, stage_depths: list[int],
                      stage_strides: list[int], stage_se: list[bool], stage_has_expand: list[bool],
                      eps: float = 1e-5) -> torch.Tensor:
    """The authors' subnet forward in eval mode, re-stated with functional ops on their raw state dict."""
    s = {k[len("module."):]: v for k, v in state.items()}

    def bn(y, prefix):
        c = y.size(1)
        return F.batch_norm(y, s[prefix + ".running_mean"][:c], s[prefix + ".running_var"][:c],
                            s[prefix + ".weight"][:c], s[prefix + ".bias"][:c], False, 0.0, eps)

    def swish(y):
        return y * torch.sigmoid(y)

    r = cfg["resolution"]
    if x.size(-1) != r:
        x = F.interpolate(x, size=r, mode="bicubic")
    w = s["first_conv.conv.conv.weight"][: cfg["width"][0], :3]
    x = swish(bn(F.conv2d(x, w, None, 2, 1), "first_conv.bn.bn"))
    idx0 = 0
    for st, depth in enumerate(cfg["depth"]):
        c_out, k, t = cfg["width"][st + 1], cfg["kernel_size"][st], cfg["expand_ratio"][st]
        for j in range(depth):
            p = f"blocks.{idx0 + j}"
            stride = stage_strides[st] if j == 0 else 1
            c_in = x.size(1)
            inp = x
            if stage_has_expand[st]:
                mid = _make_div(round(c_in * t), 8)
                w = s[p + ".mobile_inverted_conv.inverted_bottleneck.conv.conv.weight"][:mid, :c_in]
                x = swish(bn(F.conv2d(x, w), p + ".mobile_inverted_conv.inverted_bottleneck.bn.bn"))
            mid = x.size(1)
            full = s[p + ".mobile_inverted_conv.depth_conv.conv.conv.weight"]
            kmax = full.size(-1)
            a = kmax // 2 - k // 2
            w = full[:mid, :, a : a + k, a : a + k].contiguous()
            x = swish(bn(F.conv2d(x, w, None, stride, k // 2, 1, mid), p + ".mobile_inverted_conv.depth_conv.bn.bn"))
            if stage_se[st]:
                se = _make_div(mid // 4, 8)
                q = p + ".mobile_inverted_conv.depth_conv.se.fc"
                y = x.mean(3, keepdim=True).mean(2, keepdim=True)
                y = F.relu(F.conv2d(y, s[q + ".reduce.weight"][:se, :mid], s[q + ".reduce.bias"][:se]))
                y = F.conv2d(y, s[q + ".expand.weight"][:mid, :se], s[q + ".expand.bias"][:mid])
                x = x * (F.relu6(y + 3.0) / 6.0)
            w = s[p + ".mobile_inverted_conv.point_linear.conv.conv.weight"][:c_out, :mid]
            x = bn(F.conv2d(x, w), p + ".mobile_inverted_conv.point_linear.bn.bn")
            sc = inp
            if not (c_in == c_out and stride == 1):
                if stride > 1:
                    sc = F.avg_pool2d(sc, stride, padding=0 if sc.size(-1) % 2 == 0 else 1)
                if c_in != c_out:
                    sc = F.conv2d(sc, s[p + ".shortcut.conv.conv.weight"][:c_out, :c_in])
            x = x + sc
        idx0 += stage_depths[st]
    c = x.size(1)
    w = s["last_conv.final_expand_layer.conv.conv.weight"][: 6 * c, :c]
    x = swish(bn(F.conv2d(x, w), "last_conv.final_expand_layer.bn.bn"))
    x = F.adaptive_avg_pool2d(x, 1)
    w = s["last_conv.feature_mix_layer.conv.conv.weight"][: cfg["width"][-1], : x.size(1)]
    x = swish(F.conv2d(x, w))
    x = x.mean(3, keepdim=True).mean(2, keepdim=True).flatten(1)
    return F.linear(x, s["classifier.linear.linear.weight"][:, : x.size(1)], s["classifier.linear.linear.bias"])
