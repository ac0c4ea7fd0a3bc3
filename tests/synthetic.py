"""Synthetic test data shared by several test modules."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from attentivenas.latency import LatencyTable, space_signatures
from attentivenas.space import TINY_SPACE, SearchSpace

#: the tiny space with one choice per knob (its smallest): one arch (min = max), 32 op signatures at
#: 10 classes against the tiny space's 139, for tests that export or time every op of a space
MICRO_SPACE = replace(
    TINY_SPACE, name="micro", resolutions=TINY_SPACE.resolutions[:1], first_conv=TINY_SPACE.first_conv[:1],
    last_conv=TINY_SPACE.last_conv[:1],
    stages=tuple(replace(s, widths=s.widths[:1], depths=s.depths[:1], kernels=s.kernels[:1], expands=s.expands[:1])
                 for s in TINY_SPACE.stages))


def synthetic_latency_table(space: SearchSpace = TINY_SPACE, num_classes: int = 10, **kw: Any) -> LatencyTable:
    """A deterministic 'latency' of 1 ms per MMAC plus 0.01 ms per op, for every op of the space."""
    entries = {}
    for sig in space_signatures(space, num_classes):
        size_out = -(-sig.size_in // sig.stride)
        entries[sig.key()] = 0.01 + sig.c_in * sig.c_out * sig.kernel**2 * size_out**2 / 1e6
    cfg = json.loads(json.dumps(space.to_supernet_config()))
    return LatencyTable(space={"name": space.name, "supernet_config": cfg}, entries=entries, num_classes=num_classes,
                        **kw)


def config_with(data: dict[str, Any], **over: Any) -> Any:
    """A TrainConfig from ``data`` with ``section__key=value`` overrides (test shorthand)."""
    from attentivenas.config import parse_config

    for key, value in over.items():
        section, name = key.split("__")
        data.setdefault(section, {})[name] = value
    return parse_config(data)


def tamper_predictor(path: Path, tmp_path: Path, change: Callable[[dict], Any]) -> Path:
    """A copy of the predictor JSON at ``path`` (in ``tmp_path``) whose ``model`` went through ``change``."""
    data = json.loads(path.read_text())
    change(data["model"])
    out = tmp_path / f"bad_{path.name}"
    out.write_text(json.dumps(data))
    return out


def _shape(kind: int, size: int) -> Any:
    """One of 10 binary shapes on a ``size`` x ``size`` grid (a class of :func:`write_small_imagefolder`)."""
    import numpy as np

    s = size
    m = np.zeros((s, s), dtype=bool)
    a, b = s // 4, s - s // 4  # the shape's box
    c = s // 2
    yy, xx = np.mgrid[0:s, 0:s]
    if kind == 0:
        m[c - 1:c + 1, a:b] = True  # horizontal bar
    elif kind == 1:
        m[a:b, c - 1:c + 1] = True  # vertical bar
    elif kind == 2:
        m[c - 1:c + 1, a:b] = m[a:b, c - 1:c + 1] = True  # plus
    elif kind == 3:
        m[(abs(yy - xx) <= 1) & (yy >= a) & (yy < b)] = True  # diagonal
    elif kind == 4:
        m[(abs(yy + xx - s + 1) <= 1) & (yy >= a) & (yy < b)] = True  # anti-diagonal
    elif kind == 5:
        m[a:b, a:b] = True
        m[a + 2:b - 2, a + 2:b - 2] = False  # square outline
    elif kind == 6:
        m[a:b, a:b] = True  # filled square
    elif kind == 7:
        r = (yy - c) ** 2 + (xx - c) ** 2
        m[(r <= (s // 4) ** 2) & (r >= (s // 4 - 2) ** 2)] = True  # ring
    elif kind == 8:
        m[(yy >= a) & (yy < b) & (xx >= c - (yy - a) // 2) & (xx <= c + (yy - a) // 2)] = True  # triangle
    else:
        m[a:a + 3, a:a + 3] = m[b - 3:b, b - 3:b] = True  # two dots
    return m


def write_small_imagefolder(root: str | Path, n_train_per_class: int, n_val_per_class: int, size: int = 28,
                            seed: int = 0) -> Path:
    """A generated 10-class ImageFolder of small RGB PNGs: ``root/train/<class>/*.png`` and
    ``root/val/<class>/*.png`` (``n_*_per_class`` images each, ``size`` px). Each class is a shape
    (bar, cross, ring, ...) moved by up to a quarter of the image, in a random colour on a noisy
    background, so that position matters little and pixels alone are a weak guide (a linear model on
    the pixels: 58% on val/ at 100 images per class and 28 px, measured once). Every draw flows from
    ``seed``."""
    import numpy as np
    from PIL import Image

    root = Path(root)
    rng = np.random.default_rng(seed)
    shift = max(1, size // 4)
    for split, n in (("train", n_train_per_class), ("val", n_val_per_class)):
        for k in range(10):
            folder = root / split / f"class{k}"
            folder.mkdir(parents=True, exist_ok=True)
            base = _shape(k, size)
            for i in range(n):
                dy, dx = (int(v) for v in rng.integers(-shift, shift + 1, size=2))
                mask = np.roll(np.roll(base, dy, axis=0), dx, axis=1)
                colour = rng.uniform(0.5, 1.0, size=3)
                img = rng.uniform(0.0, 0.35, size=(size, size, 3))
                img[mask] = colour
                Image.fromarray((img * 255).astype(np.uint8), mode="RGB").save(folder / f"{i:04d}.png")
    return root
