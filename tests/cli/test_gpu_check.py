"""``make gpu-check`` in its CPU form: the parts a CPU can run pass, the GPU parts are named as skipped."""

import json
import subprocess
import sys

import pytest

from helpers import REPO

pytestmark = pytest.mark.slow  # trains or builds through the command line


def test_gpu_check_runs_its_cpu_parts_and_names_what_it_skipped(tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gpu_check.py"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "check.json").read_text())
    parts = report["parts"]
    assert report["passed"] and report["environment"]["device"] == "cpu"
    for name in ("graphs", "compile", "resume"):  # eager vs fused SGD and torch.compile; a mid-epoch resume
        assert parts[name]["status"] == "passed" and parts[name]["checks"], parts[name]
        assert all(check["ok"] for check in parts[name]["checks"])
        assert parts[name]["log_problems"] == []
    compiled = [c for c in parts["compile"]["checks"] if "graphs per program" in c["name"]]
    assert compiled and compiled[0]["value"] == "1/1"
    for name in ("bf16", "fp16", "bench-r18-100", "bench-r18-512", "bench-wrn-128", "family"):
        assert parts[name] == {"status": "skipped", "reason": "needs a CUDA device"}
    summary = (tmp_path / "summary.md").read_text()
    assert "PASSED" in summary and "Skipped (no CUDA device): bf16, fp16" in summary
    assert "===== compile (passed" in (tmp_path / "check.log").read_text()


def test_a_broken_part_fails_the_check_without_stopping_the_others(tmp_path):
    """An unknown part is a usage error; a log with a traceback fails its part."""
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gpu_check.py"), "--parts", "graphs,warp", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "unknown part(s) warp" in result.stderr
    sys.path.insert(0, str(REPO / "scripts"))
    import gpu_check

    assert gpu_check.scan("ok\nTraceback (most recent call last):\n  ...") == ["a traceback"]
    assert gpu_check.scan("Warning: CUDA Graph is empty") == [
        "a captured graph recorded no work (its replays would do nothing)"
    ]
