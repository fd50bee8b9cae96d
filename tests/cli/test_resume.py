"""A run killed with SIGKILL and resumed ends exactly as an uninterrupted one (CPU, deterministic)."""

import csv
import json
import os
import signal
import subprocess
import time

import pytest

from helpers import MMX, TINY, run_mmx

pytestmark = pytest.mark.slow  # trains or builds through the command line

ARGS = ["train", *TINY, "model.width=16", "trainer.deterministic=true", "epochs=6", "schedule.milestones=[3,5]"]
# A GRU mixing at two of its three points per step: the drawn sets of points resume exactly too.
GRU_TWO_POINTS = [
    "train",
    "model=gru",
    "model.hidden=32",
    "mixup=manifold",
    "mixup.points_per_step=2",
    "trainer.progress=false",
    "trainer.deterministic=true",
    "epochs=6",
]


def epochs_logged(run):
    try:
        with open(run / "metrics.csv", newline="") as handle:
            return [int(row["epoch"]) for row in csv.DictReader(handle)]
    except FileNotFoundError:
        return []


@pytest.mark.parametrize("args", [ARGS, GRU_TWO_POINTS], ids=["preactresnet", "gru_two_points"])
def test_resume_after_sigkill_matches_an_uninterrupted_run(tmp_path, args):
    assert run_mmx([*args, "hydra.run.dir=full"], tmp_path).returncode == 0

    env = {**os.environ, "MMX_DATA": str(tmp_path / "data")}
    victim = subprocess.Popen(
        [MMX, *args, "hydra.run.dir=killed"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while len(epochs_logged(tmp_path / "killed")) < 2 and time.time() < deadline and victim.poll() is None:
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL
    done_before_kill = epochs_logged(tmp_path / "killed")
    assert 2 <= len(done_before_kill) < 6, "the kill must land mid-run"

    resumed = run_mmx(["train", "resume=killed"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    full = json.loads((tmp_path / "full" / "summary.json").read_text())
    killed = json.loads((tmp_path / "killed" / "summary.json").read_text())
    assert killed["final"] == full["final"] and killed["best"] == full["best"]
    assert epochs_logged(tmp_path / "killed") == [1, 2, 3, 4, 5, 6]  # no duplicate rows

    def metric_columns(run):
        with open(run / "metrics.csv", newline="") as handle:
            return [
                {k: v for k, v in row.items() if k not in ("epoch_seconds", "train_images_per_second")}
                for row in csv.DictReader(handle)
            ]

    assert metric_columns(tmp_path / "killed") == metric_columns(tmp_path / "full")


def test_resuming_a_finished_run_changes_nothing(tmp_path, digits_run):
    import shutil

    shutil.copytree(digits_run, tmp_path / "run")
    before = (tmp_path / "run" / "metrics.csv").read_text()
    result = run_mmx(["train", "resume=run"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "already finished" in result.stdout + result.stderr
    assert (tmp_path / "run" / "metrics.csv").read_text() == before
