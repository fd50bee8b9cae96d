"""CIFAR-10/100 and SVHN loaders on generated files in torchvision's formats, and their errors."""

import json

import numpy as np
import pytest

from mmx.data.torchvision_sets import load_cifar, load_svhn
from mmx.errors import UserError

from fake_datasets import use_checksums, write_cifar, write_svhn
from helpers import TINY, assert_one_sentence_error, run_mmx, run_mmx_on_generated


@pytest.mark.parametrize("variant", ["cifar10", "cifar100"])
def test_cifar_loads_images_channels_first_with_their_labels(tmp_path, monkeypatch, variant):
    written = write_cifar(tmp_path, variant)
    use_checksums(monkeypatch, tmp_path, variant)
    data = load_cifar(str(tmp_path), variant, download=False)
    assert data.num_classes == (10 if variant == "cifar10" else 100)
    train_files = 5 if variant == "cifar10" else 1  # data_batch_1..5 against a single "train"
    assert tuple(data.train_images.shape) == (40 * train_files, 3, 32, 32) and tuple(data.test_images.shape) == (
        50,
        3,
        32,
        32,
    )
    np.testing.assert_array_equal(data.train_images.numpy(), written["train_images"])
    np.testing.assert_array_equal(data.test_images.numpy(), written["test_images"])
    assert data.train_labels.tolist() == written["train_labels"]
    assert data.test_labels.tolist() == written["test_labels"]


def test_svhn_maps_label_ten_to_zero_and_keeps_channels_first(tmp_path, monkeypatch):
    written = write_svhn(tmp_path)
    use_checksums(monkeypatch, tmp_path, "svhn")
    data = load_svhn(str(tmp_path), download=False)
    np.testing.assert_array_equal(data.train_images.numpy(), written["train_images"])
    assert data.train_labels.tolist() == written["train_labels"]
    assert data.test_labels.tolist() == written["test_labels"]
    assert 0 in data.train_labels.tolist() and data.train_labels.max() <= 9


def test_a_corrupted_file_fails_the_integrity_check(tmp_path):
    write_cifar(tmp_path, "cifar10")  # generated files do not match the release's MD5s
    with pytest.raises(UserError, match="not found or corrupted"):
        load_cifar(str(tmp_path), "cifar10", download=False)


@pytest.mark.parametrize(
    "dataset, path, files",
    [
        ("cifar10", "cifar-10-batches-py", "data_batch_1"),
        ("cifar100", "cifar-100-python", "train, test, meta"),
        ("svhn", "svhn", "train_32x32.mat, test_32x32.mat"),
    ],
)
def test_missing_data_names_path_files_and_remedy(tmp_path, dataset, path, files):
    result = run_mmx(["train", *TINY, f"dataset={dataset}", "dataset.download=false"], tmp_path)
    assert_one_sentence_error(result, str(tmp_path / "data" / path), files, "dataset.download=false", "MMX_DATA")
    assert not list(tmp_path.glob("runs/*/*/checkpoints"))


@pytest.mark.parametrize("variant, writer", [("cifar10", write_cifar), ("svhn", write_svhn)])
@pytest.mark.slow
def test_mmx_train_runs_on_generated_files(tmp_path, variant, writer):
    """The CLI, in a subprocess, on generated files whose checksums the subprocess registers."""
    root = tmp_path / "data"
    writer(root) if variant == "svhn" else writer(root, variant)
    args = [
        "train",
        *TINY,
        f"dataset={variant}",
        "dataset.download=false",
        "epochs=2",
        "schedule.milestones=[1]",
        "batch_size=20",
        "hydra.run.dir=run",
    ]
    result = run_mmx_on_generated(args, tmp_path, root, variant)
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["dataset"] == variant and summary["finished"]
