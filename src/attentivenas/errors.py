"""User-facing error types.

Anything a user can fix (a bad config, an arch outside the space, a missing or corrupt file)
raises a :class:`UserError`; the command line prints its message on one line and exits with 2.
A :class:`JobFailure` is printed on one line too, with exit code 1.
"""

from __future__ import annotations


class UserError(Exception):
    """An error caused by user input; reported without a traceback, exit code 2."""


class ArchError(UserError):
    """An architecture value outside the search space or of the wrong shape."""


class SpaceError(UserError):
    """A malformed search-space description."""


class ConfigError(UserError):
    """A bad config key or value."""


class DataError(UserError):
    """A data sample that cannot be read or transformed (the message names the file and the op)."""


class CheckpointError(UserError):
    """A checkpoint that is missing, corrupt or of another space."""


class JobFailure(Exception):
    """A failure that is not the user's (exit code 1) but has a plain explanation, printed on one line:
    e.g. another rank of a distributed job stopped answering."""

