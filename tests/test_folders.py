"""ImageNet's streamed path on a tiny generated folder of JPEG files: loading, batches, resume, training."""

import csv
import json

import pytest
import torch
from hydra import compose, initialize_config_module

from mmx.data import Normalizer
from mmx.data.folders import LoaderBatches
from mmx.parts import instantiate

from fake_datasets import write_image_folders
from helpers import TINY, assert_one_sentence_error, run_mmx

SMALL = ["dataset=imagenet", "dataset.image_size=32", "dataset.resize=36", "dataset.workers=2"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_image_folders(root / "imagenet")
    return root


def load(data_root, monkeypatch, *overrides):
    monkeypatch.setenv("MMX_DATA", str(data_root))
    with initialize_config_module("mmx.configs", version_base="1.3"):
        cfg = compose("train", overrides=[*SMALL, *overrides])
    return cfg, instantiate(cfg.dataset.source).to(torch.device("cpu"))


def batches(data, cfg, workers=None, seed=5, world_size=1, rank=0):
    normalizer = Normalizer(cfg.dataset.mean, cfg.dataset.std, torch.device("cpu"))
    loader = LoaderBatches(
        data.train_set,
        6,
        normalizer,
        torch.device("cpu"),
        data.workers if workers is None else workers,
        seed,
        rank,
        world_size,
    )
    return loader


def test_folders_load_with_torchvision_transforms(data_root, monkeypatch):
    cfg, data = load(data_root, monkeypatch)
    assert (data.num_classes, data.train_size, data.test_size, data.channels) == (3, 36, 12, 3)
    images, labels = next(
        iter(data.test_batches(0, 12, 5, Normalizer(cfg.dataset.mean, cfg.dataset.std, torch.device("cpu"))))
    )
    assert images.shape == (5, 3, 32, 32) and images.dtype == torch.float32 and labels.tolist() == [0] * 4 + [1]
    # the class is in the brightness: normalised means rise with the label
    means = [images[labels == c].mean() for c in (0, 1)]
    assert means[0] < means[1]
    train_images, _ = next(iter(batches(data, cfg)))
    assert train_images.shape == (6, 3, 32, 32)


def test_a_validation_split_of_image_folders_is_read_unaugmented_and_leaves_training(data_root, monkeypatch):
    from mmx.parts import load_data

    cfg, data = load(data_root, monkeypatch, "dataset.val_size=6", "dataset.labels_per_class=8", "dataset.workers=0")
    split = load_data(cfg.dataset)
    assert (split.train_size, split.val_size, split.test_size) == (24, 6, 12)  # 36 - 6 held out, capped at 8 a class
    assert split.validation.per_class == [2, 2, 2]
    held = {data.train_set.samples[i][0] for i in split.val_set.indices}
    kept = split.train_set.dataset.indices  # the validation split's complement, then capped per class
    trained = {data.train_set.samples[kept[i]][0] for i in split.train_set.indices}
    assert held.isdisjoint(trained)
    normalizer = Normalizer(cfg.dataset.mean, cfg.dataset.std, torch.device("cpu"))
    first = torch.cat([x for x, _ in split.val_batches(0, 6, 4, normalizer)])
    again = torch.cat([x for x, _ in split.val_batches(0, 6, 4, normalizer)])
    assert first.shape == (6, 3, 32, 32) and torch.equal(first, again)  # the test transform: no random crops


def test_augmentation_is_reproducible_whatever_the_workers_and_resumes(data_root, monkeypatch):
    cfg, data = load(data_root, monkeypatch)
    in_process = [b for _, b in zip(range(3), batches(data, cfg, workers=0))]
    with_workers = batches(data, cfg, workers=2)
    first_epoch = list(with_workers)
    for (a, la), (b, lb) in zip(in_process, first_epoch):
        assert torch.equal(a, b) and torch.equal(la, lb)
    second_epoch = list(with_workers)
    assert not torch.equal(first_epoch[0][0], second_epoch[0][0])  # a new order and new crops each epoch
    resumed = batches(data, cfg, workers=2)
    resumed.load_state_dict(with_workers.state_dict())
    third_epoch, resumed_third = list(with_workers), list(resumed)
    assert len(third_epoch) == len(resumed_third) == 6
    for (a, la), (b, lb) in zip(third_epoch, resumed_third):
        assert torch.equal(a, b) and torch.equal(la, lb)


def test_processes_take_disjoint_slices_of_each_global_batch(data_root, monkeypatch):
    cfg, data = load(data_root, monkeypatch)
    halves = [list(batches(data, cfg, workers=0, world_size=2, rank=r)) for r in (0, 1)]
    whole = list(batches(data, cfg, workers=0))
    for (a, la), (b, lb), (w, lw) in zip(*halves, whole):
        assert a.shape[0] == b.shape[0] == 3 and torch.equal(torch.cat([la, lb]), lw)


@pytest.mark.slow
def test_imagenet_trains_through_the_cli_with_the_imagenet_stem_and_top5(data_root, tmp_path):
    """At 224x224 the stem is ImageNet's by itself (stem: auto); the test's 32x32 crops ask for it by name."""
    result = run_mmx(
        [
            "train",
            *TINY,
            *SMALL,
            "model.stem=imagenet",
            "batch_size=6",
            "epochs=2",
            "schedule.milestones=[1]",
            "hydra.run.dir=run",
        ],
        tmp_path,
        env={"MMX_DATA": str(data_root)},
    )
    assert result.returncode == 0, result.stderr
    config = (tmp_path / "run" / "config.yaml").read_text()
    assert "stem: imagenet" in config and "RandomResizedCrop" in config
    from mmx.models.preact_resnet import stem_for

    assert stem_for(224) == ("imagenet", 1)
    with open(tmp_path / "run" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert all(float(r["test_top5"]) == 100.0 for r in rows)  # 3 classes: the top 5 always hold the label
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["dataset"] == "imagenet" and summary["finished"]


@pytest.mark.slow
def test_missing_folders_and_in_memory_augmentation_are_user_errors(data_root, tmp_path):
    assert_one_sentence_error(
        run_mmx(["train", *TINY, *SMALL], tmp_path),
        "image folders not found",
        "imagenet/train",
        "torchvision.datasets.ImageNet",
    )
    assert_one_sentence_error(
        run_mmx(
            ["train", *TINY, *SMALL, "dataset.crop_padding=4", "batch_size=6"],
            tmp_path,
            env={"MMX_DATA": str(data_root)},
        ),
        "dataset.crop_padding and dataset.flip",
    )
