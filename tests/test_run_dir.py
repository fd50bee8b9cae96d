"""The run directory's files: atomic writes, metric rows forgotten after a resume, strict JSON, locks."""

import csv

from mmx.run_dir import RunDir


def epochs_logged(run):
    with open(run / "metrics.csv", newline="") as handle:
        return [int(row["epoch"]) for row in csv.DictReader(handle)]


def test_rows_logged_after_the_last_checkpoint_are_forgotten_on_resume(tmp_path):
    """A kill between writing epoch 3's row and its checkpoint must not leave epoch 3 twice."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from mmx.run_dir import COLUMNS

    def row(epoch, value):
        return {column: value for column in COLUMNS} | {"epoch": epoch}

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

    from mmx.run_dir import load_checkpoint, save_checkpoint

    path = tmp_path / "ck" / "last.pt"
    save_checkpoint({"epoch": 1, "w": torch.ones(3)}, path)
    save_checkpoint({"epoch": 2, "w": torch.zeros(3)}, path)
    assert load_checkpoint(path)["epoch"] == 2
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]  # no temporary file left behind
