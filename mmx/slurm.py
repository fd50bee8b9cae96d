"""Sweeps under real Slurm: what mmx adds to Hydra's submitit launcher for what a real cluster does.

``hydra/launcher=submitit_slurm`` launches through :func:`launch_checked` (:func:`checked_sweeps`), and a job hands
its stop signal on through :func:`requeued_by_slurm`: four additions to Hydra's own launcher, each
found on a real Slurm 22.05 cluster (scripts/slurm_cluster.sh) rather than submitit's local imitation:

- a ``timeout_min`` too short to reach the first checkpoint before the time-limit signal is refused before anything
  is submitted;
- without accounting (no slurmdbd) ``sacct`` fails on every poll and submitit never learns that a job was
  cancelled: the sweep waited forever. Jobs are then followed with ``squeue``, which knows every job the controller
  still holds (``MinJobAge`` seconds after it ends), and the sweep says so in one line when it starts;
- a cancelled job (``scancel``) ends the sweep with one sentence naming its run folder, exit 2, instead of a
  traceback;
- a job that Slurm requeued itself (preemption with ``GraceTime=0`` sends the signal and requeues at once) makes
  submitit's own ``scontrol requeue`` fail; the job then exits as a requeued job does (:func:`requeued_by_slurm`),
  instead of reporting the failure as the job's result and failing the sweep.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

from submitit.core.utils import UncompletedJobError
from submitit.slurm import slurm as submitit_slurm

from mmx.errors import UserError

log = logging.getLogger("mmx")

# Seconds a job needs from its start to its first checkpoint beyond the time-limit signal's lead (start-up, data,
# one step, the checkpoint write): the least that ``timeout_min`` must leave.
FIRST_CHECKPOINT_S = 60
# What squeue calls a job Slurm holds for another start (it is not finished).
WAITING = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "PREEMPTED", "COMPLETING", "CONFIGURING"}


def accounting_enabled() -> bool:
    """Whether this cluster keeps accounting (``sacct`` answers): ``AccountingStorageType`` is not ``none``."""
    try:
        config = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return True  # no scontrol to ask: leave submitit to sacct
    for line in config.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "AccountingStorageType":
            return value.strip() != "accounting_storage/none"
    return True


def job_state(job_id: str) -> str | None:
    """The job's state as the controller holds it (``squeue``), or None once it has forgotten the job."""
    result = subprocess.run(
        ["squeue", "-h", "--states=all", "-j", str(job_id), "-o", "%T"], capture_output=True, text=True, timeout=30
    )
    return result.stdout.strip().splitlines()[0] if result.returncode == 0 and result.stdout.strip() else None


def requeued_by_slurm(job_id: str) -> bool:
    """Whether Slurm has put the job back in its queue itself (it waits for another start)."""
    return job_state(job_id) in WAITING


class SqueueWatcher(submitit_slurm.SlurmInfoWatcher):
    """submitit's watcher of job states, asking ``squeue`` instead of ``sacct`` (for clusters without accounting):
    the same columns under sacct's names, so that submitit reads them as it reads sacct's."""

    def _make_command(self) -> list[str] | None:
        command = super()._make_command()
        if command is None:
            return None
        jobs = sorted({command[i + 1] for i, word in enumerate(command) if word == "-j"})
        return ["squeue", "--states=all", "-o", "%i|%T|%N", "-j", ",".join(jobs)]

    def read_info(self, string) -> dict:
        text = string.decode() if isinstance(string, bytes) else string
        header, *rows = text.splitlines() or [""]
        names = {"JOBID": "JobID", "STATE": "State", "NODELIST": "NodeList"}
        named = "|".join(names.get(name, name) for name in header.split("|"))
        return super().read_info("\n".join([named, *rows]))


def checked_sweeps() -> None:
    """Make Hydra's submitit Slurm launcher launch through :func:`launch_checked`, in this process (the sweep's).

    A wrapper of the launcher's method rather than a launcher of mmx's own: Hydra takes launcher classes only from
    its ``hydra_plugins`` namespace, which an editable install of mmx cannot add to. Submitted jobs run Hydra's
    launcher unchanged."""
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher

    if getattr(SlurmLauncher.launch, "checked_by_mmx", False):
        return
    launch = SlurmLauncher.launch

    def checked(self, job_overrides, initial_job_idx):
        return launch_checked(self.params, lambda: launch(self, job_overrides, initial_job_idx))

    checked.checked_by_mmx = True
    SlurmLauncher.launch = checked


def launch_checked(params: dict, launch: Callable[[], Any]) -> Any:
    """Run Hydra's submitit launch (``launch``) of a sweep: its ``params`` checked before anything is submitted, its
    jobs followed with squeue where the cluster keeps no accounting, a cancelled job reported in one sentence."""
    try:
        check_time_limit(params)
    except UserError as error:  # before Hydra's report of a launcher's exception (a traceback)
        print(f"mmx: error: {error}", file=sys.stderr)
        sys.exit(2)
    if not accounting_enabled():
        submitit_slurm.SlurmJob.watcher = SqueueWatcher(delay_s=submitit_slurm.SlurmJob.watcher._delay_s)
        log.info(
            "Slurm here keeps no accounting (AccountingStorageType=accounting_storage/none): mmx follows the jobs "
            "with squeue, which forgets a job MinJobAge seconds after it ends; run slurmdbd to follow them longer"
        )
    try:
        return launch()
    except UncompletedJobError as error:
        cancelled = cancelled_run(str(error), Path(str(params["submitit_folder"])).parents[1])
        if cancelled is None:
            raise
        print(f"mmx: error: {cancelled}", file=sys.stderr)
        sys.exit(2)


def check_time_limit(params: dict) -> None:
    """Refuse a ``timeout_min`` that leaves less than the first checkpoint needs before the time-limit signal."""
    timeout_min, delay_s = params.get("timeout_min"), params.get("signal_delay_s", 120)
    if timeout_min is not None and timeout_min * 60 < delay_s + FIRST_CHECKPOINT_S:
        raise UserError(
            f"hydra.launcher.timeout_min={timeout_min} is too short: Slurm signals a job "
            f"hydra.launcher.signal_delay_s={delay_s} s before its time limit, which leaves less than the "
            f"{FIRST_CHECKPOINT_S} s a job needs to start and write its first checkpoint; set timeout_min to at least "
            f"{-(-(delay_s + FIRST_CHECKPOINT_S) // 60)} (or lower signal_delay_s)"
        )


def cancelled_run(message: str, sweep: Path) -> str | None:
    """One sentence for submitit's error about a job that ended without a result because it was cancelled, naming
    the run folder (under ``sweep``) that the job trained in."""
    found = re.search(r"Job (\S+) \(task.*\(state: CANCELLED", message, re.DOTALL)
    if found is None:
        return None
    job = found.group(1)
    folder = run_of_job(sweep, job)
    where = f"continue its run with `mmx train resume={folder}`" if folder else "it had not written a run folder yet"
    return (
        f"job {job} of the sweep was cancelled (scancel) before it finished: {where}; the sweep's other jobs were "
        f"not waited for"
    )


def run_of_job(sweep: Path, job: str) -> Path | None:
    """The run folder under ``sweep`` that submitit job ``job`` trains in (its summary.json names the job)."""
    for summary in sorted(sweep.glob("*/summary.json")):
        try:
            if str(json.loads(summary.read_text()).get("job")) == job:
                return summary.parent
        except (OSError, ValueError, AttributeError):
            continue
    return None
