"""Tiny-ImageNet (200 classes, 64x64): download, val/ reorganisation and a uint8 cache.

The release keeps its validation images in one folder labelled by ``val_annotations.txt``; like the
public code, mmx moves them into ``val/<wnid>/images/`` once, so that torchvision's ImageFolder
reads both splits with the same class index. The decoded images are then cached as one uint8
tensor file next to the data, so later runs load in seconds instead of decoding 110,000 JPEGs.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torchvision.datasets import ImageFolder
from torchvision.datasets.utils import download_and_extract_archive

from mmx.data.downloads import folders_removed_on_failure
from mmx.data.images import ImageSplits
from mmx.errors import UserError
from mmx.files import save_checkpoint

log = logging.getLogger(__name__)

URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
MD5 = "90528d7ca1a48142e341f4ef8d21d0de"
FOLDER = "tiny-imagenet-200"
CACHE = "mmx-uint8-cache.pt"
REQUIRED = ("wnids.txt", "words.txt", "train", "val")


def load_tiny_imagenet(root: str, download: bool = True) -> ImageSplits:
    folder = Path(root) / FOLDER
    cache = folder / CACHE
    if cache.is_file():
        return ImageSplits(**load_cache(cache))
    if not all((folder / name).exists() for name in REQUIRED):
        fetch(Path(root), download)
    reorganise_val(folder)
    data = decode(folder)
    save_checkpoint(vars(data), cache)
    log.info("cached Tiny-ImageNet as uint8 tensors in %s (delete it to rebuild)", cache)
    return data


def load_cache(cache: Path) -> dict:
    """The decoded images, loaded as plain tensors only (never by unpickling code)."""
    try:
        return torch.load(cache, map_location="cpu", weights_only=True)
    except Exception:
        raise UserError(
            f"{cache} is damaged or was not written by mmx, so it was not loaded; delete it and mmx will "
            f"decode the images again into a new cache"
        ) from None


def fetch(root: Path, download: bool) -> None:
    """Download and extract the release zip, verified against its MD5."""
    expected = f"{root / FOLDER} (expected {', '.join(REQUIRED)})"
    if not download:
        raise UserError(
            f"Tiny-ImageNet not found in {expected} and dataset.download=false; download {URL}, "
            f"unzip it into {root}, or set dataset.download=true"
        )
    try:
        with folders_removed_on_failure(root):
            download_and_extract_archive(URL, download_root=str(root), md5=MD5)
    except Exception as error:  # network, disk or checksum: all leave the user the same remedy
        raise UserError(
            f"Tiny-ImageNet not found in {expected} and it could not be downloaded "
            f"({str(error).splitlines()[0] if str(error) else type(error).__name__}); download {URL} "
            f"on a machine with internet access and unzip it into {root}"
        ) from error


def reorganise_val(folder: Path) -> None:
    """Move ``val/images/X.JPEG`` to ``val/<wnid>/images/X.JPEG`` (idempotent, safe to interrupt)."""
    flat = folder / "val" / "images"
    if not flat.is_dir():
        return
    annotations = folder / "val" / "val_annotations.txt"
    if not annotations.is_file():
        raise UserError(
            f"{annotations} is missing, so the validation images cannot be labelled; re-extract tiny-imagenet-200.zip"
        )
    for line in annotations.read_text().splitlines():
        if not line.strip():
            continue
        name, wnid = line.split("\t")[:2]
        source = flat / name
        if source.exists():
            target = folder / "val" / wnid / "images" / name
            target.parent.mkdir(parents=True, exist_ok=True)
            source.replace(target)
    if any(flat.iterdir()):
        raise UserError(
            f"{flat} still holds images that val_annotations.txt does not name; re-extract tiny-imagenet-200.zip"
        )
    flat.rmdir()


def decode(folder: Path) -> ImageSplits:
    wnids = sorted(folder.joinpath("wnids.txt").read_text().split())
    train, val = ImageFolder(str(folder / "train")), ImageFolder(str(folder / "val"))
    for split, name in ((train, "train"), (val, "val")):
        if split.classes != wnids:
            raise UserError(
                f"the class folders of {folder / name} do not match wnids.txt; re-extract tiny-imagenet-200.zip"
            )
    return ImageSplits(*_to_tensors(train), *_to_tensors(val), num_classes=len(wnids))


def _to_tensors(split: ImageFolder) -> tuple[torch.Tensor, torch.Tensor]:
    # Some images are greyscale; ImageFolder's loader converts every one to RGB.
    images = np.stack([np.asarray(split.loader(path)) for path, _ in split.samples])
    labels = torch.tensor([label for _, label in split.samples])
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), labels
