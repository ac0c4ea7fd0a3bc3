"""Deprecated alias: the analytic cost model moved to :mod:`attentivenas.costs`.

Importing this module warns (``DeprecationWarning``); import from ``attentivenas.costs`` instead.
"""

import warnings

from .costs import *  # noqa: F403
from .costs import __all__  # noqa: F401

warnings.warn("attentivenas.cost is deprecated: import from attentivenas.costs instead",
              DeprecationWarning, stacklevel=2)
