"""Reading a subnet's weights back: :func:`load_pretrained`, the one loader of what ``export`` writes (a
bundle, or the weights folder of ``export --format safetensors``: ``model.safetensors`` + ``config.json``),
validating the config first (bounded sizes, the arch checked against the space the config stores, every
file against its sha256; one :class:`ExportError` line naming the file). Subnet files of the old format
(``X.safetensors`` + ``X.arch.json``) still load, with a warning naming the new one
(:func:`~attentivenas.export.subnet_files.read_old_subnet_file`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch.nn import functional as F

from ..config.bundle import WEIGHTS_NAME
from ..errors import UserError
from ..nn.layers import resize_input
from ..nn.static import StaticSubnet
from .bundle_check import (
    bundle_space_arch,
    check_costs,
    check_state,
    compare_with_weights,
    error_line,
    integer_in,
    read_bundle_config,
    verify_bundle_files,
)
from .formats import ExportError
from .subnet_files import read_old_subnet_file
from .weights import CONFIG_NAME


class BundledSubnet(StaticSubnet):
    """A bundle's model (:func:`load_pretrained`): a :class:`StaticSubnet` with its ``config`` and
    ``class_names``, and :meth:`preprocess` / :meth:`classify` for images as its data was prepared."""

    config: dict[str, Any]
    class_names: list[str] | None

    def preprocess(self, image: Any) -> torch.Tensor:
        """An image file (path) or PIL image as this model's input, ``3 x r x r`` float32 (see
        :func:`preprocess_image`)."""
        pre = self.config.get("preprocessing")
        if not isinstance(pre, Mapping):
            raise ExportError("this bundle records no preprocessing (written before attentivenas recorded it); "
                              "export it again to classify images directly")
        return preprocess_image(image, pre)

    @torch.inference_mode()
    def classify(self, images: Any, top_k: int = 1, batch_size: int = 64) -> list[dict[str, Any]]:
        """Labels and probabilities of image files or PIL images (one, or a list): per image
        ``{"label", "index", "probability"}`` of the most likely class, and with ``top_k`` > 1 ``"top"``: the
        ``top_k`` most likely as ``(label, probability)`` pairs."""
        if not integer_in(top_k, 1, self.num_classes) or not integer_in(batch_size, 1, 4096):
            raise UserError(f"top_k must be from 1 to {self.num_classes} and batch_size from 1 to 4096")
        items = [images] if isinstance(images, (str, Path)) or not isinstance(images, Iterable) else list(images)
        self.eval()
        device = next(self.parameters()).device
        out: list[dict[str, Any]] = []
        for i in range(0, len(items), batch_size):
            x = torch.stack([self.preprocess(im) for im in items[i:i + batch_size]]).to(device)
            probs = torch.softmax(self(x).float(), dim=1).cpu()
            values, indices = probs.topk(top_k, dim=1)
            for vals, idx in zip(values.tolist(), indices.tolist(), strict=True):
                entry: dict[str, Any] = {"label": self._label(idx[0]), "index": idx[0], "probability": vals[0]}
                if top_k > 1:
                    entry["top"] = [(self._label(j), p) for j, p in zip(idx, vals, strict=True)]
                out.append(entry)
        return out

    def _label(self, index: int) -> str:
        return self.class_names[index] if self.class_names else str(index)


def preprocess_image(image: Any, pre: Mapping[str, Any]) -> torch.Tensor:
    """An image file (path) or PIL image as a bundle's ``preprocessing`` (:func:`preprocessing_of`) says:
    converted to its colour (grey images become RGB and colour ones grey as the model was trained),
    resized (and centre-cropped) as the training data's evaluation was, scaled to [0, 1], normalised and
    resized to the model's resolution; ``3 x r x r`` float32."""
    from PIL import Image, UnidentifiedImageError  # heavy: Pillow only when images are classified

    if isinstance(image, (str, Path)):
        try:
            with Image.open(image) as im:
                img = im.convert("L" if pre["source"]["color"] == "grayscale" else "RGB")
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            raise UserError(f"cannot read image {image}: {error_line(exc)}") from None
    elif isinstance(image, Image.Image):
        img = image.convert("L" if pre["source"]["color"] == "grayscale" else "RGB")
    else:
        raise UserError(f"preprocess takes an image file path or a PIL image, not {type(image).__name__}")
    rs = pre["resize"]
    if rs["mode"] == "shorter_side":
        from torchvision.transforms import InterpolationMode  # heavy
        from torchvision.transforms import functional as TF  # heavy: as the training data's transform

        mode = InterpolationMode.BICUBIC if rs["interpolation"] == "bicubic" else InterpolationMode.BILINEAR
        img = TF.center_crop(TF.resize(img, int(rs["size"]), interpolation=mode), int(pre["crop"]))
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0)
    x = x[None] if x.ndim == 2 else x.permute(2, 0, 1)
    if rs["mode"] == "whole_image" and tuple(x.shape[1:]) != (rs["size"], rs["size"]):
        x = F.interpolate(x[None], size=(int(rs["size"]),) * 2, mode=rs["interpolation"], align_corners=False)[0]
    x = x.expand(3, -1, -1)
    mean = torch.tensor(pre["mean"], dtype=torch.float32)[:, None, None]
    std = torch.tensor(pre["std"], dtype=torch.float32)[:, None, None]
    x = (x - mean) / std
    return resize_input(x[None], int(pre["model_input"]["size"]))[0].contiguous()


