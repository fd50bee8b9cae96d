"""Datasets too large for device memory (ImageNet): JPEG folders streamed through DataLoader workers.

Workers decode and augment with torchvision's transforms and hand over uint8 tensors in pinned
memory; the copy to the device is asynchronous and normalisation happens there, as for in-memory
data. Every image's augmentation is seeded by (run seed, epoch, index), so a resumed run draws the
same crops as an uninterrupted one, whatever the number of workers.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Subset
from torchvision.datasets import ImageFolder

from mmx.data.batches import process_slice
from mmx.data.holdout import Validation, stratified_split
from mmx.data.images import balanced_subset
from mmx.errors import UserError


def load_image_folders(
    root: str,
    train_transform,
    test_transform,
    workers: int = 8,
    image_size: int = 224,
    train: str = "train",
    test: str = "val",
) -> "FolderSplits":
    """``root/train/<class>/*`` and ``root/val/<class>/*`` as torchvision ImageFolders (ImageNet's usual layout).

    ImageNet is never downloaded: its licence requires fetching it yourself. torchvision's
    ``datasets.ImageNet(root, split=...)`` turns the official archives into this layout.
    """
    folders = [Path(root) / train, Path(root) / test]
    missing = [str(f) for f in folders if not f.is_dir()]
    if missing:
        raise UserError(
            f"image folders not found: {', '.join(missing)}; put one sub-folder of images per class in "
            f"{folders[0]} and {folders[1]} (torchvision.datasets.ImageNet(root, split=...) builds "
            f"them from the official archives) and point MMX_DATA at their parent"
        )
    train_set = ImageFolder(str(folders[0]), transform=train_transform)
    test_set = ImageFolder(str(folders[1]), transform=test_transform)
    if train_set.classes != test_set.classes:
        raise UserError(
            f"{folders[0]} and {folders[1]} hold different classes ({len(train_set.classes)} vs "
            f"{len(test_set.classes)}); both need the same class sub-folders"
        )
    return FolderSplits(train_set, test_set, len(train_set.classes), workers, image_size)


@dataclass
class FolderSplits:
    """The streamed counterpart of :class:`mmx.data.images.ImageSplits`, with the same batch interface."""

    train_set: Dataset
    test_set: Dataset
    num_classes: int
    workers: int
    image_size: int  # what the transforms crop to
    channels: int = 3
    device: torch.device = torch.device("cpu")  # where batches go; the images stay on disk
    val_set: Dataset | None = None  # training images held out (with_validation), read as test images are
    validation: Validation | None = None

    @property
    def train_size(self) -> int:
        return len(self.train_set)

    @property
    def test_size(self) -> int:
        return len(self.test_set)

    @property
    def val_size(self) -> int:
        return 0 if self.val_set is None else len(self.val_set)

    def with_validation(self, size, seed: int = 0) -> "FolderSplits":
        """Hold out ``size`` training images per class (:func:`mmx.data.holdout.stratified_split`); they are
        decoded with the test transform (resize and centre crop), not augmented."""
        if isinstance(self.train_set, Subset):
            raise ValueError("hold out the validation split before taking a subset of the training set")
        targets = torch.tensor(_targets(self.train_set))
        keep, held = stratified_split(targets, self.num_classes, size, seed, "dataset.val_size")
        unaugmented = copy.copy(self.train_set)
        unaugmented.transform = self.test_set.transform
        return dataclasses.replace(
            self,
            train_set=Subset(self.train_set, keep.tolist()),
            val_set=Subset(unaugmented, held.tolist()),
            validation=Validation.of(size, seed, held, targets[held], self.num_classes),
        )

    def with_labels_per_class(self, count: int, seed: int = 0) -> "FolderSplits":
        targets = torch.tensor(_targets(self.train_set))
        subset = Subset(self.train_set, balanced_subset(targets, self.num_classes, count, seed).tolist())
        return dataclasses.replace(self, train_set=subset)

    def with_classes(self, classes: list[int]) -> "FolderSplits":
        raise UserError(
            "dataset.classes keeps a subset of the classes of in-memory datasets, not of image folders; "
            "make a folder that holds only the classes you want, or drop dataset.classes"
        )

    def to(self, device: torch.device) -> "FolderSplits":
        return dataclasses.replace(self, device=device)

    def train_batches(
        self,
        batch_size: int,
        normalizer,
        *,
        crop_padding,
        flip,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
    ) -> "LoaderBatches":
        if crop_padding or flip:
            raise UserError(
                "dataset.crop_padding and dataset.flip apply to in-memory datasets; augment image "
                "folders through dataset.source.train_transform and set both to null"
            )
        return LoaderBatches(self.train_set, batch_size, normalizer, self.device, self.workers, seed, rank, world_size)

    def test_batches(self, first: int, last: int, batch_size: int, normalizer):
        return self._in_order(self.test_set, first, last, batch_size, normalizer)

    def val_batches(self, first: int, last: int, batch_size: int, normalizer):
        return self._in_order(self.val_set, first, last, batch_size, normalizer)

    def _in_order(self, dataset: Dataset, first: int, last: int, batch_size: int, normalizer):
        loader = DataLoader(
            Subset(dataset, range(first, last)),
            batch_size=batch_size,
            num_workers=self.workers,
            pin_memory=self.device.type == "cuda",
        )
        return _to_device(loader, self.device, normalizer)


def _targets(dataset: Dataset) -> list[int]:
    if isinstance(dataset, Subset):
        targets = _targets(dataset.dataset)
        return [targets[i] for i in dataset.indices]
    return list(dataset.targets)


class SeededSamples(Dataset):
    """``dataset[i]`` under a random seed fixed by (seed, epoch, i): reproducible augmentation in any worker."""

    def __init__(self, dataset: Dataset, seed: int):
        self.dataset, self.seed = dataset, seed

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]):
        epoch, index = key
        digest = hashlib.blake2b(f"{self.seed}/{epoch}/{index}".encode(), digest_size=8).digest()
        with torch.random.fork_rng(devices=[]):  # torchvision's random transforms draw from the global RNG
            torch.manual_seed(int.from_bytes(digest, "little") >> 1)
            return self.dataset[index]


class EpochBatches(torch.utils.data.Sampler):
    """Per epoch, a permutation seeded by (seed, epoch) cut into full global batches; this process's slice of each."""

    def __init__(self, size: int, batch_size: int, seed: int, rank: int, world_size: int):
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self.start = 0  # the step the next epoch starts at: 0, or where a mid-epoch checkpoint stopped

    def __len__(self) -> int:
        return self.size // self.batch_size

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        epoch, self.epoch = self.epoch, self.epoch + 1
        start, self.start = self.start, 0
        order = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed * 100_003 + epoch))
        for step in range(start, len(self)):
            yield [(epoch, int(i)) for i in order[process_slice(step, self.batch_size, self.rank, self.world_size)]]


class LoaderBatches:
    """Training batches from a DataLoader: workers, pinned memory, persistent workers, asynchronous copies."""

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        normalizer,
        device: torch.device,
        workers: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
    ):
        self.batch_size = batch_size
        self.sampler = EpochBatches(len(dataset), batch_size, seed, rank, world_size)
        self.loader = DataLoader(
            SeededSamples(dataset, seed),
            batch_sampler=self.sampler,
            num_workers=workers,
            pin_memory=device.type == "cuda",
            persistent_workers=workers > 0,
        )
        self.normalizer, self.device = normalizer, device

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self):
        return _to_device(self.loader, self.device, self.normalizer)

    def state_dict(self, position: int | None = None) -> dict:
        """The next epoch's number; inside an epoch (``position``: the steps it has done) that epoch's, and where
        in it to go on (the workers' prefetching has already counted it as begun)."""
        if position is None:
            return {"epoch": self.sampler.epoch}
        return {"epoch": self.sampler.epoch - 1, "position": position}

    def load_state_dict(self, state: dict) -> None:
        self.sampler.epoch = int(state["epoch"])
        self.sampler.start = int(state.get("position", 0))


def _to_device(loader: DataLoader, device: torch.device, normalizer):
    for images, labels in loader:
        yield normalizer(images.to(device, non_blocking=True)), labels.to(device, non_blocking=True)
