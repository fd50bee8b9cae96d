"""Every mistake a user can make fails early with one sentence, a non-zero exit and no traceback."""

import json
import shutil

import pytest
import torch

from helpers import TESTS, TINY, assert_one_sentence_error, mmx_in_process, run_mmx

# Every mistake a user can type, and what the one sentence must say. Run through mmx's entry point in
# this process (a subprocess per case would take minutes); test_the_mmx_command_exits_2_with_one_line
# proves the same path through the installed command.
MISTAKES = [
    ("mixup.alpha=abc", ["mixup.alpha=abc is not allowed", "a number"]),
    ("mixup=none mixup.alpha=abc", ["mixup.alpha=abc is not allowed", "a number"]),
    ("mixup.alpha=0", ["mixup.alpha must be > 0", "mixup=manifold"]),
    ("mixup.points_per_step=0", ["mixup.points_per_step=0 is not allowed: it must be at least 1"]),
    ("mixup.points_per_step=4", ["mixup.points_per_step=4 must be between 1 and the 3 point(s)"]),
    ("mixup=input mixup.alpha=-1", ["mixup.alpha must be > 0", "mixup=input"]),
    ("mixup.points='[1,1]'", ["mixup.points=[1,1] is not allowed", "a list"]),  # a string, not a list
    ("mixup.points=[1,1]", ["mixup.points=[1, 1] repeats a point"]),
    ("mixup.points=[0,4]", ["mixup.points=[0, 4]", "0..3"]),
    ("mixup.points=[]", ["mixup.points=[]"]),
    ("mixup.alpah=1", ["mixup.alpah is not a key", "did you mean mixup.alpha"]),
    ("mixup=cutmix mixup.probability=0", ["mixup.probability=0 is not allowed: it must be in (0, 1]"]),
    ("mixup=manifold_cutmix mixup.probability=1.5", ["mixup.probability=1.5 is not allowed"]),
    ("mixup=nfm mixup.mult_noise=-1", ["mixup.mult_noise=-1 is not allowed", "0 (none) or more"]),
    ("mixup=nfm mixup.add_nois=0.1", ["mixup.add_nois is not a key", "did you mean mixup.add_noise"]),
    ("mixup=regmixup mixup.eta=0", ["mixup.eta=0 is not allowed", "> 0"]),
    ("mixup=cutmix mixup.eta=1", ["mixup.eta is not a key"]),
    ("epochs=abc", ["epochs=abc is not allowed: it must be an integer"]),
    ("epochs=2.5", ["epochs=2.5 is not allowed: it must be an integer"]),
    ("epochs=0", ["epochs=0 is not allowed: it must be at least 1"]),
    ("batch_size=1", ["batch_size=1 is not allowed: it must be at least 2", "BatchNorm"]),
    ("batch_size=-5", ["batch_size=-5 is not allowed: it must be at least 2"]),
    ("batch_size=1438", ["batch_size=1438", "training set size (1437)"]),
    ("optim.lr=-0.1", ["optim.lr=-0.1 is not allowed: it must be greater than 0"]),
    ("optim.lr=inf", ["optim.lr=inf is not allowed: it must be a finite number"]),
    ("optim.lr=nan", ["optim.lr=nan is not allowed: it must be a finite number"]),
    ("optim.weight_decay=-inf", ["optim.weight_decay=-inf is not allowed: it must be a finite number"]),
    ("mixup.alpha=inf", ["mixup.alpha=inf is not allowed: it must be a finite number"]),
    ("dataset.std=[inf]", ["dataset.std=[inf] is not allowed: it must be a finite number"]),
    ("lr_drops=[0.5,nan]", ["lr_drops=[0.5, nan] is not allowed: it must be a finite number"]),
    ("seed=2**70", ["seed=2**70 is not allowed: it must be an integer"]),
    ("seed=1180591620717411303424", ["seed=1180591620717411303424 is not allowed: it must be at most 4294967295"]),
    ("seed=-1", ["seed=-1 is not allowed: it must be at least 0"]),
    ("trainer.device=bogus", ["trainer.device=bogus is not a device"]),
    ("trainer.device=cuda", ["no CUDA device is visible"]),
    ("trainer.device=cuda:free", ["trainer.device=cuda:free but no CUDA device is visible"]),
    ("trainer.max_steps_per_epoch=0", ["trainer.max_steps_per_epoch=0 is not allowed: it must be at least 1"]),
    ("trainer.eval_batch_size=0", ["trainer.eval_batch_size=0 is not allowed: it must be at least 1"]),
    ("trainer.max_eval_batches=0", ["trainer.max_eval_batches=0 is not allowed: it must be at least 1"]),
    ("trainer.precision=fp16", ["trainer.precision=fp16 needs a CUDA device"]),
    ("trainer.precision=fp8", ["trainer.precision=fp8 is not allowed: choose one of auto, fp32, bf16, fp16"]),
    ("trainer.tf32=maybe", ["trainer.tf32=maybe is not allowed: choose one of auto, true, false"]),
    ("trainer.deterministic=maybe", ["trainer.deterministic=maybe is not allowed"]),
    ("trainer.cuda_graphs=true", ["trainer.cuda_graphs=true needs a CUDA device"]),
    ("dataset.labels_per_class=-1", ["dataset.labels_per_class=-1 is not allowed: it must be at least 1"]),
    ("dataset.labels_per_class=0", ["dataset.labels_per_class=0 is not allowed: it must be at least 1"]),
    ("dataset.classes=[3]", ["dataset.classes=[3] must be at least 2 distinct labels of digits's 10 classes"]),
    ("dataset.classes=[3,3]", ["dataset.classes=[3, 3] must be at least 2 distinct labels"]),
    ("dataset.classes=[3,10]", ["dataset.classes=[3, 10] must be at least 2 distinct labels", "(0 to 9)"]),
    ("dataset.classes=[-1,2]", ["dataset.classes=[-1, 2] is not allowed: it must be at least 0"]),
    ("dataset.mean=[0.5,0.5,0.5]", ["dataset.mean=[0.5, 0.5, 0.5] has 3 value(s) but dataset.channels=1"]),
    ("dataset=synthetic dataset.channels=1", ["dataset.mean=[0.5, 0.5, 0.5] has 3 value(s) but dataset.channels=1"]),
    ("dataset.std=[]", ["dataset.std=[] has 0 value(s) but dataset.channels=1", "one std per channel"]),
    ("dataset.val_size=abc", ["dataset.val_size=abc is not allowed: it must be a number of images"]),
    ("dataset.val_size=0", ["dataset.val_size=0 is not allowed", "or a fraction of the training set between 0 and 1"]),
    ("dataset.val_size=12.5", ["dataset.val_size=12.5 is not allowed"]),
    ("dataset.val_size=1437", ["dataset.val_size=1437 would hold out 1437 of the 1437 training images"]),
    (
        "dataset.classes=[0,1] dataset.val_size=287",
        ["dataset.val_size=287 would hold out all", "training images of class"],
    ),
    ("dataset.val_seed=-1", ["dataset.val_seed=-1 is not allowed: it must be at least 0"]),
    ("trainer.eval_every=0", ["trainer.eval_every=0 is not allowed: it must be at least 1"]),
    ("schedule.milestones=[20,10]", ["schedule.milestones=[20, 10]", "strictly increasing"]),
    ("schedule.milestones=[10,30]", ["schedule.milestones=[10, 30]", "between 1 and 29"]),
    ("scheduler=cosine", ["scheduler is neither a config group nor a key", "did you mean schedule"]),
    ("dataset=imagenet2", ["dataset=imagenet2 is not an option of the dataset group", "did you mean dataset=imagenet"]),
    ("model=resnet9", ["model=resnet9 is not an option of the model group", "preactresnet18"]),
    (
        "mixup=cutmixx",
        ["mixup=cutmixx is not an option of the mixup group", "did you mean mixup=cutmix", "input, manifold"],
    ),
    ("loss=mse", ["loss=mse is not an option of the loss group", "bce, soft_ce"]),
    ("experiment=nosuch", ["experiment=nosuch is not an experiment"]),
    (
        "experiment=paper/table1/cifar10_preactresnet18_manifld",
        ["did you mean experiment=paper/table1/cifar10_preactresnet18_manifold"],
    ),
    ("-m seed=0,1 mixup.alpha=1,abc", ["mixup.alpha=abc is not allowed"]),  # a sweep is checked job by job
]


