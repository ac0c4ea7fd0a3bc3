"""Reading and writing supernet checkpoints: ours and the authors' released ones.

Our layout (``torch.load(path, weights_only=True)`` reads it; only tensors, numbers, strings,
lists and dicts)::

    {
      "format": "attentivenas", "version": 1,
      "space": {"name": ..., "supernet_config": {...}},   # the authors' supernet_config encoding
      "num_classes": int,
      "bn": {"momentum": float | None, "eps": float},
      "model": {key: tensor},                             # the authors' key names, no "module."
      ...                                                  # training state (optimizer, sampler, RNG, ...)
    }

The authors' checkpoints are ``{"epoch", "args", "state_dict", "optimizer", "lr_scheduler"}`` with
``module.``-prefixed keys and unused ``bn_tracking`` buffers; ``args`` is their ``AttrDict`` (a
dict subclass), which we allow-list as a plain dict so that ``weights_only=True`` still holds.

The metadata :func:`load_supernet` returns names the checkpoint's ``kind``: ``ours``, or for the
authors' files ``attentivenas`` or ``alphanet`` (see :func:`authors_kind`), which stage 2 uses to
measure as their evaluation did.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError, UserError
from ..io import atomic_torch_save
from ..space import ATTENTIVENAS_SPACE, SearchSpace, get_space
from .supernet import Supernet

FORMAT = "attentivenas"
VERSION = 1
_AUTHORS_ARGS_CLASS = "utils.config.AttrDict"
#: keys only AlphaNet's training config sets (its alpha-divergence: configs/train_alphanet_models.yml)
_ALPHANET_ARGS = ("alpha_min", "alpha_max", "iw_clip")
CHECKSUM = "checksum"  #: sha256 of everything else in one of our checkpoints (tensors byte for byte)


def _feed(h: Any, obj: Any, where: str) -> None:
    """Hash ``obj`` into ``h`` in a canonical order (dict keys sorted, tensors as raw bytes)."""
    h.update(where.encode())
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())
    elif isinstance(obj, Mapping):
        for k in sorted(obj, key=str):
            if not (where == "" and k == CHECKSUM):
                _feed(h, obj[k], f"{where}/{k}")
    elif isinstance(obj, (list, tuple)):
        h.update(f"[{len(obj)}".encode())
        for i, v in enumerate(obj):
            _feed(h, v, f"{where}[{i}]")
    else:
        h.update(repr(obj).encode())


def payload_checksum(payload: Mapping[str, Any]) -> str:
    """The sha256 (hex) of a checkpoint payload, its own ``checksum`` entry left out."""
    h = hashlib.sha256()
    _feed(h, payload, "")
    return h.hexdigest()


def sealed(payload: dict[str, Any]) -> dict[str, Any]:
    """``payload`` with its checksum (see :func:`payload_checksum`), ready to be saved."""
    return {**payload, CHECKSUM: payload_checksum(payload)}


def _verify(obj: Any, path: Path) -> None:
    """A checkpoint of ours that carries a checksum must match it (older files carry none)."""
    if is_ours(obj) and CHECKSUM in obj and obj[CHECKSUM] != payload_checksum(obj):
        raise CheckpointError(f"checkpoint {path} is damaged: its contents do not match its checksum")


def read_checkpoint(path: str | Path) -> Any:
    """``torch.load(weights_only=True)`` of a user's file; every failure is one :class:`CheckpointError`
    line naming the file (missing, not a file, unsafe objects, corrupt)."""
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"checkpoint not found: {p}")
    if not p.is_file():
        raise CheckpointError(f"checkpoint is not a file: {p}")
    try:
        with torch.serialization.safe_globals([(dict, _AUTHORS_ARGS_CLASS)]):
            obj = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        unsafe = [ln.strip() for ln in text.splitlines() if "GLOBAL" in ln or "global" in ln.lower()]
        if not unsafe:  # not a forbidden object: bytes that are no pickle of ours
            raise CheckpointError(f"checkpoint {p} is corrupt or not a PyTorch checkpoint (UnpicklingError)") from None
        first = unsafe[0]
        raise CheckpointError(
            f"checkpoint {p} holds objects that cannot be loaded safely (weights_only=True): {first}"
        ) from None
    except Exception as exc:  # noqa: BLE001 - any failure to parse means a corrupt file
        raise CheckpointError(f"checkpoint {p} is corrupt or not a PyTorch checkpoint ({type(exc).__name__})") from None
    _verify(obj, p)
    return obj


def is_ours(obj: Any) -> bool:
    return isinstance(obj, Mapping) and obj.get("format") == FORMAT


def is_authors(obj: Any) -> bool:
    return isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping)


def authors_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The authors' state dict in our key names: ``module.`` stripped, ``bn_tracking`` dropped."""
    out = {}
    for k, v in state.items():
        key = k[len("module."):] if k.startswith("module.") else k
        if ".bn_tracking." in key:
            continue
        out[key] = v
    return out


