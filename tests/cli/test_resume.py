"""A run killed with SIGKILL and resumed ends exactly as an uninterrupted one (CPU, deterministic)."""

import csv
import json
import os
import signal
import subprocess
import sys

import pytest

from helpers import TINY, assert_one_sentence_error, assert_same_run, kill_when, run_mmx

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


@pytest.mark.parametrize(
    "args",
    [ARGS, GRU_TWO_POINTS, [*ARGS, "dataset.val_size=0.1"]],
    ids=["preactresnet", "gru_two_points", "validation_split"],
)
def test_resume_after_sigkill_matches_an_uninterrupted_run(tmp_path, args):
    assert run_mmx([*args, "hydra.run.dir=full"], tmp_path).returncode == 0
    kill_when([*args, "hydra.run.dir=killed"], tmp_path, lambda: len(epochs_logged(tmp_path / "killed")) >= 2)
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


def test_a_run_killed_in_its_first_epoch_is_no_dead_end(tmp_path):
    """Killed before its first checkpoint (an out-of-memory kill, a power cut in a long first epoch): starting it
    again in its folder is refused as training over a run, and points at resume=, which starts it again from epoch 1
    with its saved config, to the numbers of a run never killed."""
    first = [*ARGS[:-2], "model.width=8", "epochs=2", "schedule.milestones=[1]", "batch_size=8"]  # 179 steps an epoch
    assert run_mmx([*first, "hydra.run.dir=full"], tmp_path).returncode == 0
    killed = tmp_path / "killed"
    kill_when([*first, "hydra.run.dir=killed"], tmp_path, (killed / "metrics.csv").exists)
    assert (killed / "config.yaml").exists() and not (killed / "checkpoints" / "last.pt").exists()
    again = run_mmx([*first, "hydra.run.dir=killed"], tmp_path)
    assert_one_sentence_error(again, "already holds a run", "resume=")
    resumed = run_mmx(["train", "resume=killed"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "had no checkpoint yet; it starts again from epoch 1 with its saved config" in resumed.stdout
    assert_same_run(killed, tmp_path / "full")


def test_resuming_a_finished_run_changes_nothing(tmp_path, digits_run):
    import shutil

    shutil.copytree(digits_run, tmp_path / "run")
    before = (tmp_path / "run" / "metrics.csv").read_text()
    result = run_mmx(["train", "resume=run"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "already finished" in result.stdout + result.stderr
    assert (tmp_path / "run" / "metrics.csv").read_text() == before


EVERY_THIRD = [*ARGS[:-2], "epochs=8", "schedule.milestones=[4,7]", "trainer.eval_every=3"]


def rows(run):
    with open(run / "metrics.csv", newline="") as handle:
        return {int(row["epoch"]): row for row in csv.DictReader(handle)}


def test_eval_every_scores_the_epochs_a_run_scoring_all_would_and_resumes_exactly(tmp_path):
    """trainer.eval_every=3 over 8 epochs records epochs 3, 6 and 8 (the last), each as the run that scores every
    epoch scores it (evaluation draws no random numbers); its training loss is the mean over the block's epochs,
    and a kill between records resumes from the last one to the same end."""
    assert run_mmx([*EVERY_THIRD, "trainer.eval_every=1", "hydra.run.dir=all"], tmp_path).returncode == 0
    assert run_mmx([*EVERY_THIRD, "hydra.run.dir=full"], tmp_path).returncode == 0
    every, third = rows(tmp_path / "all"), rows(tmp_path / "full")
    assert list(third) == [3, 6, 8]
    for epoch, block in ((3, [1, 2, 3]), (6, [4, 5, 6]), (8, [7, 8])):
        for column in ("lr", "test_acc", "test_nll", "test_ece", "test_top5"):
            assert third[epoch][column] == every[epoch][column], (epoch, column)
        mean = sum(float(every[e]["train_loss"]) for e in block) / len(block)  # equal steps per epoch
        assert abs(float(third[epoch]["train_loss"]) - mean) < 1e-6
    summary = json.loads((tmp_path / "full" / "summary.json").read_text())
    assert summary["final"] == json.loads((tmp_path / "all" / "summary.json").read_text())["final"]
    assert summary["best"]["epoch"] in (3, 6, 8)

    checkpoint = tmp_path / "killed" / "checkpoints" / "last.pt"
    kill_when([*EVERY_THIRD, "hydra.run.dir=killed"], tmp_path, checkpoint.exists)
    assert epochs_logged(tmp_path / "killed") == [3], "the kill must land between the first and second record"
    resumed = run_mmx(["train", "resume=killed"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "from epoch 3" in resumed.stderr + resumed.stdout
    killed = rows(tmp_path / "killed")
    assert list(killed) == [3, 6, 8]
    for epoch in killed:
        for column in ("lr", "train_loss", "train_acc", "test_acc", "test_nll"):
            assert killed[epoch][column] == third[epoch][column], (epoch, column)


STOPPING_MMX = """
import os, signal, sys
from mmx.cli import main
from mmx.run_dir import RunDir

method, epoch, nth, how = {method!r}, {epoch}, {nth}, {how!r}
original, calls = getattr(RunDir, method), []

def stop_at_the_chosen_write(self, state, *rest):
    at = state["epoch"] if method == "save_checkpoint" else state["epochs_done"]
    calls.append(at)
    if at == epoch and calls.count(at) == nth:
        if how == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        raise KeyboardInterrupt  # as Ctrl-C would, just before this write
    return original(self, state, *rest)

setattr(RunDir, method, stop_at_the_chosen_write)
sys.exit(main(sys.argv[1:]))
"""

STEADY = [*ARGS[1:-2], "epochs=3", "schedule.milestones=[2]"]  # the test error falls at every epoch here


def stop_before(method: str, epoch: int, nth: int, how: str, run: str, cwd) -> subprocess.CompletedProcess:
    """``mmx train`` into ``run``, stopped (SIGKILL, or Ctrl-C) just before the ``nth`` call at ``epoch`` of
    RunDir.``method``: an instant between two of one record's files that no timing could hit reliably."""
    script = STOPPING_MMX.format(method=method, epoch=epoch, nth=nth, how=how)
    env = {**os.environ, "MMX_DATA": str(cwd / "data")}
    args = ["train", *STEADY, f"hydra.run.dir={run}"]
    return subprocess.run(
        [sys.executable, "-c", script, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_kills_between_a_records_files_lose_neither_the_best_checkpoint_nor_the_summary(tmp_path):
    """Each epoch writes metrics.csv's row, best.pt (when it improved), last.pt and summary.json. last.pt is the one
    a resume starts from, so best.pt is written before it and summary.json after: a SIGKILL between any two leaves a
    run that resumes to the uninterrupted run's summary and best.pt, and a Ctrl-C there still writes the summary of
    the checkpoint it leaves."""
    import torch

    assert run_mmx(["train", *STEADY, "hydra.run.dir=full"], tmp_path).returncode == 0
    full = json.loads((tmp_path / "full" / "summary.json").read_text())
    assert [full["best"]["epoch"], full["final"]["epoch"]] == [3, 3], "every epoch must improve for this test"

    def best_epoch(run):
        return torch.load(tmp_path / run / "checkpoints" / "best.pt", weights_only=True)["epoch"]

    # between best.pt and last.pt of epoch 2 (its second checkpoint write)
    killed = stop_before("save_checkpoint", 2, 2, "kill", "between_checkpoints", tmp_path)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert best_epoch("between_checkpoints") == 2  # an epoch past last.pt's, which the resume trains again
    # between last.pt and summary.json of the final epoch
    killed = stop_before("write_summary", 3, 1, "kill", "before_summary", tmp_path)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert json.loads((tmp_path / "before_summary" / "summary.json").read_text())["epochs_done"] == 2

    for run in ("between_checkpoints", "before_summary"):
        resumed = run_mmx(["train", f"resume={run}"], tmp_path)
        assert resumed.returncode == 0, resumed.stderr
        summary = json.loads((tmp_path / run / "summary.json").read_text())
        assert summary["finished"] and summary["final"] == full["final"] and summary["best"] == full["best"], run
        assert best_epoch(run) == 3 and epochs_logged(tmp_path / run) == [1, 2, 3]
    assert "summary.json rewritten from the final checkpoint" in resumed.stderr + resumed.stdout

    interrupted = stop_before("write_summary", 2, 1, "ctrl-c", "ctrl_c", tmp_path)
    assert interrupted.returncode == 130 and "Traceback" not in interrupted.stderr, interrupted.stderr
    assert "the last checkpoint is" in interrupted.stderr
    summary = json.loads((tmp_path / "ctrl_c" / "summary.json").read_text())
    assert summary["epochs_done"] == 2 and summary["stopped"].startswith("interrupted") and not summary["finished"]
    assert summary["best"] == torch.load(tmp_path / "ctrl_c" / "checkpoints" / "last.pt", weights_only=True)["best"]
