"""The search-space spec: :class:`StageSpace`, :class:`SearchSpace` and the gene form of an arch.

A search space is a MobileNetV3-like network: a first conv, MBConv stages and a v3 head. Each stage
chooses a width ``c``, depth ``d``, kernel ``k`` and expand ratio ``t`` once for all of its blocks.

Besides the dict form (:class:`~attentivenas.space.arch.Arch`), an arch has a *gene* form: one
integer per knob, the index of the chosen value in the space's candidate list, laid out as
:class:`GeneLayout` says. Genes make sampling, cost and search vectorisable.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ArchError
from .arch import ARCH_KEYS, Arch, as_number
from .parse import parse_supernet_config, read_space_yaml

STAGE_NAMES = ("mb1", "mb2", "mb3", "mb4", "mb5", "mb6", "mb7")
WIDTH_NAMES = ("first_conv",) + STAGE_NAMES + ("last_conv",)


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


def make_divisible_vec(v: np.ndarray, divisor: int = 8) -> np.ndarray:
    """:func:`make_divisible` (``min_value=1``) of every element of an array."""
    new_v = np.maximum(1, np.floor(v + divisor / 2).astype(np.int64) // divisor * divisor)
    return np.where(new_v < 0.9 * v, new_v + divisor, new_v)


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
class GeneLayout:
    """Where each arch field sits in a gene vector: resolution, widths, depths, kernels, expands."""

    num_widths: int
    num_stages: int

    resolution = 0

    def width(self, i: int) -> int:
        return 1 + i

    def depth(self, s: int) -> int:
        return 1 + self.num_widths + s

    def kernel(self, s: int) -> int:
        return 1 + self.num_widths + self.num_stages + s

    def expand(self, s: int) -> int:
        return 1 + self.num_widths + 2 * self.num_stages + s

    @property
    def num_genes(self) -> int:
        return 1 + self.num_widths + 3 * self.num_stages


@dataclass(frozen=True)
class ArchColumns:
    """The knob values of many archs, one array per knob (see :meth:`SearchSpace.columns`)."""

    resolution: np.ndarray
    width: list[np.ndarray]
    depth: list[np.ndarray]
    kernel_size: list[np.ndarray]
    expand_ratio: list[np.ndarray]


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
    _tables: list = field(default=None, init=False, repr=False, compare=False, hash=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        choices: dict[str, list[tuple]] = {
            "resolution": [tuple(self.resolutions)],
            "width": [tuple(self.first_conv)] + [s.widths for s in self.stages] + [tuple(self.last_conv)],
            "depth": [s.depths for s in self.stages],
            "kernel_size": [s.kernels for s in self.stages],
            "expand_ratio": [s.expands for s in self.stages],
        }
        object.__setattr__(self, "_choices", choices)
        tables = [np.asarray(c, dtype=np.int64 if k != "expand_ratio" else np.float64)
                  for k in ARCH_KEYS for c in choices[k]]
        object.__setattr__(self, "_tables", tables)

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
    def layout(self) -> GeneLayout:
        """Where each arch field sits in a gene vector."""
        return GeneLayout(len(self._choices["width"]), self.num_stages)

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
                    raise ArchError(
                        f"arch field '{key}[{i}]' ({self._position_name(key, i)}) = {as_number(v)} is not in space "
                        f"'{self.name}'; allowed: {[as_number(a) for a in ok]}"
                    )
        return arch

    def _position_name(self, key: str, i: int) -> str:
        if key != "width":
            return self.stages[i].name
        return WIDTH_NAMES[i] if len(self._choices["width"]) == len(WIDTH_NAMES) else str(i)

    def arch_from_dict(self, data: Mapping[str, Any]) -> Arch:
        return self.validate(Arch.from_dict(data))

    # ----------------------------------------------------------------- genes
    def encode(self, arch: Arch) -> np.ndarray:
        """Gene vector (choice indices) of a valid arch."""
        self.validate(arch)
        values: list = [arch.resolution, *arch.width, *arch.depth, *arch.kernel_size, *arch.expand_ratio]
        return np.array([c.index(v) for v, c in zip(values, self.gene_choices, strict=False)], dtype=np.int64)

    def encode_many(self, archs: Sequence[Arch]) -> np.ndarray:
        """Gene matrix (n, num_genes) of valid archs."""
        if not archs:
            return np.zeros((0, self.num_genes), dtype=np.int64)
        return np.stack([self.encode(a) for a in archs])

    def decode(self, genes: Sequence[int] | np.ndarray) -> Arch:
        """Arch of a gene vector."""
        vals = [c[int(i)] for i, c in zip(genes, self.gene_choices, strict=False)]
        lay = self.layout
        return Arch(
            resolution=int(vals[0]),
            width=tuple(int(v) for v in vals[lay.width(0) : lay.depth(0)]),
            depth=tuple(int(v) for v in vals[lay.depth(0) : lay.kernel(0)]),
            kernel_size=tuple(int(v) for v in vals[lay.kernel(0) : lay.expand(0)]),
            expand_ratio=tuple(as_number(v) for v in vals[lay.expand(0) :]),
        )

    def columns(self, genes: np.ndarray) -> ArchColumns:
        """The knob values of every row of a gene matrix, one array (length n) per knob."""
        g = np.atleast_2d(np.asarray(genes, dtype=np.int64))
        vals = [t[g[:, j]] for j, t in enumerate(self._tables)]
        lay = self.layout
        return ArchColumns(
            resolution=vals[0],
            width=vals[lay.width(0) : lay.depth(0)],
            depth=vals[lay.depth(0) : lay.kernel(0)],
            kernel_size=vals[lay.kernel(0) : lay.expand(0)],
            expand_ratio=vals[lay.expand(0) :],
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
        g = np.atleast_2d(np.asarray(genes, dtype=np.int64))
        return np.stack([t[g[:, j]].astype(np.float64) for j, t in enumerate(self._tables)], axis=1)

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
                "t": [as_number(t) for t in s.expands],
                "s": s.stride,
                "act_func": s.act,
                "se": s.se,
            }
        cfg["last_conv"] = {"c": list(self.last_conv), "act_func": self.act}
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "supernet_config": self.to_supernet_config()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SearchSpace:
        """The space of a :meth:`to_dict` description (``supernet_config`` and an optional ``name``)."""
        return cls.from_supernet_config(data["supernet_config"], name=str(data.get("name", "custom")))

    def same_as(self, other: SearchSpace) -> bool:
        """Whether both spaces build the same supernet (names may differ)."""
        return self.to_supernet_config() == other.to_supernet_config()

    @classmethod
    def from_supernet_config(cls, cfg: Mapping[str, Any], name: str = "custom") -> SearchSpace:
        """Parse the authors' ``supernet_config`` block (as in their YAML configs)."""
        spec = parse_supernet_config(cfg)
        stages = tuple(StageSpace(**s) for s in spec.pop("stages"))
        return cls(name=name, stages=stages, **spec)

    @classmethod
    def from_yaml(cls, path: str | Path) -> SearchSpace:
        """Load a space from YAML: a file with a ``supernet_config`` block (e.g. the authors'
        training config, pasted unchanged) or the block's contents at the top level."""
        block, name = read_space_yaml(path)
        return cls.from_supernet_config(block, name=name)
