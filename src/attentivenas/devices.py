"""Which device a process computes on: ``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``."""

from __future__ import annotations

import platform
from pathlib import Path

import torch

from .errors import ConfigError, UserError


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None``/``"auto"`` -> CUDA when present, else CPU; an unavailable CUDA device is a user error."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise UserError(f"unknown device {device!r}; use cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {device!r} requested but CUDA is not available here; use --device cpu")
    if dev.type not in ("cpu", "cuda"):
        raise UserError(f"unsupported device {device!r}; use cpu, cuda or cuda:N")
    return dev


def rank_device(preference: str, local_rank: int = 0) -> torch.device:
    """The device of one process of a job: ``cpu``, or CUDA (one GPU per local rank) for ``auto``
    and ``cuda`` when present; ``cuda`` without a GPU is a user error naming ``runtime.device``."""
    if preference == "cpu":
        return torch.device("cpu")
    if preference == "cuda" and not torch.cuda.is_available():
        raise ConfigError("runtime.device=cuda but no CUDA device is available; use runtime.device=auto or cpu")
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def device_name(device: str | torch.device) -> str:
    """A human-readable name of the device (GPU model or CPU model)."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def use_channels_last(setting: bool | str, device: torch.device) -> bool:
    """``runtime.channels_last``: ``auto`` means channels-last memory on CPU, where it measurably pays
    (oneDNN's depthwise convolutions are several times faster in it; see docs/training.md)."""
    return device.type == "cpu" if setting == "auto" else bool(setting)
