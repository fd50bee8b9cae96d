"""The committed studies' make targets, cut to a few runs of a few epochs: they run end to end and write
their tables and figures."""

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO

pytestmark = pytest.mark.slow  # trains through the command line

BIN = Path(sys.executable).parent  # this environment's mmx; STAMP= skips the Makefile's install step


def make(target: str, *variables: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "-C", str(REPO), target, "STAMP=", f"BIN={BIN}", *variables],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_threshold_study_runs_end_to_end(tmp_path):
    out = tmp_path / "theory"
    result = make(
        "theory-results",
        f"THEORY={out}",
        "THEORY_WIDTHS=2,10",
        "THEORY_SEEDS=0",
        "THEORY_EPOCHS=2",
        "THEORY_CHECK_WIDTHS=10",
        "THEORY_CHECK_EPOCHS=3",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = list(csv.DictReader(open(out / "theory.csv")))
    assert [(r["regime"], r["width"], r["seeds"]) for r in rows] == [
        ("none", "2", "1"),
        ("none", "10", "1"),
        ("manifold", "2", "1"),
        ("manifold", "10", "1"),
    ]
    assert all(float(r["excess_train_mean"]) > 0 and float(r["rest_over_largest_mean"]) > 0 for r in rows)
    check = list(csv.DictReader(open(out / "theory_check.csv")))
    assert [(r["regime"], r["epochs"], r["epochs_long"]) for r in check] == [("none", "2", "3"), ("manifold", "2", "3")]
    assert (out / "theory.png").stat().st_size > 20_000 and "Trained twice as long" in (out / "theory.md").read_text()
    assert not list(out.rglob("*.pt"))  # checkpoints are dropped once measured
