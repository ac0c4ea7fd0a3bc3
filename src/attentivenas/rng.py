"""Random-number state as plain data, so checkpoints hold no pickled objects and resume exactly.

Two kinds: a numpy ``Generator`` owned by one component (the sampler, the prior), and the global
generators of python, numpy and torch (CPU and CUDA) that a training process uses.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch


def generator_state(rng: np.random.Generator) -> dict[str, Any]:
    """The state of a PCG64 generator as plain values (128-bit integers as decimal strings)."""
    st = rng.bit_generator.state
    if st.get("bit_generator") != "PCG64":
        raise TypeError(f"only PCG64 generators are supported, got {st.get('bit_generator')}")
    return {
        "bit_generator": "PCG64",
        "state": str(st["state"]["state"]),
        "inc": str(st["state"]["inc"]),
        "has_uint32": int(st["has_uint32"]),
        "uinteger": int(st["uinteger"]),
    }


def set_generator_state(rng: np.random.Generator, state: Mapping[str, Any]) -> None:
    """Restore a state written by :func:`generator_state`."""
    rng.bit_generator.state = {
        "bit_generator": "PCG64",
        "state": {"state": int(state["state"]), "inc": int(state["inc"])},
        "has_uint32": int(state["has_uint32"]),
        "uinteger": int(state["uinteger"]),
    }


def global_rng_state() -> dict[str, Any]:
    """States of the global generators of python, numpy and torch (CPU and every CUDA device)."""
    version, mt, gauss = random.getstate()
    np_state = np.random.get_state()
    return {
        "python": {"version": int(version), "state": torch.tensor(mt, dtype=torch.int64), "gauss": gauss},
        "numpy": {
            "kind": str(np_state[0]),
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
        "cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else [],
    }


def set_global_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what :func:`global_rng_state` returned."""
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"]))
    npst = state["numpy"]
    np.random.set_state((npst["kind"], npst["keys"].numpy().astype(np.uint32), npst["pos"], npst["has_gauss"],
                         npst["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def seed_everything(seed: int) -> None:
    """Seed the global generators of python, numpy and torch."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def mix_seed(*parts: int) -> int:
    """A 63-bit seed from several integers (a simple, stable hash)."""
    h = 0x9E3779B97F4A7C15
    for p in parts:
        h = (h ^ (int(p) & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 31
    return h & 0x7FFFFFFFFFFFFFFF


@contextlib.contextmanager
def seeded_cpu_rngs(seed: int) -> Iterator[None]:
    """Seed python's, numpy's and torch's (CPU) global generators for the block, then restore them.

    Augmentation libraries draw from all three (timm's AutoAugment from ``random`` and
    ``numpy.random``, torchvision's from torch), so a per-sample seed must cover them all.
    """
    py_state = random.getstate()
    np_state = np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)
