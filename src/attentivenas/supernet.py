"""Compatibility alias: the supernet and static subnets moved to :mod:`attentivenas.nn`."""

from .nn import StaticSubnet, Supernet, resize_input
from .space import output_size

__all__ = ["Supernet", "StaticSubnet", "resize_input", "output_size"]
