"""torchvision's datasets: its downloads, file layouts and MD5 checks. CIFAR-10/100 and SVHN as the paper uses them,
and any of its in-memory classification sets with a train and a test split (MNIST, FashionMNIST, KMNIST, ...) by
its class name, so that such a dataset is one YAML (``load_torchvision``)."""

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


def load_torchvision(root: str, dataset: str, download: bool = True) -> ImageSplits:
    """torchvision's dataset class ``dataset`` (``FashionMNIST``, say) from ``root/dataset``, fetched when absent and
    allowed:
    any of its classification sets built as ``cls(root, train=..., download=...)`` with uint8 ``data`` and
    ``targets``, whether (N, H, W), (N, H, W, C) numpy arrays or tensors."""
    cls = getattr(datasets, dataset, None)
    if not isinstance(cls, type) or not issubclass(cls, datasets.VisionDataset):
        raise UserError(
            f"dataset.source.dataset={dataset} is not one of torchvision's datasets; use its class name, such as "
            f"FashionMNIST or KMNIST"
        )
    how = f"let torchvision download {dataset} into {root} on a machine with internet access"
    train = _open(lambda: cls(root, train=True, download=download), Path(root) / dataset, [], download, how)
    test = _open(lambda: cls(root, train=False, download=False), Path(root) / dataset, [], False, how)
    splits = [(_channels_first(part.data), torch.as_tensor(part.targets, dtype=torch.long)) for part in (train, test)]
    classes = len(getattr(train, "classes", [])) or int(max(splits[0][1].max(), splits[1][1].max())) + 1
    return ImageSplits(*splits[0], *splits[1], num_classes=classes)


def _channels_first(data) -> torch.Tensor:
    """torchvision's images, (N, H, W) or (N, H, W, C), as an (N, C, H, W) uint8 tensor."""
    images = torch.as_tensor(np.asarray(data), dtype=torch.uint8)
    return images[:, None].contiguous() if images.dim() == 3 else images.permute(0, 3, 1, 2).contiguous()


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
        expected = f" (expected {', '.join(files)})" if files else ""
        raise UserError(f"dataset files not found or corrupted in {folder}{expected} and {reason}; {remedy}") from error


def _short(error: Exception) -> str:
    text = str(getattr(error, "reason", error)).strip().splitlines()
    return text[0] if text else type(error).__name__
