"""mmx.slurm without a cluster: the time-limit check, squeue read as sacct, and a cancelled job's sentence."""

import json

import pytest

from mmx.errors import UserError
from mmx.slurm import SqueueWatcher, cancelled_run, check_time_limit


@pytest.mark.parametrize(
    "timeout_min, delay_s, refused", [(2, 90, True), (3, 90, False), (2, 120, True), (None, 120, False)]
)
def test_a_time_limit_must_leave_room_for_the_first_checkpoint(timeout_min, delay_s, refused):
    params = {"timeout_min": timeout_min, "signal_delay_s": delay_s}
    if refused:
        with pytest.raises(UserError, match=rf"hydra.launcher.timeout_min={timeout_min} is too short"):
            check_time_limit(params)
    else:
        check_time_limit(params)


def test_squeue_output_is_read_under_sacct_s_column_names():
    watcher = SqueueWatcher(delay_s=60)
    info = watcher.read_info("JOBID|STATE|NODELIST\n12|CANCELLED|vm\n13|RUNNING|vm\n")
    assert info["12"]["State"] == "CANCELLED" and info["13"]["NodeList"] == "vm"
    watcher.register_job("12")
    watcher.register_job("14")
    assert watcher._make_command() == ["squeue", "--states=all", "-o", "%i|%T|%N", "-j", "12,14"]


def test_a_cancelled_job_is_named_with_its_run_folder(tmp_path):
    (tmp_path / "0_seed=0").mkdir()
    (tmp_path / "0_seed=0" / "summary.json").write_text(json.dumps({"job": "12"}))
    message = "Job 12 (task: 0) with path /x/12_0_result.pkl\\nhas not produced any output (state: CANCELLED)"
    sentence = cancelled_run(message.replace("\\\\n", "\n"), tmp_path)
    assert sentence.startswith("job 12 of the sweep was cancelled (scancel) before it finished")
    assert f"mmx train resume={tmp_path / '0_seed=0'}" in sentence
    assert "had not written a run folder" in cancelled_run(message.replace("12", "99"), tmp_path)
    assert cancelled_run("Job 12 (task: 0) has not produced any output (state: FAILED)", tmp_path) is None
