"""Errors a user can cause and fix: the CLI prints their one sentence and exits non-zero."""


class UserError(Exception):
    """A bad config value, missing data or an incompatible resume; the message says how to fix it."""


class RunDiverged(UserError):
    """A run's loss or weights stopped being finite. In a sweep this is one job's outcome, recorded in its
    summary.json, not a reason to leave the sweep's other jobs unrun."""
