"""Narrow networks on AVX2 CPU kernels: they train, repeat exactly, and channels_last is refused where it breaks.

``ONEDNN_MAX_CPU_ISA=AVX2`` makes any x86 CPU take the kernels an AVX2 CPU takes, whose channels_last weight
gradient of strided 1x1 convolutions with fewer than 8 input channels corrupts the heap (one thread) or the
gradients (two threads); scripts/onednn_channels_last_crash.py shows it without mmx. 1-channel digits used to
reach that path by accident (a crop's strides read as channels_last), at width 4 (a 4-channel shortcut).
"""

import pytest

from helpers import assert_one_sentence_error, assert_same_run, run_mmx

pytestmark = pytest.mark.slow  # trains through the command line

AVX2 = {"ONEDNN_MAX_CPU_ISA": "AVX2"}
NARROW = ["train", "model.width=4", "trainer.progress=false", "epochs=2", "schedule.milestones=[1]"]


def test_a_width_4_network_trains_with_one_thread_and_repeats_exactly_with_two(tmp_path):
    alone = run_mmx([*NARROW, "hydra.run.dir=alone"], tmp_path, env={**AVX2, "OMP_NUM_THREADS": "1"})
    assert alone.returncode == 0, alone.stderr[-2000:]
    for run in ("first", "second"):
        twice = [*NARROW, "trainer.deterministic=true", f"hydra.run.dir={run}"]
        result = run_mmx(twice, tmp_path, env={**AVX2, "OMP_NUM_THREADS": "2"})
        assert result.returncode == 0, result.stderr[-2000:]
    assert_same_run(tmp_path / "second", tmp_path / "first")


def test_channels_last_on_the_cpu_is_refused_where_its_kernels_break(tmp_path):
    result = run_mmx([*NARROW, "trainer.channels_last=true", "hydra.run.dir=run"], tmp_path)
    assert result.returncode == 2
    assert_one_sentence_error(
        result, "stages.1.0.shortcut has 4 input channels", "uxlfoundation/oneDNN#6035", "trainer.channels_last=false"
    )
    assert not (tmp_path / "run").exists()
    wide = run_mmx([*NARROW, "model.width=8", "trainer.channels_last=true", "hydra.run.dir=wide"], tmp_path, env=AVX2)
    assert wide.returncode == 0, wide.stderr[-2000:]


def test_the_reproduction_script_runs_on_its_own(tmp_path):
    """scripts/onednn_channels_last_crash.py, on the cases that are safe everywhere (1 and 8 channels)."""
    import subprocess
    import sys

    from helpers import REPO

    script = REPO / "scripts" / "onednn_channels_last_crash.py"
    result = subprocess.run(
        [sys.executable, str(script), "--channels", "1", "8", "--steps", "2"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(": ok (relative error") == 2
