"""A full disk or a read-only folder, at any write of a run, ends in one sentence naming the file and its folder:
exit status 2, the previous last.pt intact, no temporary file left, and a run that resumes once the disk has room.

Faults are injected at every kind of write (tests/disk_faults.py, through ``open``), and met for real on a small
tmpfs where this machine lets the tests mount one."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers import TESTS, TINY, assert_one_sentence_error, assert_same_run, run_mmx

pytestmark = pytest.mark.slow  # trains through the command line

ARGS = ["train", *TINY, "trainer.deterministic=true", "epochs=3", "schedule.milestones=[2]"]
FAULTS = TESTS / "disk_faults.py"


def with_faults(args: list[str], cwd: Path, files: str, after: Path | None = None, error: str = "ENOSPC"):
    """``mmx ARGS`` with every write to a file matching ``files`` failing (once ``after`` exists)."""
    env = {**os.environ, "MMX_DATA": str(cwd / "data"), "MMX_FAULT_FILES": files, "MMX_FAULT_ERRNO": error}
    if after is not None:
        env["MMX_FAULT_AFTER"] = str(after)
    command = [sys.executable, str(FAULTS), *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def temporary_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*.tmp")]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    cwd = tmp_path_factory.mktemp("reference")
    assert run_mmx([*ARGS, "hydra.run.dir=run"], cwd).returncode == 0
    metrics = (cwd / "run" / "metrics.csv").read_text().splitlines()
    assert len(metrics) == 4
    return cwd / "run"


# (the files that fail, whether they fail only once epoch 1's last.pt exists, the file the sentence names)
TRAINING_WRITES = {
    "last.pt": ("*/run/checkpoints/.last.pt.*", True, "last.pt could not be written in {run}/checkpoints"),
    "best.pt": ("*/run/checkpoints/.best.pt.*", True, "best.pt could not be written in {run}/checkpoints"),
    "metrics.csv": ("*/run/metrics.csv", True, "metrics.csv could not be written in {run} "),
    "tensorboard": ("*/run/tb/events.out.tfevents.*", True, "could not be written in {run}/tb "),
    "summary.json": ("*/run/.summary.json.*", True, "summary.json could not be written in {run} "),
    "config.yaml": ("*/run/.config.yaml.*", False, "config.yaml could not be written in {run} "),
}


@pytest.mark.parametrize("files, later, names", TRAINING_WRITES.values(), ids=TRAINING_WRITES.keys())
def test_a_full_disk_at_any_write_of_a_run_is_one_sentence_and_the_run_resumes(
    tmp_path, reference, files, later, names
):
    run = tmp_path / "run"
    last = run / "checkpoints" / "last.pt"
    result = with_faults([*ARGS, f"hydra.run.dir={run}"], tmp_path, files, after=last if later else None)
    assert_one_sentence_error(result, "mmx: error: the disk is full: ", names.format(run=run), "free some space, then")
    assert result.stderr.count("\n") == 1, result.stderr  # one line: no log line failed with a traceback either
    assert temporary_files(run) == []
    if not later:  # nothing was trained: the sentence says so
        assert "no checkpoint had been written" in result.stderr and not last.exists()
        return
    assert f"then continue with `mmx train resume={run}`" in result.stderr
    assert torch.load(last, weights_only=True)["epoch"] == 1  # epoch 1's, whole
    resumed = run_mmx(["train", f"resume={run}"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_run(run, reference)


def test_a_read_only_run_folder_is_one_sentence_and_the_run_resumes_once_writable(tmp_path, reference):
    """The folder turns read-only after epoch 1's last.pt (its summary.json is refused), and stays so for a resume
    (which rewrites metrics.csv first); made writable again, the run resumes to the uninterrupted run's end."""
    run = tmp_path / "run"
    last = run / "checkpoints" / "last.pt"
    result = with_faults([*ARGS, f"hydra.run.dir={run}"], tmp_path, f"{run}/*", after=last, error="EROFS")
    assert_one_sentence_error(
        result, f"summary.json could not be written in {run} (Read-only file system;", "make the folder writable, then"
    )
    result = with_faults(["train", f"resume={run}"], tmp_path, f"{run}/*", error="EROFS")  # its lock, first
    assert_one_sentence_error(
        result, f".lock could not be written in {run} (Read-only file system;", "make the folder writable, and run"
    )
    assert temporary_files(run) == []
    assert torch.load(last, weights_only=True)["epoch"] == 1
    resumed = run_mmx(["train", f"resume={run}"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_run(run, reference)


def test_eval_json_and_tables_on_a_full_disk_are_one_sentence_and_keep_the_previous_files(tmp_path, reference):
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    quick = ["eval", f"run={run}", "deformations=false", "fgsm.epsilons=[]", "ood.set=noise", "ood.max_images=10"]
    first = run_mmx(quick, tmp_path)
    assert first.returncode == 0, first.stderr
    before = (run / "eval.json").read_bytes()
    result = with_faults(quick, tmp_path, "*/run/.eval.json.*")
    assert_one_sentence_error(result, f"the disk is full: eval.json could not be written in {run} ")
    assert (run / "eval.json").read_bytes() == before and temporary_files(run) == []

    tables = tmp_path / "tables"
    result = with_faults(["tables", str(run), "--out", str(tables)], tmp_path, f"{tables}/*.md*")
    assert_one_sentence_error(result, "the disk is full: ", f"could not be written in {tables} ")
    assert temporary_files(tables) == []


def mount_tmpfs(where: Path, size: str) -> None:
    where.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"this machine does not let the tests mount a tmpfs ({mounted.stderr.decode().strip()[:80]})")


@pytest.mark.skipif(sys.platform != "linux" or shutil.which("mount") is None, reason="tmpfs is Linux's")
def test_a_real_small_disk_that_fills_up_and_a_read_only_one(tmp_path):
    """A width-16 network's checkpoint is 5.7 MB: 15 MB holds best.pt and last.pt but not a third file beside them,
    so the first write that replaces one (epoch 2's) meets a full disk. Made larger, the run resumes."""
    disk = tmp_path / "disk"
    mount_tmpfs(disk, "15m")
    try:
        args = [*ARGS, "model.width=16"]
        assert run_mmx([*args, "hydra.run.dir=reference"], tmp_path).returncode == 0
        run = disk / "run"
        result = run_mmx([*args, f"hydra.run.dir={run}"], tmp_path)
        assert_one_sentence_error(result, "the disk is full: ", f"could not be written in {run}/checkpoints")
        assert f"continue with `mmx train resume={run}`" in result.stderr and temporary_files(run) == []
        assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["epoch"] == 1

        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        result = run_mmx(["train", f"resume={run}"], tmp_path)
        assert_one_sentence_error(result, f".lock could not be written in {run} (Read-only file system;")

        subprocess.run(["mount", "-o", "remount,rw,size=64m", str(disk)], check=True)
        resumed = run_mmx(["train", f"resume={run}"], tmp_path)
        assert resumed.returncode == 0, resumed.stderr
        assert_same_run(run, tmp_path / "reference")
        assert json.loads((run / "summary.json").read_text())["finished"]
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)
