"""The code that made a run: mmx's version and, in a git checkout, the commit and whether it had changes."""

from __future__ import annotations

import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

# --- the code that made a run ------------------------------------------------------------------


# What "dirty" looks at: the code that trains and measures, not the results folders that `make` regenerates
# (a study deletes its tracked runs before it trains them again).
CODE_PATHS = (":/mmx", ":/configs", ":/scripts", ":/Makefile", ":/pyproject.toml")


def code_version(source: Path | None = None) -> dict:
    """mmx's version and, in a git checkout, the commit and whether its code had uncommitted changes.

    Kept with every run (summary.json and checkpoints), as airbench keeps its code with its results.
    """
    try:
        mmx_version = version("mmx")
    except PackageNotFoundError:
        mmx_version = None
    source = source or Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        if commit.returncode != 0:
            return {"mmx": mmx_version, "commit": None, "dirty": None}
        status = subprocess.run(
            ["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no", "--", *CODE_PATHS],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return {"mmx": mmx_version, "commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"mmx": mmx_version, "commit": None, "dirty": None}
