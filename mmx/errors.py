"""Errors a user can cause and fix: the CLI prints their one sentence and exits non-zero."""


class UserError(Exception):
    """A bad config value, missing data or an incompatible resume; the message says how to fix it."""


class RunDiverged(UserError):
    """A run's loss or weights stopped being finite. In a sweep this is one job's outcome, recorded in its
    summary.json, not a reason to leave the sweep's other jobs unrun."""


class WriteFailed(UserError):
    """A file (of a run, a table, a figure) could not be written: a full disk, a read-only folder. The message
    (``problem``) says what is left of it; ``fix`` what to do before running the command again."""

    def __init__(self, problem: str, fix: str, path):
        super().__init__(f"{problem}; {fix}, and run the command again")
        self.problem, self.fix, self.path = problem, fix, path
