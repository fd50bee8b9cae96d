"""``trainer.device=cuda:free``: one run per GPU on a shared machine, whatever launches the runs.

A run claims the first GPU nobody else on this machine holds, by an exclusive lock (the ``filelock``
library, an ``flock`` underneath) on ``<lock dir>/mmx-gpu-<index>.lock``, and waits while all are
taken. The operating system drops the lock when the run ends or its process dies, so a crashed job
never leaves a GPU reserved.
With Hydra's submitit launcher, a sweep of many jobs on one machine then runs as many at a time
as there are GPUs, one per GPU.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Iterator

import torch
from filelock import FileLock, Timeout

from mmx.errors import UserError

FREE = "cuda:free"
log = logging.getLogger(__name__)


def lock_dir() -> Path:
    return Path(os.environ.get("MMX_GPU_LOCK_DIR", tempfile.gettempdir()))


@contextlib.contextmanager
def claim(device: str, world_size: int = 1, gpus: int | None = None, poll_seconds: float = 5.0) -> Iterator[str]:
    """Yield ``device`` unchanged, or for ``cuda:free`` a ``cuda:N`` held exclusively until the block ends."""
    if device != FREE:
        yield device
        return
    if world_size > 1:
        raise UserError(
            "trainer.device=cuda:free picks one GPU for one process, but torchrun gives each process "
            "its own (LOCAL_RANK); drop it under torchrun"
        )
    gpus = torch.cuda.device_count() if gpus is None else gpus
    if gpus == 0:
        raise UserError("trainer.device=cuda:free but no CUDA device is visible; use trainer.device=cpu or auto")
    waited = False
    while True:
        for index in range(gpus):
            lock = FileLock(lock_dir() / f"mmx-gpu-{index}.lock")
            try:
                lock.acquire(timeout=0)
            except Timeout:
                continue
            try:
                log.info("holding GPU %d (lock %s)", index, lock.lock_file)
                yield f"cuda:{index}"
            finally:
                lock.release()
            return
        if not waited:
            log.info("all %d GPUs are held by other runs; waiting for one to free up", gpus)
            waited = True
        time.sleep(poll_seconds)