def load_pretrained(folder: str | Path, device: str | torch.device = "cpu") -> BundledSubnet:
    """The model of a bundle folder or of ``export --format safetensors``'s folder (a :class:`BundledSubnet`,
    eval mode, on ``device``; ``folder`` may also name its ``model.safetensors``), built from its
    ``config.json`` and ``model.safetensors`` alone (no supernet, no pickle), after checking that

    * every descriptive field of ``config.json`` is well formed (:func:`read_bundle_config`: normalisation
      finite with positive std, interpolation, preprocessing, files, accuracy and latency entries) and its
      MFLOPs, params and resolution are the arch's (validated against the space it stores);
    * every file it lists exists with the sha256 it records (a swapped runtime file is refused);
    * ``model.safetensors`` records the same space, arch, resolution and class count, and its tensors are
      float32 (BN counters integer), finite, with BN variances >= 0, every one present with its shape.

    Any mismatch is one :class:`ExportError` line naming the file and the field. Edits that do not
    change the model (e.g. class names) load. A subnet file of the old format (``X.safetensors`` beside
    ``X.arch.json``) loads with a :class:`FutureWarning` naming the new format."""
    root = Path(folder)
    if root.is_file() and root.name == WEIGHTS_NAME and (root.parent / CONFIG_NAME).is_file():
        root = root.parent
    elif root.is_file():
        old = read_old_subnet_file(root)
        model = BundledSubnet(old.space, old.arch, int(old.num_classes))
        model.load_state_dict(old.state_dict(), strict=True)
        model.class_names, model.config = None, {}
        return model.to(device).eval()
    cfg = read_bundle_config(root)
    space, arch = bundle_space_arch(cfg, root / CONFIG_NAME)
    weights = root / WEIGHTS_NAME
    if not weights.is_file():
        raise ExportError(f"{weights} not found: the bundle has no weights")
    compare_with_weights(cfg, space, arch, weights)
    check_costs(cfg, space, arch, root / CONFIG_NAME)
    verify_bundle_files(root, cfg)
    try:
        state = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ExportError(f"{weights} is not a valid safetensors file ({error_line(exc)})") from None
    check_state(state, weights)
    model = BundledSubnet(space, arch, int(cfg["num_classes"]))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ExportError(f"{weights}: weights do not match the arch of {CONFIG_NAME}: {error_line(exc)}") from None
    model.class_names = cfg.get("class_names")
    model.config = cfg
    return model.to(device).eval()


def load_safetensors_subnet(path: str | Path, device: str | torch.device = "cpu") -> BundledSubnet:
    """The earlier name of :func:`load_pretrained` (the same loader)."""
    return load_pretrained(path, device)


__all__ = ["BundledSubnet", "load_pretrained", "load_safetensors_subnet", "preprocess_image"]
