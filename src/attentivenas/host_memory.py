"""Freed host memory kept for reuse: glibc's malloc settings for tensor-sized blocks on CPU.

glibc serves every block above its mmap threshold (at most 32 MiB) with a fresh ``mmap`` and hands
it back with ``munmap`` when it is freed. A training step at 224 on CPU allocates and frees hundreds
of activations that large, so each is a new mapping whose pages fault in, zeroed by the kernel, on
first touch: 0.8-1.6 million page faults per step of the ImageNet recipe at batch 16 (about 5 s of a
12 s step on this project's 2-core VM), and oneDNN's strided depthwise backward spent 430 ms of a
13 ms kernel on them. :func:`reuse_freed_memory` tells glibc to serve large blocks from its heap and
keep freed memory there (``M_MMAP_MAX = 0``, ``M_TRIM_THRESHOLD = 2 GiB``): later steps reuse the
same pages (3-190 thousand faults a step remain with glibc 2.36, whose ``posix_memalign`` passes over
some holes of the very size it freed). The price is that the process keeps its peak memory until it
exits. It is process-wide and cannot be undone; PyTorch's own tuning guide reaches the same end by
preloading jemalloc or tcmalloc, which needs the process to be started under them.

``auto`` (the default) applies it where the work runs on CPU; ``ATTENTIVENAS_REUSE_FREED_MEMORY=0``
(or ``1``) overrides ``auto`` for every command, and the training config's
``runtime.reuse_freed_memory: false`` turns it off for ``train``. Elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import os
import platform
from typing import Literal

import torch

from .errors import ConfigError

ENV_VAR = "ATTENTIVENAS_REUSE_FREED_MEMORY"
#: glibc's ``mallopt`` parameters (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
#: free memory at the top of the heap above this is given back to the system (the largest ``int``)
TRIM_THRESHOLD_BYTES = 2**31 - 1

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_in_effect = False

Setting = bool | Literal["auto"]


def supported() -> bool:
    """Whether this process runs on glibc (Linux), whose ``mallopt`` this module sets."""
    return platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def wanted(setting: Setting, device: str | torch.device) -> bool:
    """Whether ``setting`` asks for freed memory to be kept: ``auto`` on CPU devices (unless
    :data:`ENV_VAR` says otherwise), ``True`` / ``False`` as given."""
    if setting != "auto":
        return bool(setting)
    value = os.environ.get(ENV_VAR, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    if value:
        raise ConfigError(f"{ENV_VAR}={os.environ[ENV_VAR]!r}: use 1 or 0")
    return torch.device(device).type == "cpu"


def in_effect() -> bool:
    """Whether :func:`reuse_freed_memory` has changed this process's malloc settings."""
    return _in_effect


def reuse_freed_memory(setting: Setting = "auto", device: str | torch.device = "cpu", field: str = ENV_VAR) -> bool:
    """Keep freed host memory for reuse where ``setting`` asks for it (see the module docstring);
    returns whether the setting is in effect. ``True`` where glibc is absent is a user error naming
    ``field``; ``auto`` there does nothing. Applying it twice is harmless; ``False`` undoes nothing."""
    global _in_effect
    if _in_effect or not wanted(setting, device):
        return _in_effect
    if not supported():
        if setting is True:
            raise ConfigError(f"{field}=true needs glibc (Linux); this is {platform.system()} "
                              f"{platform.libc_ver()[0] or 'without glibc'}: use auto or false")
        return False
    libc = ctypes.CDLL("libc.so.6")
    if libc.mallopt(M_MMAP_MAX, 0) != 1 or libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) != 1:
        raise OSError("glibc refused the malloc settings (mallopt returned 0)")
    _in_effect = True
    return True
