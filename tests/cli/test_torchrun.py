"""One training over two processes with torchrun and gloo on the CPU (DistributedDataParallel)."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from helpers import TINY, assert_one_sentence_error, run_mmx

pytestmark = pytest.mark.slow  # trains or builds through the command line

TORCHRUN = str(Path(sys.executable).parent / "torchrun")
ARGS = [*TINY, "trainer.deterministic=true", "epochs=3", "schedule.milestones=[2]"]


def torchrun(args, cwd, **env):
    """``mmx train ARGS`` over two processes, one thread each; ``env`` adds to the environment."""
    command = [TORCHRUN, "--standalone", "--nproc_per_node=2", "-m", "mmx", "train", *args]
    env = {**os.environ, "MMX_DATA": str(cwd / "data"), "OMP_NUM_THREADS": "1", **env}
    return subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process, timeout=300):
    stdout, stderr = process.communicate(timeout=timeout)
    assert process.returncode == 0, stderr[-3000:]
    return stdout + stderr


def epochs_logged(run):
    if not (run / "metrics.csv").exists():
        return []
    with open(run / "metrics.csv", newline="") as handle:
        return [int(row["epoch"]) for row in csv.DictReader(handle)]


def test_two_processes_write_one_run_with_identical_parameters_and_the_loss_falls(tmp_path):
    output = finish(torchrun([*ARGS, "hydra.run.dir=run"], tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # one set of artifacts
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["parameters_in_sync"] is True and summary["finished"]
    with open(tmp_path / "run" / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    assert output.count("epoch 1/3") == 1  # only rank 0 logs
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert state["world_size"] == 2 and len(state["process_rng"]) == 2
    mixers = [rng["mixer"]["device"] for rng in state["process_rng"]]
    assert not torch.equal(*mixers)  # each process mixes with its own draws
    assert_one_sentence_error(
        run_mmx(["train", "resume=run"], tmp_path), "trained by 2 process(es)", "--nproc_per_node=2"
    )


def test_a_width_4_network_trains_on_avx2_kernels_and_the_processes_leave_one_folder_and_one_done_line(tmp_path):
    """One thread per process on the kernels of an AVX2 CPU (see tests/cli/test_layout.py): 1-channel digits at
    width 4 used to corrupt the heap here. Nothing is left in the temp folder, and only rank 0 says "done"."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    process = torchrun(
        [*ARGS, "model.width=4", "epochs=1", "schedule.milestones=[]", "hydra.run.dir=run"],
        tmp_path,
        ONEDNN_MAX_CPU_ISA="AVX2",
        TMPDIR=str(scratch),
    )
    output = finish(process)
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["finished"]
    assert output.count("done: final test acc") == 1
    assert not list(scratch.glob("mmx-*"))  # torch's own (inductor's cache, torchelastic's) may stay


def test_a_killed_two_process_run_resumes_to_the_same_result(tmp_path):
    finish(torchrun([*ARGS, "hydra.run.dir=full"], tmp_path))
    victim = torchrun([*ARGS, "hydra.run.dir=killed"], tmp_path)
    deadline = time.time() + 120
    checkpoint = tmp_path / "killed" / "checkpoints" / "last.pt"  # renamed into place: complete once seen
    while not checkpoint.exists() and time.time() < deadline and victim.poll() is None:
        time.sleep(0.02)
    # torch elastic starts its workers in sessions of their own: kill them and torchrun at once
    workers = Path(f"/proc/{victim.pid}/task/{victim.pid}/children").read_text().split()
    for pid in [*map(int, workers), victim.pid]:
        os.kill(pid, signal.SIGKILL)
    victim.communicate()
    assert 1 <= len(epochs_logged(tmp_path / "killed")) < 3, (
        f"the kill must land mid-run: {epochs_logged(tmp_path / 'killed')}"
    )
    finish(torchrun(["resume=killed"], tmp_path))
    full = json.loads((tmp_path / "full" / "summary.json").read_text())
    killed = json.loads((tmp_path / "killed" / "summary.json").read_text())
    assert killed["final"] == full["final"] and killed["best"] == full["best"]
    assert epochs_logged(tmp_path / "killed") == [1, 2, 3]


def test_the_global_batch_must_split_over_the_processes(tmp_path):
    process = torchrun([*ARGS, "batch_size=99", "hydra.run.dir=run"], tmp_path)
    process.communicate(timeout=300)
    assert process.returncode != 0
