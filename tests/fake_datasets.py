"""Small CIFAR and SVHN files in torchvision's real on-disk formats, and their checksums.

torchvision verifies every file against the MD5 of the real release; a test that loads these
files registers their own checksums in place of the release's (``use_checksums``), so the
integrity check itself still runs.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import scipy.io
from torchvision import datasets
from torchvision.datasets.utils import calculate_md5


def _pickle(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        pickle.dump(obj, handle)


def _images(rng, n):
    return rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)


def write_cifar(root: Path, variant: str = "cifar10", per_batch: int = 40, test: int = 50, seed: int = 0) -> dict:
    """Writes the python-pickle release layout; returns the images (N, C, H, W) and labels written."""
    rng = np.random.default_rng(seed)
    cls = datasets.CIFAR10 if variant == "cifar10" else datasets.CIFAR100
    classes = 10 if variant == "cifar10" else 100
    label_key = "labels" if variant == "cifar10" else "fine_labels"
    folder = root / cls.base_folder
    written = {"train_images": [], "train_labels": [], "test_images": None, "test_labels": None}
    for name, _ in cls.train_list:
        images, labels = _images(rng, per_batch), rng.integers(0, classes, per_batch).tolist()
        # the release stores each image as 3072 bytes: the red plane, then green, then blue
        _pickle(folder / name, {"data": images.reshape(per_batch, -1), label_key: labels, "batch_label": name})
        written["train_images"].append(images)
        written["train_labels"] += labels
    images, labels = _images(rng, test), rng.integers(0, classes, test).tolist()
    _pickle(folder / cls.test_list[0][0], {"data": images.reshape(test, -1), label_key: labels})
    meta_key = cls.meta["key"]
    _pickle(folder / cls.meta["filename"], {meta_key: [f"class{i}" for i in range(classes)]})
    written["train_images"] = np.concatenate(written["train_images"])
    written["test_images"], written["test_labels"] = images, labels
    return written


def write_svhn(root: Path, train: int = 60, test: int = 30, seed: int = 0) -> dict:
    """Writes train_32x32.mat and test_32x32.mat (X: H x W x C x N, y: N x 1 with 10 for digit 0)."""
    rng = np.random.default_rng(seed)
    written = {}
    for split, n in (("train", train), ("test", test)):
        images = _images(rng, n)
        digits = rng.integers(0, 10, n)
        mat_labels = np.where(digits == 0, 10, digits).reshape(n, 1).astype(np.uint8)
        folder = root / "svhn"
        folder.mkdir(parents=True, exist_ok=True)
        scipy.io.savemat(
            folder / datasets.SVHN.split_list[split][1], {"X": images.transpose(2, 3, 1, 0), "y": mat_labels}
        )
        written[f"{split}_images"], written[f"{split}_labels"] = images, digits.tolist()
    return written


def use_checksums(monkeypatch, root: Path, variant: str) -> None:
    """Register the generated files' MD5s where torchvision keeps the release's."""
    if variant == "svhn":
        split_list = {
            split: [url, name, calculate_md5(root / "svhn" / name)]
            for split, (url, name, _) in datasets.SVHN.split_list.items()
            if (root / "svhn" / name).exists()
        }
        monkeypatch.setattr(datasets.SVHN, "split_list", {**datasets.SVHN.split_list, **split_list})
        return
    cls = datasets.CIFAR10 if variant == "cifar10" else datasets.CIFAR100
    folder = root / cls.base_folder

    def rewrite(entries):
        return [[name, calculate_md5(folder / name)] for name, _ in entries]

    monkeypatch.setattr(cls, "train_list", rewrite(cls.train_list))
    monkeypatch.setattr(cls, "test_list", rewrite(cls.test_list))
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": calculate_md5(folder / cls.meta["filename"])})


def write_tiny_imagenet(
    root: Path, classes: int = 3, train_per_class: int = 4, val_per_class: int = 2, seed: int = 0
) -> dict:
    """The release layout: wnids.txt, words.txt, train/<wnid>/images/*.JPEG (+ boxes file),
    val/images/*.JPEG and val/val_annotations.txt; some images greyscale, as in the release."""

    rng = np.random.default_rng(seed)
    folder = root / "tiny-imagenet-200"
    wnids = [f"n{1000 + 7 * i:08d}" for i in range(classes)]
    (folder / "val" / "images").mkdir(parents=True)
    (folder / "wnids.txt").write_text("\n".join(reversed(wnids)) + "\n")  # the release is not sorted
    (folder / "words.txt").write_text("".join(f"{w}\tthing {i}\n" for i, w in enumerate(wnids)))
    colours = {}
    annotations = []
    for c, wnid in enumerate(wnids):
        images = folder / "train" / wnid / "images"
        images.mkdir(parents=True)
        (folder / "train" / wnid / f"{wnid}_boxes.txt").write_text("")
        for i in range(train_per_class):
            _save_jpeg(images / f"{wnid}_{i}.JPEG", c, grey=(i == 0))
        for i in range(val_per_class):
            name = f"val_{c * val_per_class + i}.JPEG"
            _save_jpeg(folder / "val" / "images" / name, c, grey=False)
            annotations.append(f"{name}\t{wnid}\t0\t0\t63\t63")
        colours[wnid] = c
    rng.shuffle(annotations)
    (folder / "val" / "val_annotations.txt").write_text("\n".join(annotations) + "\n")
    return {
        "wnids": sorted(wnids),
        "val_labels": {a.split("\t")[0]: sorted(wnids).index(a.split("\t")[1]) for a in annotations},
    }


def _save_jpeg(path: Path, class_index: int, grey: bool) -> None:
    """A flat image whose brightness encodes its class, so labels can be checked from pixels."""
    from PIL import Image

    value = 40 + 60 * class_index
    mode, colour = ("L", value) if grey else ("RGB", (value, value, value))
    Image.new(mode, (64, 64), colour).save(path, quality=95)


def write_image_folders(
    root: Path, classes: int = 3, train_per_class: int = 12, val_per_class: int = 4, seed: int = 0
) -> list[str]:
    """ImageNet's prepared layout, train/<wnid>/*.JPEG and val/<wnid>/*.JPEG, with images of varied
    sizes and aspect ratios (some greyscale) whose brightness encodes the class; returns the wnids."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    wnids = [f"n{1440 + 13 * i:08d}" for i in range(classes)]
    for split, count in (("train", train_per_class), ("val", val_per_class)):
        for c, wnid in enumerate(wnids):
            (root / split / wnid).mkdir(parents=True)
            for i in range(count):
                width, height = (int(v) for v in rng.integers(40, 90, size=2))
                pixels = np.clip(40 + 80 * c + rng.normal(0, 10, (height, width, 3)), 0, 255).astype(np.uint8)
                image = Image.fromarray(pixels)
                (image.convert("L") if i % 5 == 0 else image).save(root / split / wnid / f"{wnid}_{i}.JPEG")
    return wnids


def write_mnist_family(root: Path, name: str = "FashionMNIST", train: int = 200, test: int = 60, seed: int = 0) -> dict:
    """torchvision's MNIST-family layout, ``root/NAME/raw/`` with the four IDX files (big-endian: a magic number of
    dtype and rank, the sizes, then the bytes); images drawn as class-dependent blobs, so a network can learn them."""
    rng = np.random.default_rng(seed)
    folder = root / name / "raw"
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for split, prefix, n in (("train", "train", train), ("test", "t10k", test)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = rng.integers(0, 40, size=(n, 28, 28)).astype(np.uint8)
        for i, label in enumerate(labels):  # a bright square whose place says the class
            row, col = divmod(int(label), 5)
            images[i, 4 + 10 * row : 12 + 10 * row, 2 + 5 * col : 6 + 5 * col] = 220
        (folder / f"{prefix}-images-idx3-ubyte").write_bytes(
            np.array([0x0803, n, 28, 28], dtype=">i4").tobytes() + images.tobytes()
        )
        (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(
            np.array([0x0801, n], dtype=">i4").tobytes() + labels.tobytes()
        )
        written[f"{split}_images"], written[f"{split}_labels"] = images, labels.tolist()
    return written
