"""Errors a user can cause and fix: the CLI prints their one sentence and exits non-zero."""


class UserError(Exception):
    """A bad config value, missing data or an incompatible resume; the message says how to fix it."""
