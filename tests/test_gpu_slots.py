"""cuda:free: one run per GPU through file locks, and sweeps through Hydra's submitit launcher."""
import json
import threading
import time

import pytest

from conftest import TINY, assert_one_sentence_error, run_mmx
from mmx import gpu_slots
from mmx.errors import UserError


def test_runs_claim_distinct_gpus_and_wait_when_all_are_held(tmp_path, monkeypatch):
    monkeypatch.setenv("MMX_GPU_LOCK_DIR", str(tmp_path))
    claimed = []
    with gpu_slots.claim("cuda:free", gpus=2) as first, gpu_slots.claim("cuda:free", gpus=2) as second:
        assert {first, second} == {"cuda:0", "cuda:1"}

        def third_run():
            with gpu_slots.claim("cuda:free", gpus=2, poll_seconds=0.02) as device:
                claimed.append((device, time.monotonic()))

        waiter = threading.Thread(target=third_run)
        waiter.start()
        time.sleep(0.3)
        assert not claimed  # both GPUs busy: it waits
        released = time.monotonic()
    waiter.join(timeout=5)
    assert claimed and claimed[0][0] in ("cuda:0", "cuda:1") and claimed[0][1] >= released
    with gpu_slots.claim("cuda:1") as device:  # any other device name passes through untouched
        assert device == "cuda:1"


def test_cuda_free_is_refused_without_gpus_or_under_torchrun(tmp_path):
    with pytest.raises(UserError, match="drop it under torchrun"):
        with gpu_slots.claim("cuda:free", world_size=2, gpus=2):
            pass
    assert_one_sentence_error(run_mmx(["train", *TINY, "trainer.device=cuda:free"], tmp_path),
                              "trainer.device=cuda:free but no CUDA device is visible")


def test_a_sweep_runs_through_the_submitit_launcher(tmp_path):
    """The README's local-launcher command, on the CPU: every job runs and writes its run directory."""
    result = run_mmx(["train", "-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10", "seed=0,1",
                      *TINY, "epochs=1", "schedule.milestones=[]", "hydra.sweep.dir=sweep"], tmp_path)
    assert result.returncode == 0, result.stderr
    summaries = sorted((tmp_path / "sweep").glob("*/summary.json"))
    assert [json.loads(p.read_text())["seed"] for p in summaries] == [0, 1]
    assert all(json.loads(p.read_text())["finished"] for p in summaries)
