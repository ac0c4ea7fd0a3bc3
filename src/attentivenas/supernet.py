"""Deprecated alias: the supernet and static subnets moved to :mod:`attentivenas.nn`.

Importing this module warns (``DeprecationWarning``); attentivenas 0.2.0 removes it; import
``Supernet``, ``StaticSubnet`` and ``resize_input`` from ``attentivenas.nn`` and ``output_size``
from ``attentivenas.space`` instead.
"""

import warnings

from .nn import StaticSubnet, Supernet, resize_input
from .space import output_size

__all__ = ["Supernet", "StaticSubnet", "resize_input", "output_size"]

warnings.warn("attentivenas.supernet is deprecated: import from attentivenas.nn "
              "(output_size: attentivenas.space) instead (attentivenas 0.2.0 removes this alias)",
              DeprecationWarning, stacklevel=2)
