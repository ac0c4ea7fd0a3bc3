"""Search spaces and the :class:`Arch` value.

A search space is a MobileNetV3-like network: a first conv, seven MBConv stages and a v3 head.
Each stage chooses a width ``c``, depth ``d``, kernel ``k`` and expand ratio ``t`` once for all
of its blocks. An :class:`Arch` is one choice per knob, encoded exactly as the authors do
(``resolution``, ``width`` [9], ``depth`` [7], ``kernel_size`` [7], ``expand_ratio`` [7]), so their
configs paste in unchanged.

Besides the dict form, an arch has a *gene* form: one integer per knob, the index of the chosen
value in the space's candidate list. Genes make sampling, cost and search vectorisable
(see :mod:`attentivenas.cost`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .errors import ArchError, SpaceError
from .io import read_json_file

ARCH_KEYS = ("resolution", "width", "depth", "kernel_size", "expand_ratio")
STAGE_NAMES = ("mb1", "mb2", "mb3", "mb4", "mb5", "mb6", "mb7")
WIDTH_NAMES = ("first_conv",) + STAGE_NAMES + ("last_conv",)
ACTIVATIONS = ("swish", "relu", "relu6", "h_swish")


def make_divisible(v: float, divisor: int = 8, min_value: int | None = 1) -> int:
    """Round ``v`` to a multiple of ``divisor`` (at least ``min_value``; ``None`` means ``divisor``)
    without going more than 10% below it. The default ``min_value=1`` is the authors': tiny values
    then round up oddly (``make_divisible(3) == 9``), which we keep so user spaces match their layout."""
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def _num(v: float) -> int | float:
    """Return ``v`` as an int when it is integral (so JSON writes ``4``, not ``4.0``)."""
    return int(v) if float(v).is_integer() else float(v)


@dataclass(frozen=True)
class StageSpace:
    """Choices of one MBConv stage."""

    name: str
    widths: tuple[int, ...]
    depths: tuple[int, ...]
    kernels: tuple[int, ...]
    expands: tuple[int | float, ...]
    stride: int
    se: bool
    act: str = "swish"

    @property
    def max_depth(self) -> int:
        return max(self.depths)

    @property
    def has_expand_conv(self) -> bool:
        """The authors' layer drops the 1x1 expand conv when the stage's only expand ratio is 1."""
        return max(self.expands) != 1


@dataclass(frozen=True)
class Arch:
    """One architecture of a space, in the authors' encoding."""

    resolution: int
    width: tuple[int, ...]
    depth: tuple[int, ...]
    kernel_size: tuple[int, ...]
    expand_ratio: tuple[int | float, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "resolution": int(self.resolution),
            "width": [int(v) for v in self.width],
            "depth": [int(v) for v in self.depth],
            "kernel_size": [int(v) for v in self.kernel_size],
            "expand_ratio": [_num(v) for v in self.expand_ratio],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    def key(self) -> str:
        """A short stable string, usable as a cache key."""
        d = self.to_dict()
        return "r{}_w{}_d{}_k{}_e{}".format(
            d["resolution"],
            "-".join(map(str, d["width"])),
            "".join(map(str, d["depth"])),
            "".join(map(str, d["kernel_size"])),
            "-".join(map(str, d["expand_ratio"])),
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Arch:
        """Build an arch from the authors' dict encoding; checks keys and types, not the space."""
        if not isinstance(data, Mapping):
            raise ArchError(f"arch must be a JSON object with keys {list(ARCH_KEYS)}, got {type(data).__name__}")
        missing = [k for k in ARCH_KEYS if k not in data]
        if missing:
            raise ArchError(f"arch is missing key(s) {missing}; an arch needs {list(ARCH_KEYS)}")
        unknown = sorted(set(data) - set(ARCH_KEYS) - {"flops", "mflops", "params", "accuracy"})
        if unknown:
            raise ArchError(f"arch has unknown key(s) {unknown}; allowed: {list(ARCH_KEYS)}")
        res = data["resolution"]
        if isinstance(res, bool) or not isinstance(res, (int, float)) or not float(res).is_integer():
            raise ArchError(f"arch field 'resolution' must be an integer, got {res!r}")
        lists: dict[str, tuple] = {}
        for k in ARCH_KEYS[1:]:
            v = data[k]
            if not isinstance(v, (list, tuple)):
                raise ArchError(f"arch field '{k}' must be a list, got {v!r}")
            for item in v:
                if isinstance(item, bool) or not isinstance(item, (int, float)):
                    raise ArchError(f"arch field '{k}' must hold numbers, got {item!r}")
            conv = (lambda x: _num(x)) if k == "expand_ratio" else (lambda x: int(x) if float(x).is_integer() else x)
            lists[k] = tuple(conv(x) for x in v)
        return cls(int(res), lists["width"], lists["depth"], lists["kernel_size"], lists["expand_ratio"])

    @classmethod
    def from_json(cls, text: str) -> Arch:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ArchError(f"arch is not valid JSON: {exc}") from None
        return cls.from_dict(data)


@dataclass(frozen=True)
class SearchSpace:
    """A MobileNetV3-like weight-sharing search space."""

    name: str
    resolutions: tuple[int, ...]
    first_conv: tuple[int, ...]
    stages: tuple[StageSpace, ...]
    last_conv: tuple[int, ...]
    first_stride: int = 2
    act: str = "swish"
    use_v3_head: bool = True
    _choices: dict = field(default=None, init=False, repr=False, compare=False, hash=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        choices: dict[str, list[tuple]] = {
            "resolution": [tuple(self.resolutions)],
            "width": [tuple(self.first_conv)] + [s.widths for s in self.stages] + [tuple(self.last_conv)],
            "depth": [s.depths for s in self.stages],
            "kernel_size": [s.kernels for s in self.stages],
            "expand_ratio": [s.expands for s in self.stages],
        }
        object.__setattr__(self, "_choices", choices)

    # ----------------------------------------------------------------- structure
    @property
    def num_stages(self) -> int:
        return len(self.stages)

    @property
    def num_blocks(self) -> int:
        """Blocks of the supernet (max depth summed over stages)."""
        return sum(s.max_depth for s in self.stages)

    @property
    def choices(self) -> dict[str, list[tuple]]:
        """Candidate values per arch field, one tuple per list position (resolution: one tuple)."""
        return self._choices

    @property
    def gene_choices(self) -> list[tuple]:
        """Candidate tuples of every gene, in gene order."""
        out: list[tuple] = []
        for k in ARCH_KEYS:
            out.extend(self._choices[k])
        return out

    @property
    def gene_sizes(self) -> np.ndarray:
        return np.array([len(c) for c in self.gene_choices], dtype=np.int64)

    @property
    def num_genes(self) -> int:
        return len(self.gene_choices)

    def size(self) -> int:
        """Number of distinct architectures (depth choices count once per stage)."""
        return int(np.prod([float(n) for n in self.gene_sizes]))

    def log10_size(self) -> float:
        return float(sum(math.log10(n) for n in self.gene_sizes))

    # ----------------------------------------------------------------- validation
    def validate(self, arch: Arch) -> Arch:
        """Raise :class:`ArchError` naming the field, value and allowed values if ``arch`` is outside."""
        if arch.resolution not in self.resolutions:
            raise ArchError(
                f"arch field 'resolution' = {arch.resolution} is not in space '{self.name}'; "
                f"allowed: {list(self.resolutions)}"
            )
        for key in ARCH_KEYS[1:]:
            values = getattr(arch, key)
            allowed = self._choices[key]
            if len(values) != len(allowed):
                raise ArchError(
                    f"arch field '{key}' has {len(values)} values; space '{self.name}' needs {len(allowed)}"
                )
            for i, (v, ok) in enumerate(zip(values, allowed, strict=False)):
                if v not in ok:
                    where = WIDTH_NAMES[i] if key == "width" and len(allowed) == len(WIDTH_NAMES) else (
                        self.stages[i].name if key != "width" else str(i))
                    raise ArchError(
                        f"arch field '{key}[{i}]' ({where}) = {_num(v)} is not in space '{self.name}'; "
                        f"allowed: {[_num(a) for a in ok]}"
                    )
        return arch

    def arch_from_dict(self, data: Mapping[str, Any]) -> Arch:
        return self.validate(Arch.from_dict(data))

    # ----------------------------------------------------------------- genes
    def encode(self, arch: Arch) -> np.ndarray:
        """Gene vector (choice indices) of a valid arch."""
        self.validate(arch)
        values: list = [arch.resolution, *arch.width, *arch.depth, *arch.kernel_size, *arch.expand_ratio]
        return np.array([c.index(v) for v, c in zip(values, self.gene_choices, strict=False)], dtype=np.int64)

    def decode(self, genes: Sequence[int] | np.ndarray) -> Arch:
        """Arch of a gene vector."""
        g = [int(x) for x in genes]
        vals = [c[i] for i, c in zip(g, self.gene_choices, strict=False)]
        n_w, n_s = len(self._choices["width"]), self.num_stages
        return Arch(
            resolution=int(vals[0]),
            width=tuple(int(v) for v in vals[1 : 1 + n_w]),
            depth=tuple(int(v) for v in vals[1 + n_w : 1 + n_w + n_s]),
            kernel_size=tuple(int(v) for v in vals[1 + n_w + n_s : 1 + n_w + 2 * n_s]),
            expand_ratio=tuple(_num(v) for v in vals[1 + n_w + 2 * n_s :]),
        )

    def sample_genes(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` uniformly random gene vectors, shape (n, num_genes)."""
        sizes = self.gene_sizes
        return (rng.random((n, len(sizes))) * sizes).astype(np.int64)

    # ----------------------------------------------------------------- sampling
    def sample(self, rng: np.random.Generator) -> Arch:
        """One architecture drawn uniformly (every knob independently)."""
        return self.decode(self.sample_genes(rng, 1)[0])

    def min_arch(self) -> Arch:
        return self.decode(np.zeros(self.num_genes, dtype=np.int64))

    def max_arch(self) -> Arch:
        return self.decode(self.gene_sizes - 1)

    def mutate(self, arch: Arch, rng: np.random.Generator, prob: float = 0.1) -> Arch:
        """Change each knob with probability ``prob`` to another of its values."""
        genes = self.encode(arch)
        sizes = self.gene_sizes
        for i, n in enumerate(sizes):
            if n > 1 and rng.random() < prob:
                shift = int(rng.integers(1, n))
                genes[i] = (genes[i] + shift) % n
        return self.decode(genes)

    def crossover(self, a: Arch, b: Arch, rng: np.random.Generator, prob: float = 0.5) -> Arch:
        """Take each knob from ``a`` with probability ``prob``, else from ``b``."""
        ga, gb = self.encode(a), self.encode(b)
        take_a = rng.random(len(ga)) < prob
        return self.decode(np.where(take_a, ga, gb))

    # ----------------------------------------------------------------- features
    def features(self, arch: Arch) -> np.ndarray:
        """Numeric feature vector for predictors (see :meth:`features_from_genes`)."""
        return self.features_from_genes(self.encode(arch)[None, :])[0]

    def features_from_genes(self, genes: np.ndarray) -> np.ndarray:
        """Raw knob values as floats, shape (n, num_genes): resolution, widths, depths, kernels, expands."""
        genes = np.atleast_2d(np.asarray(genes, dtype=np.int64))
        cols = []
        for j, c in enumerate(self.gene_choices):
            table = np.asarray(c, dtype=np.float64)
            cols.append(table[genes[:, j]])
        return np.stack(cols, axis=1)

    def feature_names(self) -> list[str]:
        names = ["resolution"]
        names += [f"width[{n}]" for n in WIDTH_NAMES[: len(self._choices["width"])]]
        for k in ("depth", "kernel_size", "expand_ratio"):
            names += [f"{k}[{s.name}]" for s in self.stages]
        return names

    # ----------------------------------------------------------------- (de)serialisation
    def to_supernet_config(self) -> dict[str, Any]:
        """The authors' ``supernet_config`` block."""
        cfg: dict[str, Any] = {
            "use_v3_head": self.use_v3_head,
            "resolutions": list(self.resolutions),
            "first_conv": {"c": list(self.first_conv), "act_func": self.act, "s": self.first_stride},
        }
        for s in self.stages:
            cfg[s.name] = {
                "c": list(s.widths),
                "d": list(s.depths),
                "k": list(s.kernels),
                "t": [_num(t) for t in s.expands],
                "s": s.stride,
                "act_func": s.act,
                "se": s.se,
            }
        cfg["last_conv"] = {"c": list(self.last_conv), "act_func": self.act}
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "supernet_config": self.to_supernet_config()}

    @classmethod
    def from_supernet_config(cls, cfg: Mapping[str, Any], name: str = "custom") -> SearchSpace:
        """Parse the authors' ``supernet_config`` block (as in their YAML configs)."""
        if not isinstance(cfg, Mapping):
            raise SpaceError("supernet_config must be a mapping")

        def need(d: Mapping[str, Any], key: str, where: str) -> Any:
            if key not in d:
                raise SpaceError(f"supernet_config.{where} is missing '{key}'")
            return d[key]

        def int_list(v: Any, where: str, positive: bool = True) -> tuple[int, ...]:
            vals = v if isinstance(v, (list, tuple)) else [v]
            out = []
            for x in vals:
                if isinstance(x, bool) or not isinstance(x, (int, float)) or not float(x).is_integer():
                    raise SpaceError(f"supernet_config.{where} must hold integers, got {x!r}")
                if positive and x <= 0:
                    raise SpaceError(f"supernet_config.{where} must hold positive integers, got {x!r}")
                out.append(int(x))
            if not out:
                raise SpaceError(f"supernet_config.{where} must not be empty")
            if len(set(out)) != len(out):
                raise SpaceError(f"supernet_config.{where} has repeated values {out}")
            return tuple(sorted(out))

        if not cfg.get("use_v3_head", True):
            raise SpaceError("supernet_config.use_v3_head: only the v3 head (true) is supported")
        resolutions = int_list(need(cfg, "resolutions", ""), "resolutions")
        fc = need(cfg, "first_conv", "")
        first = int_list(need(fc, "c", "first_conv"), "first_conv.c")
        act = str(fc.get("act_func", "swish"))
        if act not in ACTIVATIONS:
            raise SpaceError(f"supernet_config.first_conv.act_func = {act!r}; allowed: {list(ACTIVATIONS)}")
        stages = []
        stage_names = sorted(
            (k for k in cfg if isinstance(k, str) and k.startswith("mb") and k[2:].isdigit()),
            key=lambda k: int(k[2:]),
        )
        if not stage_names:
            raise SpaceError("supernet_config has no MBConv stages (mb1, mb2, ...)")
        for sn in stage_names:
            sc = cfg[sn]
            if not isinstance(sc, Mapping):
                raise SpaceError(f"supernet_config.{sn} must be a mapping")
            t_raw = need(sc, "t", sn)
            t_vals = t_raw if isinstance(t_raw, (list, tuple)) else [t_raw]
            expands = []
            for t in t_vals:
                if isinstance(t, bool) or not isinstance(t, (int, float)) or t <= 0:
                    raise SpaceError(f"supernet_config.{sn}.t must hold positive numbers, got {t!r}")
                expands.append(_num(t))
            kernels = int_list(need(sc, "k", sn), f"{sn}.k")
            for k in kernels:
                if k % 2 == 0:
                    raise SpaceError(f"supernet_config.{sn}.k must hold odd kernel sizes, got {k}")
            s_act = str(sc.get("act_func", act))
            if s_act not in ACTIVATIONS:
                raise SpaceError(f"supernet_config.{sn}.act_func = {s_act!r}; allowed: {list(ACTIVATIONS)}")
            stride = int(sc.get("s", 1))
            if stride not in (1, 2):
                raise SpaceError(f"supernet_config.{sn}.s = {stride}; allowed: [1, 2]")
            stages.append(
                StageSpace(
                    name=sn,
                    widths=int_list(need(sc, "c", sn), f"{sn}.c"),
                    depths=int_list(need(sc, "d", sn), f"{sn}.d"),
                    kernels=kernels,
                    expands=tuple(sorted(expands)),
                    stride=stride,
                    se=bool(sc.get("se", False)),
                    act=s_act,
                )
            )
        lc = need(cfg, "last_conv", "")
        last = int_list(need(lc, "c", "last_conv"), "last_conv.c")
        return cls(
            name=name,
            resolutions=resolutions,
            first_conv=first,
            stages=tuple(stages),
            last_conv=last,
            first_stride=int(fc.get("s", 2)),
            act=act,
        )

    @classmethod
    def from_yaml(cls, path: str | Path) -> SearchSpace:
        """Load a space from YAML: a file with a ``supernet_config`` block (e.g. the authors'
        training config, pasted unchanged) or the block's contents at the top level."""
        p = Path(path)
        if not p.is_file():
            raise SpaceError(f"space file not found: {p}")
        try:
            data = yaml.safe_load(p.read_text())
        except yaml.YAMLError as exc:
            raise SpaceError(f"space file {p} is not valid YAML: {exc}") from None
        if not isinstance(data, Mapping):
            raise SpaceError(f"space file {p} must hold a mapping with a 'supernet_config' block")
        block = data.get("supernet_config", data)
        name = str(data.get("name", p.stem))
        return cls.from_supernet_config(block, name=name)


# --------------------------------------------------------------------------- presets
def _stage(name, c, d, k, t, s, se) -> StageSpace:
    return StageSpace(name, tuple(c), tuple(d), tuple(k), tuple(t), s, se)


ATTENTIVENAS_SPACE = SearchSpace(
    name="attentivenas",
    resolutions=(192, 224, 256, 288),
    first_conv=(16, 24),
    stages=(
        _stage("mb1", (16, 24), (1, 2), (3, 5), (1,), 1, False),
        _stage("mb2", (24, 32), (3, 4, 5), (3, 5), (4, 5, 6), 2, False),
        _stage("mb3", (32, 40), (3, 4, 5, 6), (3, 5), (4, 5, 6), 2, True),
        _stage("mb4", (64, 72), (3, 4, 5, 6), (3, 5), (4, 5, 6), 2, False),
        _stage("mb5", (112, 120, 128), (3, 4, 5, 6, 7, 8), (3, 5), (4, 5, 6), 1, True),
        _stage("mb6", (192, 200, 208, 216), (3, 4, 5, 6, 7, 8), (3, 5), (6,), 2, True),
        _stage("mb7", (216, 224), (1, 2), (3, 5), (6,), 1, True),
    ),
    last_conv=(1792, 1984),
)

TINY_SPACE = SearchSpace(
    name="tiny",
    resolutions=(24, 28, 32),
    first_conv=(8, 16),
    stages=(
        _stage("mb1", (8, 16), (1, 2), (3, 5), (1,), 1, False),
        _stage("mb2", (16, 24), (1, 2), (3, 5), (3, 4, 6), 2, False),
        _stage("mb3", (24, 32), (1, 2), (3, 5), (3, 4, 6), 2, True),
        _stage("mb4", (32, 40), (1, 2, 3), (3, 5), (3, 4, 6), 2, False),
        _stage("mb5", (40, 48), (1, 2, 3), (3, 5), (3, 4, 6), 1, True),
        _stage("mb6", (64, 72), (1, 2, 3), (3, 5), (6,), 2, True),
        _stage("mb7", (72, 80), (1, 2), (3, 5), (6,), 1, True),
    ),
    last_conv=(256, 320),
)

SPACES: dict[str, SearchSpace] = {
    "attentivenas": ATTENTIVENAS_SPACE,
    "alphanet": ATTENTIVENAS_SPACE,
    "tiny": TINY_SPACE,
}


def get_space(name_or_path: str | SearchSpace | None) -> SearchSpace:
    """A preset by name (``attentivenas``, ``alphanet``, ``tiny``) or a YAML file path."""
    if name_or_path is None:
        return ATTENTIVENAS_SPACE
    if isinstance(name_or_path, SearchSpace):
        return name_or_path
    key = str(name_or_path)
    if key.lower() in SPACES:
        return SPACES[key.lower()]
    if key.endswith((".yaml", ".yml")) or Path(key).is_file():
        return SearchSpace.from_yaml(key)
    raise SpaceError(f"unknown space {key!r}; use one of {sorted(SPACES)} or a YAML file path")


# --------------------------------------------------------------------------- named models
def _a(res, width, depth, ks, er) -> dict[str, Any]:
    return {"resolution": res, "width": width, "depth": depth, "kernel_size": ks, "expand_ratio": er}


NAMED_ARCHS: dict[str, dict[str, Any]] = {
    "a0": _a(192, [16, 16, 24, 32, 64, 112, 192, 216, 1792], [1, 3, 3, 3, 3, 3, 1], [3, 3, 3, 3, 3, 3, 3], [1, 4, 4, 4, 4, 6, 6]),
    "a1": _a(224, [16, 16, 24, 32, 64, 112, 192, 216, 1984], [1, 3, 3, 3, 3, 3, 1], [3, 3, 3, 5, 3, 5, 3], [1, 4, 4, 4, 4, 6, 6]),
    "a2": _a(224, [16, 16, 24, 32, 64, 112, 200, 224, 1984], [1, 3, 3, 3, 3, 4, 1], [3, 3, 3, 3, 3, 5, 3], [1, 4, 5, 4, 4, 6, 6]),
    "a3": _a(224, [16, 16, 24, 32, 64, 112, 208, 224, 1984], [2, 3, 3, 4, 3, 5, 1], [3, 3, 3, 5, 3, 3, 3], [1, 4, 4, 4, 4, 6, 6]),
    "a4": _a(256, [16, 16, 24, 32, 64, 112, 192, 216, 1984], [1, 3, 3, 4, 3, 5, 1], [3, 3, 3, 5, 3, 5, 3], [1, 4, 4, 5, 4, 6, 6]),
    "a5": _a(256, [16, 16, 24, 32, 72, 112, 192, 216, 1792], [1, 3, 3, 3, 4, 6, 1], [3, 3, 3, 5, 3, 3, 3], [1, 4, 5, 4, 4, 6, 6]),
    "a6": _a(288, [16, 16, 24, 32, 64, 112, 216, 224, 1984], [1, 3, 3, 4, 4, 6, 1], [3, 3, 3, 3, 3, 5, 3], [1, 4, 6, 5, 4, 6, 6]),
    "alphanet-a5": _a(256, [16, 16, 24, 32, 64, 112, 208, 216, 1984], [1, 3, 3, 4, 4, 5, 1], [3, 3, 3, 3, 3, 5, 3], [1, 4, 4, 5, 4, 6, 6]),
    "alphanet-a5-base": _a(288, [16, 16, 24, 32, 64, 112, 200, 216, 1984], [2, 3, 4, 3, 3, 5, 1], [3, 3, 5, 5, 3, 3, 3], [1, 4, 4, 4, 5, 6, 6]),
}

#: Published MFLOPs of the named models (official counter), checked by the tests.
PUBLISHED_MFLOPS: dict[str, float] = {
    "a0": 203.39, "a1": 279.24, "a2": 316.73, "a3": 356.52, "a4": 443.53, "a5": 490.52,
    "a6": 709.01, "alphanet-a5": 491.48, "alphanet-a5-base": 594.79,
}

#: Published ImageNet top-1 of the named models (AttentiveNAS paper / AlphaNet README).
PUBLISHED_TOP1: dict[str, float] = {
    "a0": 77.3, "a1": 78.4, "a2": 78.8, "a3": 79.1, "a4": 79.8, "a5": 80.1, "a6": 80.7,
    "alphanet-a5": 80.29, "alphanet-a5-base": 80.62,
}

MODEL_NAMES: tuple[str, ...] = tuple(NAMED_ARCHS) + ("min", "max")


def named_arch(name: str, space: SearchSpace | None = None) -> Arch:
    """A published model (``a0``..``a6``, ``alphanet-a5``, ``alphanet-a5-base``) or ``min``/``max``
    of ``space``."""
    space = space or ATTENTIVENAS_SPACE
    key = name.lower()
    if key == "min":
        return space.min_arch()
    if key == "max":
        return space.max_arch()
    if key not in NAMED_ARCHS:
        raise ArchError(f"unknown model name {name!r}; known: {list(MODEL_NAMES)}")
    return space.arch_from_dict(NAMED_ARCHS[key])


def resolve_arch(spec: str | Mapping[str, Any] | Arch, space: SearchSpace) -> Arch:
    """Turn an ARCH argument into a validated arch: a model name, a JSON file path, an inline
    JSON object, a dict or an :class:`Arch`."""
    if isinstance(spec, Arch):
        return space.validate(spec)
    if isinstance(spec, Mapping):
        return space.arch_from_dict(spec)
    text = str(spec).strip()
    if text.startswith("{"):
        return space.validate(Arch.from_json(text))
    if text.lower() in MODEL_NAMES:
        return named_arch(text, space)
    p = Path(text)
    if p.suffix.lower() == ".json" or p.exists():
        data = read_json_file(p, "arch file", ArchError)
        if isinstance(data, Mapping) and "arch" in data and isinstance(data["arch"], Mapping):
            data = data["arch"]
        return space.arch_from_dict(data)
    raise ArchError(
        f"unknown arch {text!r}: give a model name {list(MODEL_NAMES)}, a path to an arch JSON file, "
        "or an inline JSON object"
    )


def iter_named(space: SearchSpace | None = None) -> Iterable[tuple[str, Arch]]:
    for name in NAMED_ARCHS:
        yield name, named_arch(name, space)
