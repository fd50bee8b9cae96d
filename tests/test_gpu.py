"""On a GPU: CUDA-graph replay and torch.compile against eager, bf16 without host syncs, fp16 with its
scaler (the correctness parts of `make gpu-check`, as tests). Skipped where no CUDA device is present."""

import sys

import pytest

from helpers import REPO

sys.path.insert(0, str(REPO / "scripts"))
import gpu_check  # noqa: E402

pytestmark = [pytest.mark.gpu, pytest.mark.slow]


@pytest.mark.parametrize("part", ["graphs", "compile", "bf16", "fp16"])
def test_gpu_check_part_passes(part):
    result = gpu_check.PART_FUNCTIONS[part](True)
    failed = [check for check in result["checks"] if not check["ok"]]
    assert result["status"] == "passed" and not failed, failed
