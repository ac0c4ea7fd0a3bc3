"""What ``attentivenas space`` and ``flops`` compute, as small functions the CLI calls (no torch)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import UserError
from ..space import SearchSpace, get_space
from .model import CostModel

#: ``flops``'s class count when neither ``--checkpoint`` nor ``--num-classes`` gives one (ImageNet's)
DEFAULT_NUM_CLASSES = 1000


def space_summary(space: SearchSpace) -> dict[str, Any]:
    """``space``'s JSON object: name, size, blocks, ``supernet_config`` and its FLOPs range (1000 classes)."""
    cm = CostModel(space)
    return {
        "name": space.name,
        "num_architectures": space.size(),
        "log10_size": round(space.log10_size(), 3),
        "num_blocks": space.num_blocks,
        "supernet_config": space.to_supernet_config(),
        "min_mflops": round(cm.arch_flops(space.min_arch()), 2),
        "max_mflops": round(cm.arch_flops(space.max_arch()), 2),
    }


def space_rows(space: SearchSpace) -> list[tuple[str, ...]]:
    """The rows of ``space``'s table: stage, width, depth, kernel, expand, stride, SE."""
    def joined(values: Any) -> str:
        return ", ".join(map(str, values))

    return [("resolution", joined(space.resolutions), "", "", "", "", ""),
            ("first_conv", joined(space.first_conv), "", "3", "", str(space.first_stride), ""),
            *((st.name, joined(st.widths), joined(st.depths), joined(st.kernels), joined(st.expands), str(st.stride),
               "yes" if st.se else "no") for st in space.stages),
            ("last_conv", joined(space.last_conv), "", "1", "", "", "")]


def flops_setting(space: str | None, num_classes: int | None, checkpoint: Path | None,
                  ckpt_space: SearchSpace | None, ckpt_classes: int | None) -> tuple[SearchSpace, int, str]:
    """The space, class count and where the count comes from, for ``flops``'s flags and what
    ``checkpoint`` stores (``ckpt_space``, ``ckpt_classes``); a flag that contradicts it is refused."""
    if num_classes is not None and ckpt_classes is not None and num_classes != ckpt_classes:
        raise UserError(f"--num-classes {num_classes} differs from the {ckpt_classes} classes of --checkpoint "
                        f"{checkpoint}; give one of them")
    sp = get_space(space) if space is not None else (ckpt_space or get_space("attentivenas"))
    if space is not None and ckpt_space is not None and not sp.same_as(ckpt_space):
        raise UserError(f"--space {space} is not the space of --checkpoint {checkpoint} ('{ckpt_space.name}'); "
                        "leave --space out to use the checkpoint's")
    classes = num_classes or ckpt_classes or DEFAULT_NUM_CLASSES
    source = ("--num-classes" if num_classes is not None else f"from {checkpoint}" if ckpt_classes is not None
              else "the default; pass --checkpoint or --num-classes")
    return sp, classes, source
