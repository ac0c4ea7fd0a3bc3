"""Standalone subnets: TorchScript export (ONNX and safetensors live in :mod:`export_formats`)."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import torch

from .io import atomic_write_bytes
from .supernet import StaticSubnet


def script_subnet(subnet: StaticSubnet) -> torch.jit.ScriptModule:
    """TorchScript of a static subnet in eval mode (the subnet itself is left unchanged)."""
    was_training = subnet.training
    subnet.eval()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated but still the portable format
            scripted = torch.jit.script(subnet)
    finally:
        subnet.train(was_training)
    return scripted


def export_torchscript(subnet: StaticSubnet, path: str | Path, check: bool = True) -> Path:
    """Write a TorchScript file loadable with ``torch.jit.load`` alone; checks its output against
    the eager subnet on a random input when ``check``."""
    scripted = script_subnet(subnet)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(scripted, buf)
        buf.seek(0)
        loaded = torch.jit.load(buf, map_location="cpu") if check else None
    if loaded is not None:
        p0 = next(subnet.parameters())
        x = torch.randn(2, 3, subnet.resolution, subnet.resolution, generator=torch.Generator().manual_seed(0))
        was_training = subnet.training
        subnet.eval()
        with torch.no_grad():
            ref = subnet(x.to(p0.device, p0.dtype)).float().cpu()
            out = loaded.to("cpu").float()(x)
        subnet.train(was_training)
        err = (out - ref).abs().max().item()
        if err > 1e-4 * max(1.0, ref.abs().max().item()):
            raise RuntimeError(f"TorchScript export differs from the eager model (max abs error {err:.3g})")
    return atomic_write_bytes(path, buf.getvalue())