def authors_kind(args: Any) -> str:
    """``alphanet`` or ``attentivenas``: which release an authors' checkpoint comes from, by its ``args``.

    Their saver stores the training config as ``args``: AlphaNet's sets ``exp_name: "alphanet"`` and
    the alpha-divergence keys (``alpha_min``, ``alpha_max``, ``iw_clip``); AttentiveNAS's sets
    ``exp_name: "attentive_nas_dynamic_model_bestup3"`` and none of them. Anything else reads as
    AttentiveNAS's.
    """
    if not isinstance(args, Mapping):
        return "attentivenas"
    if "alphanet" in str(args.get("exp_name") or "").lower() or any(k in args for k in _ALPHANET_ARGS):
        return "alphanet"
    return "attentivenas"


def _space_from_authors_args(args: Any) -> SearchSpace | None:
    if isinstance(args, Mapping) and isinstance(args.get("supernet_config"), Mapping):
        try:
            found = SearchSpace.from_supernet_config(args["supernet_config"], name="checkpoint")
        except UserError:
            return None
        return ATTENTIVENAS_SPACE if found.same_as(ATTENTIVENAS_SPACE) else found
    return None


def _load_state(net: Supernet, state: Mapping[str, torch.Tensor], path: str | Path) -> None:
    expected = net.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s), e.g. {missing[0]!r}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s), e.g. {unexpected[0]!r}")
        raise CheckpointError(
            f"checkpoint {path} does not match space '{net.space.name}': {'; '.join(parts)} "
            "(pass --space with the space it was trained on)"
        )
    for k, v in expected.items():
        if not isinstance(state[k], torch.Tensor):
            raise CheckpointError(f"checkpoint {path}: entry {k!r} is not a tensor")
        if tuple(state[k].shape) != tuple(v.shape):
            raise CheckpointError(
                f"checkpoint {path} does not match space '{net.space.name}': {k!r} has shape "
                f"{tuple(state[k].shape)}, the space needs {tuple(v.shape)} (pass --space with the space it was "
                "trained on)"
            )
    net.load_state_dict(state, strict=True)


def load_supernet(path: str | Path, space: str | SearchSpace | None = None,
                  device: str | torch.device = "cpu") -> tuple[Supernet, dict[str, Any]]:
    """Load a supernet from our checkpoint or one released by the authors.

    ``space`` overrides the space stored in the checkpoint (ours) or the default (authors':
    the ``supernet_config`` in their ``args`` when present, else the AttentiveNAS space).
    Returns the network (eval mode) and the checkpoint's metadata (everything but the weights; its
    ``kind`` is ``ours``, ``attentivenas`` or ``alphanet``).
    """
    obj = read_checkpoint(path)
    if is_ours(obj):
        if obj.get("version", 0) > VERSION:
            raise CheckpointError(f"checkpoint {path} has format version {obj['version']}; this release reads "
                                  f"up to {VERSION}")
        try:
            sp = get_space(space) if space is not None else SearchSpace.from_supernet_config(
                obj["space"]["supernet_config"], name=obj["space"].get("name", "checkpoint"))
            num_classes = int(obj["num_classes"])
            state = obj["model"]
        except (KeyError, TypeError) as exc:
            raise CheckpointError(f"checkpoint {path} is missing the entry {exc}") from None
        bn = obj.get("bn", {}) or {}
        net = Supernet(sp, num_classes, bn_momentum=bn.get("momentum", 0.1), bn_eps=bn.get("eps", 1e-5))
        _load_state(net, state, path)
        meta = {k: v for k, v in obj.items() if k != "model"}
        meta["source"] = "attentivenas"
        meta["kind"] = "ours"
    elif is_authors(obj):
        state = authors_state_dict(obj["state_dict"])
        if space is not None:
            sp = get_space(space)
        else:
            sp = _space_from_authors_args(obj.get("args")) or ATTENTIVENAS_SPACE
        cls_w = state.get("classifier.linear.linear.weight")
        if not isinstance(cls_w, torch.Tensor) or cls_w.dim() != 2:
            raise CheckpointError(f"checkpoint {path} has no classifier weight 'classifier.linear.linear.weight'")
        net = Supernet(sp, int(cls_w.shape[0]), bn_momentum=0.0, bn_eps=1e-5)
        _load_state(net, state, path)
        args = obj.get("args")
        exp_name = args.get("exp_name") if isinstance(args, Mapping) else None
        meta = {"source": "authors", "kind": authors_kind(args), "epoch": obj.get("epoch"),
                "exp_name": exp_name if isinstance(exp_name, str) else None}
    else:
        raise CheckpointError(
            f"checkpoint {path} is neither an attentivenas checkpoint nor one of the authors' (no 'format' or "
            "'state_dict' entry)"
        )
    net.to(device).eval()
    return net, meta


def supernet_payload(net: Supernet) -> dict[str, Any]:
    """The model part of our checkpoint layout (extend it with training state)."""
    bn = next(m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))
    return {
        "format": FORMAT,
        "version": VERSION,
        "space": net.space.to_dict(),
        "num_classes": net.num_classes,
        "bn": {"momentum": bn.momentum, "eps": bn.eps},
        "model": {k: v.detach().cpu() for k, v in net.state_dict().items()},
    }


def save_supernet(path: str | Path, net: Supernet, extra: Mapping[str, Any] | None = None) -> Path:
    """Write ``net`` (and ``extra`` entries) in our layout, atomically."""
    payload = supernet_payload(net)
    if extra:
        payload.update(extra)
    return atomic_torch_save(sealed(payload), path)
