"""Compatibility alias: the analytic cost model moved to :mod:`attentivenas.costs`."""

from .costs import *  # noqa: F403
from .costs import __all__  # noqa: F401
