"""What the tests share: running ``mmx`` as a user would (in a subprocess, or its entry point in this
process), and the sizes that keep a run quick on 2 CPU cores."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

MMX = str(Path(sys.executable).parent / "mmx")
TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent

# Small enough for 2 CPU cores: a width-8 PreActResNet18 trains a digits epoch in well under a second.
TINY = ["model.width=8", "trainer.progress=false"]


def run_mmx(args: list[str], cwd: Path, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """The installed ``mmx`` command in a subprocess, with ``MMX_DATA`` under ``cwd``."""
    full_env = {**os.environ, "MMX_DATA": str(cwd / "data"), **(env or {})}
    return subprocess.run([MMX, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)


CHECKSUMMED_MMX = """
import sys, pytest
sys.path.insert(0, {tests!r})
from fake_datasets import use_checksums
from pathlib import Path
from mmx.cli import main
with pytest.MonkeyPatch.context() as patch:
    use_checksums(patch, Path({root!r}), {variant!r})
    sys.exit(main(sys.argv[1:]))
"""


def run_mmx_on_generated(
    args: list[str], cwd: Path, root: Path, variant: str, timeout: float = 300
) -> subprocess.CompletedProcess:
    """``mmx`` in a subprocess that first registers the generated ``variant`` files' MD5s under ``root`` where
    torchvision keeps the release's, so its integrity checks run on them unchanged."""
    script = CHECKSUMMED_MMX.format(tests=str(TESTS), root=str(root), variant=variant)
    env = {**os.environ, "MMX_DATA": str(root)}
    return subprocess.run(
        [sys.executable, "-c", script, *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=timeout
    )


def mmx_in_process(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``mmx.cli.main`` in this process (a second per call instead of a subprocess's ten), same exit code and stderr."""
    from mmx.cli import main

    out, err = io.StringIO(), io.StringIO()
    previous = Path.cwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(args))
    finally:
        os.chdir(previous)
    return subprocess.CompletedProcess(["mmx", *args], code, out.getvalue(), err.getvalue())


def assert_one_sentence_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    """Non-zero exit, no traceback, and an error naming every fragment."""
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


# --- runs stopped and continued (tests/cli/test_stops.py, test_requeue.py, test_full_disk.py) ---

# 44 steps of 32 digits per epoch: long enough that a signal sent just after an epoch's record lands inside the next.
STOPPABLE = [
    "train",
    *TINY,
    "model.width=16",
    "trainer.deterministic=true",
    "batch_size=32",
    "epochs=4",
    "schedule.milestones=[2,3]",
]


def launch(command: list[str], cwd: Path, **env) -> subprocess.Popen:
    """``command`` in a subprocess with run_mmx's environment (the same threads: the same floating-point sums)."""
    env = {**os.environ, "MMX_DATA": str(cwd / "data"), **env}
    return subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def kill_when(args: list[str], cwd: Path, ready) -> None:
    """Train ``args`` in a subprocess and SIGKILL it as soon as ``ready()`` holds (or after two minutes)."""
    env = {**os.environ, "MMX_DATA": str(cwd / "data")}
    victim = subprocess.Popen([MMX, *args], cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not ready() and time.time() < deadline and victim.poll() is None:
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL


def wait_for(ready, process: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while not ready() and time.time() < deadline and process.poll() is None:
        time.sleep(0.02)
    assert ready(), "the run never got there"


def epochs_recorded(run: Path) -> int:
    try:
        return json.loads((run / "summary.json").read_text())["epochs_done"]
    except (OSError, ValueError):
        return 0


def metric_rows(run: Path) -> list[dict]:
    """metrics.csv without its timing columns (which differ between any two runs)."""
    with open(run / "metrics.csv", newline="") as handle:
        return [
            {k: v for k, v in row.items() if k not in ("epoch_seconds", "train_images_per_second")}
            for row in csv.DictReader(handle)
        ]


def assert_same_run(run: Path, reference: Path) -> None:
    """The same final and best numbers, every metrics row, and bit-identical final weights."""
    ours, theirs = (json.loads((r / "summary.json").read_text()) for r in (run, reference))
    assert ours["finished"] and ours["stopped"] is None
    assert ours["final"] == theirs["final"] and ours["best"] == theirs["best"]
    assert metric_rows(run) == metric_rows(reference)
    import torch  # here: most tests that import helpers never load a checkpoint

    weights = [torch.load(r / "checkpoints" / "last.pt", weights_only=True)["model"] for r in (run, reference)]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


# --- mixing at a network's points (tests/test_mixing.py, test_mixing_family.py) ---


def capture(model, x, at_point=None):
    """Forward pass recording the hidden state seen by each stage (after any mixing)."""
    seen = {}

    def hook(k, h):
        h = at_point(k, h) if at_point else h
        seen[k] = h.detach().clone()
        return h

    out = model(x, at_point=hook)
    return out, seen
