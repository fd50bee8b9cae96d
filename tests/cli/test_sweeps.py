"""Sweeps with -m: one run directory per job, with the basic launcher and with Hydra's submitit launcher."""

import json

import pytest

from helpers import TINY, run_mmx

pytestmark = pytest.mark.slow  # trains or builds through the command line


def test_multirun_over_alpha_gives_one_run_per_value(tmp_path):
    result = run_mmx(
        ["train", "-m", *TINY, "epochs=1", "schedule.milestones=[]", "mixup.alpha=0.5,1", "hydra.sweep.dir=sweep"],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    summaries = [json.loads(p.read_text()) for p in sorted((tmp_path / "sweep").glob("*/summary.json"))]
    assert sorted(s["alpha"] for s in summaries) == [0.5, 1.0]
    assert all(s["finished"] for s in summaries)


def test_a_sweep_runs_through_the_submitit_launcher(tmp_path):
    """The README's local-launcher command, on the CPU: every job runs and writes its run directory."""
    result = run_mmx(
        [
            "train",
            "-m",
            "hydra/launcher=submitit_local",
            "hydra.launcher.timeout_min=10",
            "seed=0,1",
            *TINY,
            "epochs=1",
            "schedule.milestones=[]",
            "hydra.sweep.dir=sweep",
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    summaries = sorted((tmp_path / "sweep").glob("*/summary.json"))
    assert [json.loads(p.read_text())["seed"] for p in summaries] == [0, 1]
    assert all(json.loads(p.read_text())["finished"] for p in summaries)
