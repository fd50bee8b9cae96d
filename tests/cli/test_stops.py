"""SIGTERM is a clean stop on a step boundary, and checkpoints inside epochs (trainer.checkpoint_every) resume bit for
bit: on the CPU with trainer.deterministic=true a run stopped or killed mid-epoch ends as an uninterrupted one."""

import json
import re
import signal
import sys
import time
from pathlib import Path

import pytest
import torch

from helpers import (
    MMX,
    STOPPABLE,
    TINY,
    assert_one_sentence_error,
    assert_same_run,
    epochs_recorded,
    launch,
    mmx_in_process,
    run_mmx,
    wait_for,
)

pytestmark = pytest.mark.slow  # trains through the command line

ARGS = STOPPABLE
WHERE = re.compile(r"at epoch (\d+), step (\d+) of (\d+)")
TORCHRUN = str(Path(sys.executable).parent / "torchrun")


def test_sigterm_inside_an_epoch_checkpoints_that_step_and_the_resume_ends_as_an_uninterrupted_run(tmp_path):
    assert run_mmx([*ARGS, "hydra.run.dir=full"], tmp_path).returncode == 0
    run = tmp_path / "stopped"
    victim = launch([MMX, *ARGS, f"hydra.run.dir={run}"], tmp_path)
    wait_for(lambda: epochs_recorded(run) >= 1, victim)
    time.sleep(0.2)  # into epoch 2's steps
    victim.send_signal(signal.SIGTERM)
    _, err = victim.communicate(timeout=120)

    assert victim.returncode == 128 + signal.SIGTERM, err
    last = run / "checkpoints" / "last.pt"
    line = err.strip().splitlines()[-1]
    assert line.startswith("mmx: stopped by SIGTERM at epoch 2, step ") and "Traceback" not in err
    assert line.endswith(f", after writing {last}; continue with `mmx train resume={run}`")
    epoch, step, steps = map(int, WHERE.search(line).groups())
    assert (epoch, steps) == (2, 44) and 1 <= step < steps  # inside the epoch, not at its end
    summary = json.loads((run / "summary.json").read_text())
    assert (
        summary["stopped"] == f"interrupted (SIGTERM) at epoch 2, step {step} of 44, after a checkpoint of that state"
    )
    assert not summary["finished"] and summary["epochs_done"] == 1
    state = torch.load(last, weights_only=True)
    assert state["partial"]["epoch"] == 2 and state["partial"]["step"] == step
    brief = run_mmx(["tables", str(run), "--brief"], tmp_path)
    assert brief.returncode == 0 and "interrupted" in brief.stdout, brief.stderr

    resumed = run_mmx(["train", f"resume={run}"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {run} from epoch 2, step {step} of 44" in resumed.stdout + resumed.stderr
    assert_same_run(run, tmp_path / "full")


def test_a_run_stopped_inside_its_first_epoch_is_listed_as_interrupted_and_resumes(tmp_path):
    run = tmp_path / "run"
    victim = launch([MMX, *ARGS, "epochs=2", "schedule.milestones=[1]", f"hydra.run.dir={run}"], tmp_path)
    wait_for(lambda: (run / "tb").is_dir(), victim)  # the metrics log opens just before the first step
    time.sleep(0.2)
    victim.send_signal(signal.SIGTERM)
    _, err = victim.communicate(timeout=120)
    assert victim.returncode == 143 and "mmx: stopped by SIGTERM at epoch 1, step " in err, err
    brief = run_mmx(["tables", str(run), "--brief"], tmp_path)
    assert brief.returncode == 0, brief.stderr
    assert re.search(r" 0/2 .* interrupted +run$", brief.stdout, re.MULTILINE), brief.stdout
    resumed = run_mmx(["train", f"resume={run}"], tmp_path)
    assert resumed.returncode == 0 and "from epoch 1, step " in resumed.stdout + resumed.stderr, resumed.stderr


# The GRU draws two of its three mixing points per step; with a validation split and trainer.eval_every=2, a
# checkpoint inside epoch 3 also carries epoch 2, trained but not yet recorded.
GRU = ["train", "model=gru", "model.hidden=32", "mixup.points_per_step=2", "trainer.progress=false"]
CHECKPOINTED = {
    "preactresnet": ARGS,
    "gru_two_points": [*GRU, "trainer.deterministic=true", "batch_size=32", "epochs=4"],
    "eval_every_2_validation": [*ARGS, "trainer.eval_every=2", "dataset.val_size=0.1"],
    # the mixing family: half the batches unmixed (a coin on the host), boxes on feature maps, noise the size of a
    # hidden state, a second half of the batch
    "cutmix_half_the_batches": [*ARGS, "mixup=cutmix", "mixup.probability=0.5"],
    "manifold_cutmix": [*ARGS, "mixup=manifold_cutmix"],
    "nfm": [*ARGS, "mixup=nfm"],
    "regmixup": [*ARGS, "mixup=regmixup"],
}


@pytest.mark.parametrize("args", CHECKPOINTED.values(), ids=CHECKPOINTED.keys())
def test_a_sigkill_after_a_mid_epoch_checkpoint_resumes_bit_for_bit(tmp_path, args):
    """The reference run writes no mid-epoch checkpoint: writing them changes nothing either."""
    assert run_mmx([*args, "hydra.run.dir=full"], tmp_path).returncode == 0
    run = tmp_path / "killed"
    victim = launch([MMX, *args, "trainer.checkpoint_every=5", f"hydra.run.dir={run}"], tmp_path)
    log = run / "train.log"
    wait_for(lambda: log.exists() and len(re.findall(r"checkpoint at epoch [23], step", log.read_text())) >= 2, victim)
    victim.send_signal(signal.SIGKILL)
    victim.communicate()
    assert epochs_recorded(run) < 4

    resumed = run_mmx(["train", f"resume={run}"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert re.search(rf"resuming {run} from epoch [23], step \d+ of", resumed.stdout + resumed.stderr)
    assert_same_run(run, tmp_path / "full")


def test_a_checkpoint_every_few_minutes_is_written_inside_the_epoch(tmp_path):
    """0.001 min (60 ms): due every few steps by the clock, and the run still ends as it should."""
    result = run_mmx([*ARGS, "epochs=1", "schedule.milestones=[]", "trainer.checkpoint_every=0.001min"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(re.findall(r"checkpoint at epoch 1, step \d+ of 44", result.stdout + result.stderr)) >= 2
    assert json.loads((tmp_path / "runs").glob("*/*/summary.json").__next__().read_text())["finished"]


@pytest.mark.parametrize("value", ["0", "-3", "2.5", "abc", "0min"])
def test_checkpoint_every_must_be_steps_or_minutes(tmp_path, value):
    assert_one_sentence_error(
        mmx_in_process(["train", f"trainer.checkpoint_every={value}"], tmp_path),
        f"trainer.checkpoint_every={value} is not allowed",
        "a number of steps (e.g. 500) or of minutes (e.g. 30min)",
    )


def test_under_torchrun_every_process_stops_at_the_same_step_and_the_resume_matches(tmp_path):
    args = [*TINY, "trainer.deterministic=true", "epochs=3", "schedule.milestones=[2]", "trainer.finite_check_every=4"]

    def torchrun(*extra):
        command = [TORCHRUN, "--standalone", "--nproc_per_node=2", "-m", "mmx", "train", *args, *extra]
        return launch(command, tmp_path, OMP_NUM_THREADS="1")

    full = torchrun("hydra.run.dir=full")
    assert full.communicate(timeout=300) and full.returncode == 0
    run = tmp_path / "stopped"
    victim = torchrun(f"hydra.run.dir={run}")
    wait_for(lambda: epochs_recorded(run) >= 1, victim)
    time.sleep(0.15)
    victim.send_signal(signal.SIGTERM)  # torchrun passes it on to both processes
    _, err = victim.communicate(timeout=120)
    said = [line for line in err.splitlines() if line.startswith("mmx: stopped by SIGTERM")]
    assert len(said) == 1, err[-3000:]  # the main process says it, once
    step = int(WHERE.search(said[0]).group(2))
    assert step % 4 == 0  # agreed where the loss check syncs anyway
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert state["partial"]["step"] == step and len(state["process_rng"]) == 2
    resumed = torchrun(f"resume={run}")
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err[-3000:]
    ours, theirs = (json.loads((r / "summary.json").read_text()) for r in (run, tmp_path / "full"))
    assert ours["final"] == theirs["final"] and ours["best"] == theirs["best"] and ours["parameters_in_sync"]
