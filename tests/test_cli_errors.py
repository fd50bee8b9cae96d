"""Every mistake a user can make fails early with one sentence, a non-zero exit and no traceback."""
import json
import shutil
from pathlib import Path

import pytest
import torch

from conftest import TINY, assert_one_sentence_error, run_mmx


@pytest.mark.parametrize("override, fragments", [
    ("mixup.alpha=0", ["mixup.alpha must be > 0", "mixup=manifold"]),
    ("mixup=input mixup.alpha=-1", ["mixup.alpha must be > 0", "mixup=input"]),
    ("mixup.points=[0,4]", ["mixup.points=[0, 4]", "0..3"]),
    ("mixup.points=[]", ["mixup.points=[]"]),
    ("epochs=0", ["epochs=0 is not allowed: it must be at least 1"]),
    ("schedule.milestones=[20,10]", ["schedule.milestones=[20, 10]", "strictly increasing"]),
    ("schedule.milestones=[10,30]", ["schedule.milestones=[10, 30]", "between 1 and 29"]),
    ("batch_size=1438", ["batch_size=1438", "training set size (1437)"]),
    ("trainer.precision=fp16", ["trainer.precision=fp16 needs a CUDA device"]),
    ("trainer.precision=fp8", ["trainer.precision=fp8 is not allowed: choose one of auto, fp32, bf16, fp16"]),
    ("trainer.device=cuda", ["no CUDA device is visible"]),
    ("loss=mse", ["loss=mse is not an option of the loss group", "bce, soft_ce"]),
    ("trainer.cuda_graphs=true", ["trainer.cuda_graphs=true needs a CUDA device"]),
    ("trainer.cuda_graphs=true trainer.compile=true trainer.compile_mode=reduce-overhead",
     ["trainer.compile_mode=reduce-overhead", "cannot nest"]),
])
def test_bad_values_are_rejected_before_training(tmp_path, override, fragments):
    result = run_mmx(["train", *TINY, *override.split()], tmp_path)
    assert_one_sentence_error(result, "mmx: error:", *fragments)
    assert not list(tmp_path.rglob("metrics.csv"))


@pytest.mark.parametrize("group, option", [("dataset", "imagenet2"), ("model", "resnet9"), ("mixup", "cutmix")])
def test_unknown_group_options_list_the_available_ones(tmp_path, group, option):
    result = run_mmx(["train", f"{group}={option}"], tmp_path)
    assert_one_sentence_error(result, f"{group}={option} is not an option of the {group} group", "choose one of")


def test_a_misspelled_key_is_rejected(tmp_path):
    assert_one_sentence_error(run_mmx(["train", "mixup.alpah=1"], tmp_path), "mixup.alpah")


def test_resume_with_a_different_config_names_the_keys(tmp_path, digits_run):
    run = tmp_path / "run"
    shutil.copytree(digits_run, run)
    result = run_mmx(["train", "resume=run", "mixup.alpha=1", "seed=4", "epochs=3"], tmp_path)
    assert_one_sentence_error(result, "cannot resume", "mixup.alpha (2.0 -> 1.0)", "seed (0 -> 4)")
    assert "epochs" not in result.stderr  # unchanged values are not differences


def test_resume_of_a_directory_without_checkpoint_or_run(tmp_path, digits_run):
    (tmp_path / "fresh").mkdir()
    shutil.copy(digits_run / "config.yaml", tmp_path / "fresh" / "config.yaml")
    assert_one_sentence_error(run_mmx(["train", "resume=fresh"], tmp_path), "no checkpoints/last.pt")
    assert_one_sentence_error(run_mmx(["train", "resume=nowhere"], tmp_path), "not an mmx run directory")
    assert not (tmp_path / "nowhere").exists()


def test_a_run_directory_is_never_overwritten(tmp_path, digits_run):
    shutil.copytree(digits_run, tmp_path / "run")
    before = (tmp_path / "run" / "metrics.csv").read_text()
    result = run_mmx(["train", *TINY, "epochs=3", "schedule.milestones=[2]", "hydra.run.dir=run"], tmp_path)
    assert_one_sentence_error(result, "already holds a run", "resume=")
    assert (tmp_path / "run" / "metrics.csv").read_text() == before


def test_non_finite_loss_stops_naming_epoch_and_step_and_keeps_the_last_good_checkpoint(tmp_path):
    # lr is multiplied by 1e30 after epoch 1: epoch 1 trains normally, epoch 2 blows up.
    result = run_mmx(["train", *TINY, "epochs=3", "schedule.milestones=[1]", "schedule.gamma=1e30",
                      "hydra.run.dir=run"], tmp_path)
    assert_one_sentence_error(result, "at epoch 2, step", "the last good checkpoint is", "(epoch 1)")
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert last["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in last["model"].values() if v.is_floating_point())
    assert (tmp_path / "run" / "metrics.csv").read_text().count("\n") == 2  # header + epoch 1
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["epochs_done"] == 1


def test_a_nan_gradient_in_the_last_step_of_an_epoch_never_reaches_a_checkpoint(tmp_path):
    """Digits has 14 steps per epoch: backward pass 28 is epoch 2's last. Its loss is finite, its update makes the
    weights NaN; they are checked before any checkpoint is written, so last.pt and best.pt stay at epoch 1."""
    result = run_mmx(["train", *TINY, "epochs=3", "schedule.milestones=[]", "mixup=none", "hydra.run.dir=run",
                      "model._target_=crash_models.NaNGradientPreActResNet", "+model.nan_at_backward=28"],
                     tmp_path, env={"PYTHONPATH": str(Path(__file__).parent)})
    assert_one_sentence_error(result, "the weights became non-finite in epoch 2", "the last good checkpoint is",
                              "(epoch 1)")
    for name in ("last", "best"):
        state = torch.load(tmp_path / "run" / "checkpoints" / f"{name}.pt", weights_only=True)
        assert state["epoch"] == 1
        assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
