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

A fine-tuned subnet (``attentivenas finetune``) is our layout with ``"kind": "subnet"``, the static
subnet's state dict as ``model``, its ``arch``, ``space`` and ``num_classes``, and its ``parent`` (the
supernet's path and kind). :func:`load_subnet_checkpoint` reads it into a :class:`SubnetHost` (a
supernet's interface over the one subnet); :func:`load_checkpoint_model` reads either kind
(``evaluate``, ``export``); :func:`load_supernet` and :func:`supernet_weights` refuse it with one line.
"""

from __future__ import annotations

import copy
import hashlib
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError, UserError
from ..io import atomic_torch_save
from ..space import ATTENTIVENAS_SPACE, Arch, SearchSpace, get_space
from .static import StaticSubnet
from .supernet import Supernet

FORMAT = "attentivenas"
VERSION = 1
_AUTHORS_ARGS_CLASS = "utils.config.AttrDict"
#: keys only AlphaNet's training config sets (its alpha-divergence: configs/train_alphanet_models.yml)
_ALPHANET_ARGS = ("alpha_min", "alpha_max", "iw_clip")
SUBNET_KIND = "subnet"  #: ``kind`` of a fine-tuned subnet checkpoint (:func:`load_subnet_checkpoint`)
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


def is_subnet_checkpoint(obj: Any) -> bool:
    """Whether ``obj`` is one of our fine-tuned subnet checkpoints (``"kind": "subnet"``)."""
    return is_ours(obj) and obj.get("kind") == SUBNET_KIND


def _refuse_subnet(obj: Any, path: str | Path, what: str) -> None:
    if is_subnet_checkpoint(obj):
        raise CheckpointError(f"checkpoint {path} is a fine-tuned subnet (`attentivenas finetune`), not a supernet; "
                              f"{what} needs a supernet checkpoint (evaluate and export take this one)")


def supernet_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], SearchSpace, dict[str, Any]]:
    """The tensors of a supernet checkpoint (ours or the authors') in our key names, the space it
    stores (the authors': the ``supernet_config`` of their ``args``, else the AttentiveNAS space) and
    its metadata (``kind``: ``ours``, ``attentivenas`` or ``alphanet``; ``num_classes``), without
    building a network: what ``train ... init_from=CKPT`` reads."""
    obj = read_checkpoint(path)
    _refuse_subnet(obj, path, "init_from")
    if is_ours(obj):
        try:
            sp = SearchSpace.from_dict(obj["space"])
            state = dict(obj["model"])
            meta = {"kind": "ours", "num_classes": int(obj["num_classes"])}
        except (KeyError, TypeError) as exc:
            raise CheckpointError(f"checkpoint {path} is missing the entry {exc}") from None
    elif is_authors(obj):
        state = authors_state_dict(obj["state_dict"])
        sp = _space_from_authors_args(obj.get("args")) or ATTENTIVENAS_SPACE
        cls_w = state.get("classifier.linear.linear.weight")
        meta = {"kind": authors_kind(obj.get("args")),
                "num_classes": int(cls_w.shape[0]) if isinstance(cls_w, torch.Tensor) and cls_w.dim() == 2 else None}
    else:
        raise CheckpointError(
            f"checkpoint {path} is neither an attentivenas checkpoint nor one of the authors' (no 'format' or "
            "'state_dict' entry)"
        )
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"checkpoint {path}: entry {bad[0]!r} is not a tensor")
    return state, sp, meta


def load_supernet(path: str | Path, space: str | SearchSpace | None = None,
                  device: str | torch.device = "cpu") -> tuple[Supernet, dict[str, Any]]:
    """Load a supernet from our checkpoint or one released by the authors.

    ``space`` overrides the space stored in the checkpoint (ours) or the default (authors':
    the ``supernet_config`` in their ``args`` when present, else the AttentiveNAS space).
    Returns the network (eval mode) and the checkpoint's metadata (everything but the weights; its
    ``kind`` is ``ours``, ``attentivenas`` or ``alphanet``).
    """
    return _supernet_from(read_checkpoint(path), path, space, device)


def _supernet_from(obj: Any, path: str | Path, space: str | SearchSpace | None,
                   device: str | torch.device) -> tuple[Supernet, dict[str, Any]]:
    """:func:`load_supernet` of a checkpoint already read."""
    _refuse_subnet(obj, path, "this command")
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


# --------------------------------------------------------------------------- fine-tuned subnets
class SubnetHost(torch.nn.Module):
    """A fine-tuned subnet where a supernet is expected (``evaluate``, ``export``): it has the
    supernet's ``space``, ``num_classes`` and ``arch``, and :meth:`extract` gives a copy of the one
    subnet it holds (any other arch is refused). ``forward`` runs the subnet."""

    def __init__(self, subnet: StaticSubnet, path: str | Path = "checkpoint") -> None:
        super().__init__()
        self.subnet = subnet
        self.space = subnet.space
        self.num_classes = subnet.num_classes
        self.path = str(path)

    @property
    def arch(self) -> Arch:
        return self.subnet.arch

    def set_arch(self, arch: Arch) -> None:
        """Only the stored arch can be active."""
        self.check_arch(arch)

    def check_arch(self, arch: Arch) -> None:
        """:class:`CheckpointError` unless ``arch`` is the stored one."""
        if arch.to_dict() != self.arch.to_dict():
            raise CheckpointError(f"checkpoint {self.path} holds the fine-tuned subnet {self.arch.to_json()}, not "
                                  f"{arch.to_json()}; leave --arch out or pass that arch")

    @torch.no_grad()
    def extract(self, arch: Arch | None = None) -> StaticSubnet:
        """A copy of the stored subnet (``arch`` must be it), in this module's train/eval mode."""
        if arch is not None:
            self.check_arch(arch)
        sub = copy.deepcopy(self.subnet)
        sub.train(self.training)
        return sub

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.subnet(x)


def subnet_payload(sub: StaticSubnet) -> dict[str, Any]:
    """The model part of a fine-tuned subnet checkpoint: format, ``kind: subnet``, space, arch, classes
    and the static subnet's state dict (extend it with training state)."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "kind": SUBNET_KIND,
        "space": sub.space.to_dict(),
        "arch": sub.arch.to_dict(),
        "num_classes": int(sub.num_classes),
        "model": {k: v.detach().cpu().contiguous() for k, v in sub.state_dict().items()},  # one layout on disk
    }


def load_subnet_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[SubnetHost, dict[str, Any]]:
    """Load a fine-tuned subnet checkpoint (``attentivenas finetune``): the stored static subnet in a
    :class:`SubnetHost` (eval mode) and the metadata (everything but the weights; ``kind`` is the kind
    of the supernet it came from, so it is measured as that supernet's subnets are)."""
    obj = read_checkpoint(path)
    if not is_subnet_checkpoint(obj):
        raise CheckpointError(f"checkpoint {path} is not a fine-tuned subnet checkpoint")
    return _subnet_from(obj, path, device)


def _subnet_from(obj: Mapping[str, Any], path: str | Path,
                 device: str | torch.device) -> tuple[SubnetHost, dict[str, Any]]:
    if obj.get("version", 0) > VERSION:
        raise CheckpointError(f"checkpoint {path} has format version {obj['version']}; this release reads up to "
                              f"{VERSION}")
    try:
        sp = SearchSpace.from_dict(obj["space"])
        arch = Arch.from_dict(obj["arch"])
        sub = StaticSubnet(sp, arch, int(obj["num_classes"]))
        state = obj["model"]
    except (KeyError, TypeError) as exc:
        raise CheckpointError(f"checkpoint {path} is missing the entry {exc}") from None
    except UserError as exc:
        raise CheckpointError(f"checkpoint {path}: {exc}") from None
    try:
        sub.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError) as exc:
        raise CheckpointError(f"checkpoint {path}: its weights do not fit its arch: "
                              f"{str(exc).splitlines()[0]}") from None
    meta = {k: v for k, v in obj.items() if k != "model"}
    parent = obj.get("parent") if isinstance(obj.get("parent"), Mapping) else {}
    meta["kind"] = parent.get("kind", "ours")
    meta["source"] = parent.get("source", "attentivenas")
    meta["subnet"] = True
    host = SubnetHost(sub, path).to(device).eval()
    return host, meta


def load_checkpoint_model(path: str | Path, space: str | SearchSpace | None = None,
                          device: str | torch.device = "cpu") -> tuple[Supernet | SubnetHost, dict[str, Any]]:
    """A supernet (:func:`load_supernet`) or a fine-tuned subnet (:func:`load_subnet_checkpoint`, whose
    ``meta["subnet"]`` is True), whichever ``path`` holds: what ``evaluate`` and ``export`` take.
    ``space`` applies to supernets; a subnet carries its own (a different one is refused)."""
    obj = read_checkpoint(path)
    if is_subnet_checkpoint(obj):
        host, meta = _subnet_from(obj, path, device)
        if space is not None and not get_space(space).same_as(host.space):
            raise CheckpointError(f"checkpoint {path} is a subnet of space '{host.space.name}', not of --space {space}")
        return host, meta
    return _supernet_from(obj, path, space, device)


def checkpoint_classes(path: Path) -> tuple[SearchSpace, int | None]:
    """The space and classifier class count a checkpoint stores (a supernet, ours or the authors', or a
    fine-tuned subnet): what ``flops --checkpoint`` reads."""
    obj = read_checkpoint(path)
    if is_subnet_checkpoint(obj):
        try:
            return SearchSpace.from_dict(obj["space"]), int(obj["num_classes"])
        except (KeyError, TypeError, ValueError) as exc:
            raise UserError(f"--checkpoint {path}: the subnet checkpoint has no valid entry {exc}") from None
    _, sp, meta = supernet_weights(path)
    n = meta.get("num_classes")
    return sp, int(n) if n is not None else None
