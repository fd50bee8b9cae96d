"""Sweeps through ``hydra/launcher=submitit_slurm`` on a real one-node Slurm cluster (scripts/slurm_cluster.sh, which
``make test-full`` starts before these tests and stops after them): a plain sweep, ``scontrol requeue``,
``scancel --signal=USR2``, preemption by a job of a higher partition with a grace time and without one, a plain
``scancel``, and a time limit too short to checkpoint. Every requeued job ends bit-identical to an uninterrupted run.
Skipped, with the reason, where no cluster answers."""

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from helpers import MMX, STOPPABLE, assert_one_sentence_error, assert_same_run, epochs_recorded, launch, run_mmx

pytestmark = [pytest.mark.slow, pytest.mark.slurm]

ARGS = [*STOPPABLE, "epochs=6", "schedule.milestones=[3,5]", "trainer.checkpoint_every=5"]
# timeout_min above 10: submitit counts a signal in a job's last 10 minutes as its time limit, not as a preemption
LAUNCHER = ["hydra/launcher=submitit_slurm", "hydra.launcher.timeout_min=20", "hydra.launcher.cpus_per_task=1"]


@pytest.fixture(scope="module", autouse=True)
def cluster():
    """The cluster scripts/slurm_cluster.sh started (SLURM_CONF names it), with an idle node; else skip, saying why."""
    if not os.environ.get("SLURM_CONF") or shutil.which("sinfo") is None:
        pytest.skip("no Slurm cluster: SLURM_CONF is unset (make test-full starts one with scripts/slurm_cluster.sh)")
    states = subprocess.run(["sinfo", "-h", "-N", "-o", "%t"], capture_output=True, text=True, timeout=30)
    if states.returncode != 0 or "idle" not in states.stdout.split():
        pytest.skip(f"the Slurm cluster of {os.environ['SLURM_CONF']} has no idle node: {states.stderr.strip()}")


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The run every job below must end equal to: the same arguments, uninterrupted, outside Slurm."""
    folder = tmp_path_factory.mktemp("reference")
    assert run_mmx([*ARGS, "hydra.run.dir=run"], folder).returncode == 0
    return folder / "run"


def sweep(folder: Path, *extra: str) -> subprocess.Popen:
    return launch([MMX, ARGS[0], "-m", *ARGS[1:], *LAUNCHER, *extra, f"hydra.sweep.dir={folder}"], folder.parent)


def first_job(folder: Path, process: subprocess.Popen) -> tuple[str, Path]:
    """The sweep's job id and run folder, once the run has recorded its first epoch."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        runs = list(folder.glob("*/config.yaml"))
        if runs and epochs_recorded(runs[0].parent) >= 1:
            (job,) = [p.name for p in (folder / ".submitit").iterdir() if p.name.isdigit()]
            return job, runs[0].parent
        assert process.poll() is None, process.communicate()[1][-3000:]
        time.sleep(0.2)
    raise AssertionError("the job recorded no epoch in 3 minutes")


def state(job: str) -> str:
    squeue = ["squeue", "-h", "--states=all", "-j", job, "-o", "%T"]
    return subprocess.run(squeue, capture_output=True, text=True, timeout=30).stdout


def release(job: str) -> None:
    """Once Slurm holds the requeued job (it waits about 2 minutes, Reason=BeginTime), let it start now."""
    deadline = time.monotonic() + 60
    while "PENDING" not in state(job):
        assert time.monotonic() < deadline, f"job {job} was not requeued: {state(job)}"
        time.sleep(0.2)
    subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], check=True, timeout=30)


def job_log(folder: Path, job: str) -> str:
    return "".join(p.read_text() for p in (folder / ".submitit" / job).glob("*_log.*"))


def finish(process: subprocess.Popen) -> str:
    """The sweep's whole output (Hydra logs to stdout), once it has exited 0."""
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-3000:]
    return out + err


def test_a_sweep_of_two_jobs_finishes_as_runs_outside_slurm_do(tmp_path, reference):
    process = sweep(tmp_path / "sweep", "seed=0,1")
    output = finish(process)
    assert "mmx follows the jobs with squeue" in output  # no accounting on this cluster: said once, at submission
    runs = sorted((tmp_path / "sweep").glob("*/summary.json"))
    assert [p.parent.name for p in runs] == ["0_seed=0", "1_seed=1"]
    assert_same_run(tmp_path / "sweep" / "0_seed=0", reference)


@pytest.mark.parametrize(
    "interrupt, partition, said",
    [
        ("scontrol requeue", "low", "stopped by SIGTERM at epoch 2"),
        ("scancel --signal=USR2", "low", "this job is preempted"),
        ("preemption, grace time", "low", "this job is preempted"),
        # Slurm sends the user signal and SIGTERM together: whichever mmx sees first, the job is requeued and continues
        ("preemption, GraceTime=0", "nograce", ("Slurm requeued it itself", "stopped by SIGTERM at epoch 2")),
    ],
)
def test_a_requeued_job_continues_its_own_run_bit_for_bit(tmp_path, reference, interrupt, partition, said):
    process = sweep(tmp_path / "sweep", f"hydra.launcher.partition={partition}")
    job, run = first_job(tmp_path / "sweep", process)
    if interrupt == "scontrol requeue":
        subprocess.run(["scontrol", "requeue", job], check=True, timeout=30)
    elif interrupt == "scancel --signal=USR2":
        subprocess.run(["scancel", "--signal=USR2", job], check=True, timeout=30)
    else:  # a job of the higher partition that needs the whole node
        subprocess.run(["sbatch", "-p", "high", "-n", "2", "-o", "/dev/null", "--wrap", "sleep 2"], check=True)
    release(job)
    finish(process)
    log = job_log(tmp_path / "sweep", job)
    assert any(words in log for words in ((said,) if isinstance(said, str) else said)), log[-3000:]
    assert f"{run}: job {job} was requeued; it continues its run" in log, log[-3000:]
    assert re.search(rf"resuming {run} from epoch 2, step \d+ of 44", log)
    assert_same_run(run, reference)


def test_a_cancelled_job_ends_the_sweep_in_one_sentence_naming_its_run(tmp_path):
    process = sweep(tmp_path / "sweep")
    job, run = first_job(tmp_path / "sweep", process)
    subprocess.run(["scancel", job], check=True, timeout=30)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 2, err[-3000:]
    result = subprocess.CompletedProcess(process.args, process.returncode, "", err)
    assert_one_sentence_error(result, f"job {job} of the sweep was cancelled", f"mmx train resume={run}")
    assert err.splitlines()[-1].startswith(f"mmx: error: job {job} of the sweep was cancelled")


def test_a_time_limit_too_short_to_checkpoint_is_refused_before_submission(tmp_path):
    before = subprocess.run(["squeue", "-h", "--states=all", "-o", "%i"], capture_output=True, text=True).stdout
    process = sweep(tmp_path / "sweep", "hydra.launcher.timeout_min=2", "hydra.launcher.signal_delay_s=90")
    _, err = process.communicate(timeout=120)
    result = subprocess.CompletedProcess(process.args, process.returncode, "", err)
    assert_one_sentence_error(result, "hydra.launcher.timeout_min=2 is too short", "at least 3")
    assert process.returncode == 2
    after = subprocess.run(["squeue", "-h", "--states=all", "-o", "%i"], capture_output=True, text=True).stdout
    assert after == before  # nothing was submitted
