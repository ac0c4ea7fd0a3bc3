"""Search spaces, the :class:`Arch` value and the per-block plan every other layer reads.

Lives here: ``arch`` (the frozen :class:`Arch`, the authors' dict encoding), ``parse`` (the authors'
``supernet_config`` YAML block), ``spec`` (:class:`SearchSpace`, stages, the gene form and its
:class:`GeneLayout`), ``presets`` (``attentivenas`` = ``alphanet``, ``tiny``, the published models,
:func:`resolve_arch`), ``pareto_file`` (the one reader of Pareto files) and ``plan`` (the block plan: scalar,
per stage, vectorised, supernet slots).

May import: ``attentivenas.errors`` and ``attentivenas.io`` only (numpy and PyYAML outside).
"""

from .arch import ARCH_KEYS, Arch, as_number
from .parse import ACTIVATIONS, parse_supernet_config
from .plan import (
    HEAD_EXPAND,
    SE_REDUCTION,
    BlockConfig,
    NetPlan,
    PlanColumns,
    SlotColumns,
    SlotConfig,
    conv_out_size,
    mid_channels,
    net_plan,
    output_size,
    plan_columns,
    se_channels,
    shortcut_kind,
    stage_input_sizes,
    stage_plan,
    supernet_slots,
)
from .presets import (
    ATTENTIVENAS_SPACE,
    MODEL_NAMES,
    NAMED_ARCHS,
    PUBLISHED_MFLOPS,
    PUBLISHED_TOP1,
    SPACES,
    TINY_SPACE,
    get_space,
    iter_named,
    named_arch,
    resolve_arch,
)
from .spec import (
    STAGE_NAMES,
    WIDTH_NAMES,
    ArchColumns,
    GeneLayout,
    SearchSpace,
    StageSpace,
    make_divisible,
    make_divisible_vec,
)

__all__ = [
    "ARCH_KEYS", "Arch", "as_number", "ACTIVATIONS", "parse_supernet_config",
    "HEAD_EXPAND", "SE_REDUCTION", "BlockConfig", "NetPlan", "PlanColumns", "SlotColumns", "SlotConfig",
    "conv_out_size", "mid_channels", "net_plan", "output_size", "plan_columns", "se_channels", "shortcut_kind",
    "stage_input_sizes", "stage_plan", "supernet_slots",
    "ATTENTIVENAS_SPACE", "MODEL_NAMES", "NAMED_ARCHS", "PUBLISHED_MFLOPS", "PUBLISHED_TOP1", "SPACES",
    "TINY_SPACE", "get_space", "iter_named", "named_arch", "resolve_arch",
    "STAGE_NAMES", "WIDTH_NAMES", "ArchColumns", "GeneLayout", "SearchSpace", "StageSpace", "make_divisible",
    "make_divisible_vec",
]
