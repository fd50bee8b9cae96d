"""The run directory's files: atomic writes, metric rows forgotten after a resume, strict JSON, locks."""

import csv

from mmx.run_dir import RunDir


def epochs_logged(run):
    with open(run / "metrics.csv", newline="") as handle:
        return [int(row["epoch"]) for row in csv.DictReader(handle)]


def test_rows_logged_after_the_last_checkpoint_are_forgotten_on_resume(tmp_path):
    """A kill between writing epoch 3's row and its checkpoint must not leave epoch 3 twice."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from mmx.metrics import metric_columns

    def row(epoch, value):
        return {column: value for column in metric_columns(validation=False)} | {"epoch": epoch}

    log = RunDir(tmp_path).metrics_log()
    for epoch in (1, 2, 3):
        log.append(row(epoch, float(epoch)))
    log.close()
    log = RunDir(tmp_path).metrics_log(resume_epoch=2)  # the checkpoint holds epoch 2
    log.append(row(3, 30.0))
    log.close()
    assert epochs_logged(tmp_path) == [1, 2, 3]
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert [(e.step, e.value) for e in events.Scalars("test/nll")] == [(1, 1.0), (2, 2.0), (3, 30.0)]


def test_checkpoints_are_replaced_atomically(tmp_path):
    import torch

    from mmx.files import load_checkpoint, save_checkpoint

    path = tmp_path / "ck" / "last.pt"
    save_checkpoint({"epoch": 1, "w": torch.ones(3)}, path)
    save_checkpoint({"epoch": 2, "w": torch.zeros(3)}, path)
    assert load_checkpoint(path)["epoch"] == 2
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]  # no temporary file left behind


def test_a_failed_rewrite_of_metrics_csv_leaves_the_old_file_whole(tmp_path, monkeypatch):
    """Resume rewrites metrics.csv to drop rows after the checkpoint; a kill during that rewrite must lose nothing."""
    import pytest

    from mmx import run_dir as module
    from mmx.metrics import metric_columns

    log = RunDir(tmp_path).metrics_log()
    for epoch in (1, 2, 3):
        log.append({column: float(epoch) for column in metric_columns(validation=False)} | {"epoch": epoch})
    log.close()
    before = (tmp_path / "metrics.csv").read_text()

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # as a SIGINT (or a SIGKILL) would stop the writer half-way

    monkeypatch.setattr(module, "_csv_text", killed)
    with pytest.raises(KeyboardInterrupt):
        RunDir(tmp_path).metrics_log(resume_epoch=2)
    assert (tmp_path / "metrics.csv").read_text() == before
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_full_disk_is_named_with_the_file_and_leaves_no_temporary_file(tmp_path):
    import errno

    import pytest

    from mmx.errors import UserError
    from mmx.files import write_atomic

    target = tmp_path / "summary.json"
    target.write_text("old")

    def disk_full(handle):
        handle.write(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(UserError, match=f"the disk is full: summary.json could not be written in {tmp_path} "):
        write_atomic(target, disk_full)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_summaries_are_strict_json_with_null_for_non_finite_numbers(tmp_path):
    import json

    RunDir(tmp_path).write_summary({"final": {"nll": float("nan"), "acc": float("inf"), "error": 1.5}})

    def refuse(name):
        raise ValueError(f"{name} is not JSON")

    loaded = json.loads((tmp_path / "summary.json").read_text(), parse_constant=refuse)
    assert loaded == {"final": {"nll": None, "acc": None, "error": 1.5}}


def test_damaged_files_are_named_in_one_sentence(tmp_path, digits_run):
    import shutil

    import pytest

    from mmx.errors import UserError

    run = tmp_path / "run"
    shutil.copytree(digits_run, run)
    (run / "summary.json").write_text('{"final": ')
    with pytest.raises(UserError, match=r"summary.json is damaged"):
        RunDir(run).read_summary()
    (run / "checkpoints" / "last.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match=r"last.pt is damaged or not a checkpoint mmx wrote"):
        RunDir(run).load_checkpoint("last")
    (run / "config.yaml").write_text("model: [unclosed")
    with pytest.raises(UserError, match=r"config.yaml is damaged"):
        RunDir(run).read_config()


def test_a_locked_run_names_its_holder_and_a_dead_holder_does_not_block(tmp_path):
    import subprocess
    import sys

    import pytest

    from mmx.errors import UserError

    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import sys, time\n"
                "from mmx.run_dir import RunDir\n"
                f"with RunDir({str(tmp_path)!r}).locked():\n"
                "    print('locked', flush=True)\n"
                "    time.sleep(60)\n"
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(UserError, match=rf"{tmp_path} is in use by process {holder.pid} on "):
        with RunDir(tmp_path).locked():
            pass
    holder.kill()
    holder.wait()
    with RunDir(tmp_path).locked():  # the lock file is still there; its holder is not
        pass


def test_outputs_are_checked_before_any_work(tmp_path):
    import pytest

    from mmx.errors import UserError
    from mmx.files import check_writable

    (tmp_path / "a_file").write_text("")
    with pytest.raises(UserError, match="--out .*a_file/figures cannot be written"):
        check_writable(tmp_path / "a_file" / "figures", "--out")
    assert check_writable(tmp_path / "new" / "folder", "--out").is_dir()


def test_a_run_made_before_a_setting_existed_reads_with_the_value_it_ran_with(tmp_path, compose):
    """mixup.points_per_step came after runs had been made: such a run reads (for resume, eval and tables)
    with K = 1, what it did, and sits in the cell of a new run with K = 1, not in a cell of its own."""
    from omegaconf import OmegaConf

    from mmx.report.cells import settings_of

    new = compose("mixup=manifold")
    old = OmegaConf.create(OmegaConf.to_container(new))
    del old.mixup["points_per_step"]
    (tmp_path / "config.yaml").write_text(OmegaConf.to_yaml(old))
    read = RunDir(tmp_path).read_config()
    assert read.mixup.points_per_step == 1
    assert (
        settings_of(old, "fp32") == settings_of(new, "fp32") != settings_of(compose("mixup.points_per_step=2"), "fp32")
    )


def test_the_code_version_is_dirty_for_changed_code_not_for_regenerated_results(tmp_path):
    """`make digits-results` deletes the tracked runs it regenerates: that must not mark its runs' code as changed."""
    import subprocess

    from mmx.code_version import code_version

    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    (tmp_path / "mmx").mkdir()
    (tmp_path / "results").mkdir()
    (tmp_path / "mmx" / "train.py").write_text("lr = 0.1\n")
    (tmp_path / "results" / "runs.md").write_text("| 1 |\n")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x")
    assert code_version(tmp_path / "mmx")["dirty"] is False
    (tmp_path / "results" / "runs.md").unlink()
    assert code_version(tmp_path / "mmx")["dirty"] is False
    (tmp_path / "mmx" / "train.py").write_text("lr = 0.2\n")
    version = code_version(tmp_path / "mmx")
    assert version["dirty"] is True and len(version["commit"]) == 40


def test_a_row_cut_short_by_a_crash_is_an_epoch_that_did_not_end(tmp_path):
    """A crash of the machine can leave the last row of metrics.csv half written: a resume (and the tables) leave it
    out instead of refusing the file; a bad row that is not the cut-short tail still means the file is damaged."""
    import pytest

    from mmx.errors import UserError
    from mmx.metrics import metric_columns

    run = RunDir(tmp_path)
    log = run.metrics_log()
    log.append({column: 1.0 for column in metric_columns(validation=False)} | {"epoch": 1})
    log.close()
    whole = run.metrics_path.read_text()
    run.metrics_path.write_text(whole + "2,0.1,0.5")  # epoch 2's row, cut short before its newline
    assert [row["epoch"] for row in run.read_metrics()] == [1]
    run.metrics_log(resume_epoch=1).close()
    assert run.metrics_path.read_text() == whole

    run.metrics_path.write_text(whole + "2,0.1,0.5\n" + whole.splitlines()[1] + "\n")
    with pytest.raises(UserError, match="metrics.csv is damaged"):
        run.read_metrics()
