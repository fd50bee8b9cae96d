"""``mmx train`` end to end in a subprocess on the embedded digits data."""

import csv
import json

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from mmx.config import group_options
from mmx.metrics import epoch_metrics, metric_columns

from helpers import TINY, assert_one_sentence_error, run_mmx

# What a run records comes from the metric registry: the tests check that every entry of it arrives.
COLUMNS = metric_columns(validation=False)
TAGS = [metric.tag for metric in epoch_metrics() if metric.tag]


def read_rows(run):
    with open(run / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_help_lists_commands_groups_and_options(tmp_path):
    top = run_mmx(["--help"], tmp_path)
    assert top.returncode == 0
    for text in (
        "train",
        "reproduce",
        "tables",
        "plot",
        "dataset",
        "cifar10",
        "svhn",
        "tinyimagenet",
        "wrn28_10",
        "preactresnet34",
        "manifold",
        "cosine",
        "table1",
        "public_code",
    ):
        assert text in top.stdout
    train = run_mmx(["train", "--help"], tmp_path)
    assert train.returncode == 0
    for text in (
        f"dataset: {', '.join(group_options('dataset'))}",
        f"mixup: {', '.join(group_options('mixup'))}",
        "alpha: 2.0",
        "resume",
    ):
        assert text in train.stdout


def test_unknown_command(tmp_path):
    assert_one_sentence_error(run_mmx(["trian"], tmp_path), "unknown command 'trian'")


def test_metrics_csv_has_one_well_formed_row_per_epoch(digits_run):
    rows = read_rows(digits_run)
    assert list(rows[0]) == COLUMNS
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert [float(r["lr"]) for r in rows] == pytest.approx([0.05, 0.05, 0.005])  # digits: lr 0.05, x0.1 at 2
    for row in rows:
        assert 0 <= float(row["test_acc"]) <= 100
        assert float(row["test_error"]) == pytest.approx(100 - float(row["test_acc"]))
        assert float(row["test_nll"]) > 0 and 0 <= float(row["test_ece"]) <= 1
        assert float(row["test_acc"]) <= float(row["test_top5"]) <= 100
        assert float(row["epoch_seconds"]) > 0 and float(row["train_images_per_second"]) > 0
    assert float(rows[-1]["test_acc"]) > 50  # it learns


def test_summary_json(digits_run):
    s = json.loads((digits_run / "summary.json").read_text())
    assert (s["dataset"], s["model"], s["mixup"], s["alpha"], s["points"]) == (
        "digits",
        "preactresnet18",
        "manifold",
        2.0,
        [0, 1, 2],
    )
    assert (s["seed"], s["epochs"], s["finished"]) == (0, 3, True)
    rows = read_rows(digits_run)
    assert s["final"]["epoch"] == 3 and s["final"]["acc"] == pytest.approx(float(rows[-1]["test_acc"]))
    best = min(rows, key=lambda r: float(r["test_error"]))
    assert s["best"]["error"] == pytest.approx(float(best["test_error"]))
    assert set(s["final"]) == set(s["best"]) == {"acc", "error", "top5", "nll", "ece", "epoch"}
    assert s["best_chosen_on"] == "test" and s["validation"] is None  # no dataset.val_size: the test set chose
    assert s["wall_seconds"] > 0 and s["device"].startswith("cpu") and s["torch"] == torch.__version__


def test_checkpoints_load_with_weights_only(digits_run):
    last = torch.load(digits_run / "checkpoints" / "last.pt", weights_only=True)
    best = torch.load(digits_run / "checkpoints" / "best.pt", weights_only=True)
    assert (
        last["epoch"] == 3 and best["epoch"] == json.loads((digits_run / "summary.json").read_text())["best"]["epoch"]
    )
    assert {"model", "optimizer", "scheduler", "scaler", "process_rng", "global_rng", "world_size"} <= set(last)
    assert not list((digits_run / "checkpoints").glob(".*tmp"))


def test_resolved_config_is_saved(digits_run):
    text = (digits_run / "config.yaml").read_text()
    assert "${" not in text and "milestones:\n  - 2" in text
    assert (digits_run / ".hydra" / "config.yaml").exists()


def test_tensorboard_events_hold_every_tag_per_epoch(digits_run):
    events = EventAccumulator(str(digits_run / "tb"))
    events.Reload()
    scalars = events.Tags()["scalars"]
    for tag in TAGS:
        assert tag in scalars
        assert [e.step for e in events.Scalars(tag)] == [1, 2, 3]
    rows = read_rows(digits_run)
    assert events.Scalars("test/nll")[-1].value == pytest.approx(float(rows[-1]["test_nll"]), rel=1e-5)


@pytest.mark.parametrize("regime, points", [("none", []), ("input", [0])])
@pytest.mark.slow
def test_other_regimes_and_bce_loss_train(tmp_path, regime, points):
    result = run_mmx(
        ["train", *TINY, f"mixup={regime}", "loss=bce", "epochs=1", "schedule.milestones=[]", "hydra.run.dir=run"],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    s = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert s["mixup"] == regime and s["points"] == points and s["loss"] == "bce"


@pytest.mark.slow
def test_wide_resnet_and_cosine_schedule_train(tmp_path):
    result = run_mmx(
        [
            "train",
            "trainer.progress=false",
            "model=wrn28_2",
            "model.depth=10",
            "model.widen_factor=1",
            "schedule=cosine",
            "epochs=2",
            "hydra.run.dir=run",
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    rows = read_rows(tmp_path / "run")
    assert float(rows[1]["lr"]) < float(rows[0]["lr"]) == 0.05


@pytest.mark.slow
def test_bf16_autocast_and_channels_last_paths_run_on_the_cpu(tmp_path):
    """The GPU defaults (bf16 autocast, channels_last) forced on the CPU: same code, and it learns."""
    result = run_mmx(
        [
            "train",
            *TINY,
            "trainer.precision=bf16",
            "trainer.channels_last=true",
            "epochs=2",
            "schedule.milestones=[]",
            "hydra.run.dir=run",
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["precision"] == "bf16" and summary["final"]["acc"] > 30


@pytest.mark.slow
def test_smoke_mode_runs_two_steps_of_one_epoch_of_any_config(tmp_path):
    result = run_mmx(["train", *TINY, "smoke=on", "hydra.run.dir=run"], tmp_path)  # 30-epoch default
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["smoke"] is True and summary["epochs"] == 1 and summary["finished"]
    assert len(read_rows(tmp_path / "run")) == 1


@pytest.mark.slow
def test_labels_per_class_trains_on_the_subset(tmp_path):
    # 10 images per class = 100 images = exactly one batch of 100
    result = run_mmx(
        ["train", *TINY, "dataset.labels_per_class=10", "epochs=1", "schedule.milestones=[]", "hydra.run.dir=run"],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["labels_per_class"] == 10
    assert_one_sentence_error(
        run_mmx(["train", *TINY, "dataset.labels_per_class=5"], tmp_path), "batch_size=100", "training set size (50)"
    )
