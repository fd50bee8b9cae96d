"""Tiny-ImageNet on a generated folder in the release layout: val/ reorganisation, cache, zip, errors."""

import shutil
import zipfile

import pytest
import torch
from torchvision.datasets.utils import calculate_md5

from mmx.data import tiny_imagenet
from mmx.errors import UserError

from fake_datasets import write_tiny_imagenet


def brightness_class(images):
    return ((images.float().mean(dim=(1, 2, 3)) - 40) / 60).round().long()


def test_loads_both_splits_with_one_class_index_and_caches(tmp_path):
    written = write_tiny_imagenet(tmp_path)
    data = tiny_imagenet.load_tiny_imagenet(str(tmp_path), download=False)
    assert data.num_classes == 3
    assert tuple(data.train_images.shape) == (12, 3, 64, 64) and tuple(data.test_images.shape) == (6, 3, 64, 64)
    # labels follow the sorted wnids, and match the class painted into the pixels (greyscale ones too)
    assert torch.equal(brightness_class(data.train_images), data.train_labels)
    assert torch.equal(brightness_class(data.test_images), data.test_labels)
    folder = tmp_path / "tiny-imagenet-200"
    assert not (folder / "val" / "images").exists()
    for name, label in written["val_labels"].items():
        assert (folder / "val" / written["wnids"][label] / "images" / name).is_file()
    assert (folder / tiny_imagenet.CACHE).is_file()

    shutil.rmtree(folder / "train")  # a second load needs only the cache
    again = tiny_imagenet.load_tiny_imagenet(str(tmp_path), download=False)
    assert torch.equal(again.train_images, data.train_images) and torch.equal(again.test_labels, data.test_labels)


def test_reorganisation_resumes_after_an_interruption(tmp_path):
    write_tiny_imagenet(tmp_path)
    folder = tmp_path / "tiny-imagenet-200"
    first = sorted((folder / "val" / "images").iterdir())[0]
    wnid = next(
        line.split("\t")[1]
        for line in (folder / "val" / "val_annotations.txt").read_text().splitlines()
        if line.startswith(first.name)
    )
    (folder / "val" / wnid / "images").mkdir(parents=True)
    first.replace(folder / "val" / wnid / "images" / first.name)  # as if killed after one move
    data = tiny_imagenet.load_tiny_imagenet(str(tmp_path), download=False)
    assert len(data.test_images) == 6


def test_the_release_zip_is_verified_and_extracted(tmp_path, monkeypatch):
    source = tmp_path / "source"
    write_tiny_imagenet(source)
    root = tmp_path / "data"
    root.mkdir()
    archive = root / "tiny-imagenet-200.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for path in sorted((source / "tiny-imagenet-200").rglob("*")):
            handle.write(path, path.relative_to(source))
    # A zip already in place with the expected MD5 is used as is (torchvision skips the download).
    monkeypatch.setattr(tiny_imagenet, "MD5", calculate_md5(archive))
    data = tiny_imagenet.load_tiny_imagenet(str(root), download=True)
    assert len(data.train_images) == 12 and data.num_classes == 3


def test_missing_data_with_download_off_names_the_folder_and_the_url(tmp_path):
    with pytest.raises(UserError, match="tiny-imagenet-200.*dataset.download=false.*tiny-imagenet-200.zip"):
        tiny_imagenet.load_tiny_imagenet(str(tmp_path), download=False)


def test_class_folders_must_match_wnids(tmp_path):
    write_tiny_imagenet(tmp_path)
    folder = tmp_path / "tiny-imagenet-200"
    (folder / "wnids.txt").write_text("n00000001\n")
    with pytest.raises(UserError, match="do not match wnids.txt"):
        tiny_imagenet.load_tiny_imagenet(str(tmp_path), download=False)
