"""Deprecated alias: the analytic cost model moved to :mod:`attentivenas.costs`.

Importing this module warns (``DeprecationWarning``); attentivenas 0.2.0 removes it; import from
``attentivenas.costs`` instead.
"""

import warnings

from .costs import *  # noqa: F403
from .costs import __all__  # noqa: F401

warnings.warn("attentivenas.cost is deprecated: import from attentivenas.costs instead (attentivenas 0.2.0 "
              "removes this alias)", DeprecationWarning, stacklevel=2)