@pytest.mark.parametrize("arguments, fragments", MISTAKES, ids=[m[0] for m in MISTAKES])
def test_every_mistake_is_one_sentence_exit_2_and_leaves_no_directory(tmp_path, arguments, fragments):
    result = mmx_in_process(["train", *TINY, *arguments.split()], tmp_path)
    assert result.returncode == 2
    assert_one_sentence_error(result, "mmx: error:", *fragments)
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("mmx: error: ")
    assert list(tmp_path.iterdir()) == []  # nothing claimed, or what was claimed removed again


@pytest.mark.parametrize(
    "arguments, fragments",
    [
        (["model=gru", "mixup=manifold_cutmix"], ["mixup=manifold_cutmix pastes boxes into feature maps", "point 1"]),
        (["model=gru", "model.width=8"], ["model.width is not a key of the chosen model option", "other model"]),
    ],
)
def test_mistakes_with_a_recurrent_model(tmp_path, arguments, fragments):
    """A box needs feature maps (a GRU's states are sequences); a key of another model is named as such."""
    result = mmx_in_process(["train", *arguments, "trainer.progress=false", "hydra.run.dir=run"], tmp_path)
    assert result.returncode == 2
    assert_one_sentence_error(result, "mmx: error:", *fragments)
    assert not (tmp_path / "run").exists()


