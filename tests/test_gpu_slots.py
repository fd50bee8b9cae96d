"""cuda:free: one run per GPU through file locks, and sweeps through Hydra's submitit launcher."""

import threading
import time

import pytest

from mmx import gpu_slots
from mmx.errors import UserError

from helpers import TINY, assert_one_sentence_error, run_mmx


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
    assert_one_sentence_error(
        run_mmx(["train", *TINY, "trainer.device=cuda:free"], tmp_path),
        "trainer.device=cuda:free but no CUDA device is visible",
    )
