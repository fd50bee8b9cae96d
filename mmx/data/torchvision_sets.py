"""CIFAR-10/100 and SVHN through torchvision: its downloads, file layouts and MD5 checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torchvision import datasets

from mmx.data.downloads import folders_removed_on_failure
from mmx.data.images import ImageSplits, from_hwc_numpy
from mmx.errors import UserError

CIFAR = {
    "cifar10": (datasets.CIFAR10, 10, "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"),
    "cifar100": (datasets.CIFAR100, 100, "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"),
}


def load_cifar(root: str, variant: str = "cifar10", download: bool = True) -> ImageSplits:
    """CIFAR-10 or CIFAR-100 from ``root/cifar-10{0}-batches-py``, fetched when absent and allowed."""
    cls, num_classes, url = CIFAR[variant]
    files = [name for name, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
    expected = Path(root) / cls.base_folder
    how = f"download {url} and extract it into {root}"
    train = _open(lambda: cls(root, train=True, download=download), expected, files, download, how)
    test = _open(lambda: cls(root, train=False, download=False), expected, files, False, how)
    return ImageSplits(
        from_hwc_numpy(train.data),
        torch.tensor(train.targets),
        from_hwc_numpy(test.data),
        torch.tensor(test.targets),
        num_classes,
    )


def load_svhn(root: str, download: bool = True) -> ImageSplits:
    """SVHN's train (73,257) and test (26,032) splits from ``root/svhn``; the extra split is unused, as in the paper."""
    folder = Path(root) / "svhn"
    files = [datasets.SVHN.split_list[s][1] for s in ("train", "test")]
    how = f"download {datasets.SVHN.split_list['train'][0]} and {datasets.SVHN.split_list['test'][0]} into {folder}"
    train = _open(lambda: datasets.SVHN(folder, split="train", download=download), folder, files, download, how)
    test = _open(lambda: datasets.SVHN(folder, split="test", download=download), folder, files, download, how)
    # torchvision keeps SVHN as (N, C, H, W) uint8 with label 10 already mapped to 0.
    return ImageSplits(
        torch.from_numpy(np.ascontiguousarray(train.data)),
        torch.from_numpy(train.labels.astype(np.int64)),
        torch.from_numpy(np.ascontiguousarray(test.data)),
        torch.from_numpy(test.labels.astype(np.int64)),
        num_classes=10,
    )


def _open(make, folder: Path, files: list[str], download: bool, how: str):
    """Build a torchvision dataset, turning 'missing' or 'unreachable' into one actionable sentence (and leaving no
    folder it created)."""
    try:
        with folders_removed_on_failure(folder):
            return make()
    except (RuntimeError, OSError) as error:  # missing/corrupt files; URLError is an OSError
        if download:
            reason = f"they could not be downloaded ({_short(error)})"
            remedy = f"{how} on a machine with internet access, or point MMX_DATA at a folder that holds them"
        else:
            reason = "dataset.download=false"
            remedy = f"{how}, point MMX_DATA at a folder that holds them, or set dataset.download=true"
        raise UserError(
            f"dataset files not found or corrupted in {folder} (expected {', '.join(files)}) and {reason}; {remedy}"
        ) from error


def _short(error: Exception) -> str:
    text = str(getattr(error, "reason", error)).strip().splitlines()
    return text[0] if text else type(error).__name__