def test_the_mmx_command_exits_2_with_one_line(tmp_path):
    result = run_mmx(["train", *TINY, "mixup.alpha=abc"], tmp_path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert_one_sentence_error(result, "mmx: error: mixup.alpha=abc is not allowed")
    assert list(tmp_path.iterdir()) == []


def test_resume_with_a_different_config_names_the_keys(tmp_path, digits_run):
    run = tmp_path / "run"
    shutil.copytree(digits_run, run)
    result = run_mmx(["train", "resume=run", "mixup.alpha=1", "seed=4", "epochs=3"], tmp_path)
    assert_one_sentence_error(result, "cannot resume", "mixup.alpha (2.0 -> 1.0)", "seed (0 -> 4)")
    assert "epochs" not in result.stderr  # unchanged values are not differences


def test_resume_of_a_directory_that_lost_its_checkpoint_or_is_no_run(tmp_path, digits_run):
    """A run without last.pt starts again from epoch 1 (tests/cli/test_resume.py), unless it had recorded epochs: a
    deleted last.pt is not a run killed in its first epoch, and starting again would discard them."""
    shutil.copytree(digits_run, tmp_path / "lost")
    (tmp_path / "lost" / "checkpoints" / "last.pt").unlink()
    before = (tmp_path / "lost" / "metrics.csv").read_text()
    assert_one_sentence_error(
        run_mmx(["train", "resume=lost"], tmp_path),
        "last.pt is missing although it recorded checkpoints/best.pt and 3 epoch(s) in metrics.csv",
        "restore last.pt",
    )
    assert (tmp_path / "lost" / "metrics.csv").read_text() == before
    assert_one_sentence_error(run_mmx(["train", "resume=nowhere"], tmp_path), "not an mmx run directory")
    assert not (tmp_path / "nowhere").exists()


def test_a_run_directory_is_never_overwritten(tmp_path, digits_run):
    shutil.copytree(digits_run, tmp_path / "run")
    before = (tmp_path / "run" / "metrics.csv").read_text()
    result = run_mmx(["train", *TINY, "epochs=3", "schedule.milestones=[2]", "hydra.run.dir=run"], tmp_path)
    assert_one_sentence_error(result, "already holds a run", "resume=")
    assert (tmp_path / "run" / "metrics.csv").read_text() == before


@pytest.mark.slow
def test_non_finite_loss_stops_naming_epoch_and_step_and_keeps_the_last_good_checkpoint(tmp_path):
    # lr is multiplied by 1e30 after epoch 1: epoch 1 trains normally, epoch 2 blows up.
    result = run_mmx(
        ["train", *TINY, "epochs=3", "schedule.milestones=[1]", "schedule.gamma=1e30", "hydra.run.dir=run"], tmp_path
    )
    assert_one_sentence_error(result, "at epoch 2, step", "the last good checkpoint is", "(epoch 1)")
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert last["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in last["model"].values() if v.is_floating_point())
    assert (tmp_path / "run" / "metrics.csv").read_text().count("\n") == 2  # header + epoch 1
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["epochs_done"] == 1


@pytest.mark.slow
def test_a_nan_gradient_in_the_last_step_of_an_epoch_never_reaches_a_checkpoint(tmp_path):
    """Digits has 14 steps per epoch: backward pass 28 is epoch 2's last. Its loss is finite, its update makes the
    weights NaN; they are checked before any checkpoint is written, so last.pt and best.pt stay at epoch 1."""
    result = run_mmx(
        [
            "train",
            *TINY,
            "epochs=3",
            "schedule.milestones=[]",
            "mixup=none",
            "hydra.run.dir=run",
            "model._target_=crash_models.NaNGradientPreActResNet",
            "+model.nan_at_backward=28",
        ],
        tmp_path,
        env={"PYTHONPATH": str(TESTS)},
    )
    assert_one_sentence_error(
        result, "the weights became non-finite in epoch 2", "the last good checkpoint is", "(epoch 1)"
    )
    for name in ("last", "best"):
        state = torch.load(tmp_path / "run" / "checkpoints" / f"{name}.pt", weights_only=True)
        assert state["epoch"] == 1
        assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


@pytest.mark.slow
def test_with_eval_every_a_divergence_names_the_checkpoint_that_exists(tmp_path):
    """trainer.eval_every=3 checkpoints at epoch 3; a NaN update in epoch 5 (backward pass 70 of 14 per epoch)
    names epoch 3's checkpoint as the last good one, not epoch 4, which was never saved."""
    result = run_mmx(
        [
            "train",
            *TINY,
            "epochs=6",
            "schedule.milestones=[]",
            "mixup=none",
            "trainer.eval_every=3",
            "hydra.run.dir=run",
            "model._target_=crash_models.NaNGradientPreActResNet",
            "+model.nan_at_backward=70",
        ],
        tmp_path,
        env={"PYTHONPATH": str(TESTS)},
    )
    assert_one_sentence_error(result, "the weights became non-finite in epoch 5", "(epoch 3)")
    assert torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)["epoch"] == 3
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["epochs_done"] == 3
