"""A job that submitit requeues (preemption, or its time limit) continues its own run, under
hydra/launcher=submitit_local, interrupted the ways submitit's own tests interrupt a job: the preemption
signal sent to the job's process (what ``LocalJob._interrupt`` does), and the local controller's own time limit.
Real Slurm is not on this machine; what Slurm adds (sending the signal, requeueing) is the controller's part here."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from helpers import MMX, STOPPABLE, assert_same_run, epochs_recorded, launch, run_mmx, wait_for

pytestmark = pytest.mark.slow  # trains through the command line and submitit

SHORT = STOPPABLE
# About 40 s on one core: longer than the 30 s after which the local controller signals a 1-minute job.
LONG = [*SHORT, "model.width=32", "epochs=32", "schedule.milestones=[16,24]"]


def submitit_sweep(args: list[str], sweep: Path, *launcher: str) -> subprocess.Popen:
    command = [MMX, args[0], "-m", *args[1:], "hydra/launcher=submitit_local", *launcher, f"hydra.sweep.dir={sweep}"]
    return launch(command, sweep.parent)


def job_run(sweep: Path) -> Path:
    (config,) = [p for p in sweep.glob("*/config.yaml")]
    return config.parent


def job_log(sweep: Path) -> tuple[str, str]:
    """(the job's id, its log: every attempt appends to it)."""
    (log,) = sweep.glob(".submitit/*/*_0_log.out")
    return log.parent.name, log.read_text()


def test_a_preempted_job_is_requeued_and_continues_its_own_run(tmp_path):
    assert run_mmx([*SHORT, "hydra.run.dir=full"], tmp_path).returncode == 0
    sweep = tmp_path / "sweep"
    process = submitit_sweep(SHORT, sweep, "hydra.launcher.timeout_min=60")
    wait_for(lambda: any(sweep.glob("*/config.yaml")) and epochs_recorded(job_run(sweep)) >= 1, process)
    time.sleep(0.2)  # into epoch 2
    pid = int((job_run(sweep) / ".lock").read_text().split()[1])  # "process PID on HOST": the job's process
    os.kill(pid, signal.SIGUSR2)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-3000:]

    run = job_run(sweep)
    job, log = job_log(sweep)
    assert "this job is preempted" in log and f"Requeued job {job}" in log
    assert re.search(r"stopped by SIGUSR2 at epoch 2, step \d+ of 44", log)
    assert f"{run}: job {job} was requeued; it continues its run" in log
    assert re.search(rf"resuming {run} from epoch 2, step \d+ of 44", log)
    assert json.loads((run / "summary.json").read_text())["job"] == job
    assert_same_run(run, tmp_path / "full")

    # The controller requeues a job by starting its task again with the same job id: do that by hand.
    def requeue(job_id: str) -> subprocess.CompletedProcess:
        env = {
            **os.environ,
            "SUBMITIT_EXECUTOR": "local",
            "SUBMITIT_LOCAL_JOB_ID": job_id,
            "SUBMITIT_LOCAL_NTASKS": "1",
            "SUBMITIT_LOCAL_NODEID": "0",
            "SUBMITIT_LOCAL_JOB_NUM_NODES": "1",
            "SUBMITIT_LOCAL_GLOBALID": "0",
            "SUBMITIT_LOCAL_LOCALID": "0",
            "MMX_DATA": str(tmp_path / "data"),
        }
        command = [sys.executable, "-u", "-m", "submitit.core._submit", str(sweep / ".submitit" / "%j")]
        return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)

    config = OmegaConf.load(run / "config.yaml")
    config.optim.lr = 0.2  # as if the config files had changed between the preemption and the requeue
    OmegaConf.save(config, run / "config.yaml")
    changed = requeue(job)
    assert changed.returncode == 2 and "Traceback" not in changed.stderr
    assert (
        f"mmx: error: cannot continue {run} in requeued job {job}: its config differs in optim.lr (0.2 -> 0.05) from "
        f"the one it was started with" in changed.stderr
    )
    other_job = sweep / ".submitit" / "12345"  # another job, with the same submission, sent to this folder:
    other_job.mkdir()
    shutil.copy(sweep / ".submitit" / job / f"{job}_submitted.pkl", other_job / "12345_submitted.pkl")
    other = requeue("12345")  # a fresh start over the run's checkpoints is refused
    assert other.returncode == 2 and f"mmx: error: {run} already holds a run; continue it with resume=" in other.stderr


def test_a_job_at_its_time_limit_is_requeued_and_continues_its_own_run(tmp_path):
    """timeout_min=1: the controller sends the signal at 30 s, each attempt's; the run needs more than one attempt."""
    reference = launch([MMX, *LONG, "hydra.run.dir=full"], tmp_path)
    sweep = tmp_path / "sweep"
    process = submitit_sweep(LONG, sweep, "hydra.launcher.timeout_min=1", "+hydra.launcher.max_num_timeout=5")
    _, err = process.communicate(timeout=600)
    assert process.returncode == 0, err[-3000:]
    assert reference.communicate(timeout=600) and reference.returncode == 0

    run = job_run(sweep)
    job, log = job_log(sweep)
    assert "this job is timed-out" in log and f"Requeued job {job}" in log
    assert re.search(r"stopped by SIGUSR2 (at|after) epoch \d+", log)
    assert f"{run}: job {job} was requeued; it continues its run" in log
    assert_same_run(run, tmp_path / "full")
