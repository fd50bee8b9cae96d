"""Helpers to run the installed ``mmx`` command in a subprocess, as a user would."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

MMX = str(Path(sys.executable).parent / "mmx")

# Small enough for 2 CPU cores: a width-8 PreActResNet18 trains a digits epoch in well under a second.
TINY = ["model.width=8", "trainer.progress=false"]


def run_mmx(args: list[str], cwd: Path, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "MMX_DATA": str(cwd / "data"), **(env or {})}
    return subprocess.run([MMX, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)


def assert_one_sentence_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    """Non-zero exit, no traceback, and an error naming every fragment."""
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory) -> Path:
    """One finished 3-epoch digits run, shared by the tests that only read its artifacts."""
    cwd = tmp_path_factory.mktemp("digits_run")
    result = run_mmx(["train", *TINY, "epochs=3", "schedule.milestones=[2]", "hydra.run.dir=run"], cwd)
    assert result.returncode == 0, result.stderr
    return cwd / "run"
