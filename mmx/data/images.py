"""The in-memory form every dataset is loaded into."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import torch

from mmx.data.batches import TrainBatches, eval_batches
from mmx.data.holdout import Validation, stratified_split
from mmx.errors import UserError

log = logging.getLogger("mmx")


@dataclass
class ImageSplits:
    """Train, test and (with ``dataset.val_size``) validation images as uint8 NCHW tensors with int64 labels.

    uint8 keeps CIFAR-10 at 150 MB, so whole datasets sit in (device) memory and batches are
    gathered, augmented and normalised there, with no worker processes. The validation images are
    held out of the training set (:meth:`with_validation`); ``validation`` records which.
    """

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    num_classes: int
    val_images: torch.Tensor | None = None
    val_labels: torch.Tensor | None = None
    validation: Validation | None = None

    def __post_init__(self):
        for name in ("train_images", "test_images", "val_images"):
            images = getattr(self, name)
            if images is not None and (images.dtype != torch.uint8 or images.dim() != 4):
                raise ValueError(f"{name} must be a uint8 NCHW tensor, got {images.dtype} {tuple(images.shape)}")
        pairs = [(self.train_images, self.train_labels), (self.test_images, self.test_labels)]
        if self.val_images is not None or self.val_labels is not None:
            pairs.append((self.val_images, self.val_labels))
        if any(images is None or labels is None or len(images) != len(labels) for images, labels in pairs):
            raise ValueError("every image needs exactly one label")

    @property
    def channels(self) -> int:
        return self.train_images.shape[1]

    @property
    def image_size(self) -> int:
        """Pixels per side (images are square, or the larger side decides the network's stem)."""
        return max(self.train_images.shape[2:])

    @property
    def train_size(self) -> int:
        return len(self.train_images)

    @property
    def test_size(self) -> int:
        return len(self.test_images)

    @property
    def val_size(self) -> int:
        """Validation images (0 without a validation split)."""
        return 0 if self.val_images is None else len(self.val_images)

    def with_validation(self, size, seed: int = 0) -> "ImageSplits":
        """``size`` training images (a count, or a fraction) held out per class as the validation split; the
        test set is untouched. See :func:`mmx.data.holdout.stratified_split`."""
        keep, held = stratified_split(self.train_labels, self.num_classes, size, seed, "dataset.val_size")
        return replace(
            self,
            train_images=self.train_images[keep],
            train_labels=self.train_labels[keep],
            val_images=self.train_images[held],
            val_labels=self.train_labels[held],
            validation=Validation.of(size, seed, held, self.train_labels[held], self.num_classes),
        )

    def with_labels_per_class(self, count: int, seed: int = 0) -> "ImageSplits":
        """Keep at most ``count`` training images of every class (the low-data regime); see :func:`balanced_subset`.
        The validation split, if any, is already held out: the count is of what remains for training."""
        index = balanced_subset(self.train_labels, self.num_classes, count, seed)
        return replace(self, train_images=self.train_images[index], train_labels=self.train_labels[index])

    def with_classes(self, classes: list[int]) -> "ImageSplits":
        """Only the images of ``classes``, in both splits, relabelled 0..len(classes)-1 in the order given
        (a d-class subset of a dataset; see :func:`class_subset`). Taken before any validation split."""
        if self.validation is not None:
            raise ValueError("choose the classes before holding out a validation split")
        train, train_labels = class_subset(self.train_labels, classes)
        test, test_labels = class_subset(self.test_labels, classes)
        return ImageSplits(self.train_images[train], train_labels, self.test_images[test], test_labels, len(classes))

    def train_batches(
        self,
        batch_size: int,
        normalizer,
        *,
        crop_padding: int,
        flip: bool,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
    ):
        return TrainBatches(
            self.train_images,
            self.train_labels,
            batch_size,
            normalizer,
            crop_padding,
            flip,
            seed=seed,
            rank=rank,
            world_size=world_size,
        )

    def test_batches(self, first: int, last: int, batch_size: int, normalizer):
        """Test images ``first..last-1`` in order, normalised, with their labels."""
        return eval_batches(self.test_images[first:last], self.test_labels[first:last], batch_size, normalizer)

    def val_batches(self, first: int, last: int, batch_size: int, normalizer):
        """Validation images ``first..last-1`` in order, unaugmented, normalised, with their labels."""
        return eval_batches(self.val_images[first:last], self.val_labels[first:last], batch_size, normalizer)

    def to(self, device: torch.device) -> "ImageSplits":
        def moved(tensor):
            return None if tensor is None else tensor.to(device)

        return replace(
            self,
            train_images=moved(self.train_images),
            train_labels=moved(self.train_labels),
            test_images=moved(self.test_images),
            test_labels=moved(self.test_labels),
            val_images=moved(self.val_images),
            val_labels=moved(self.val_labels),
        )


def balanced_subset(labels: torch.Tensor, num_classes: int, count: int, seed: int = 0) -> torch.Tensor:
    """Sorted indices of at most ``count`` examples of every class, drawn with a fixed seed.

    A class with fewer keeps all of its examples, as the public code's ``labels_per_class`` does (its
    SVHN command caps the larger classes at 7,325 and keeps the smaller whole); the log says how
    many were kept. The seed belongs to the subset, not to the run: every seed of a sweep trains on
    the same images.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise UserError(
            f"dataset.labels_per_class must be a positive integer (got {count!r}); set it to the number "
            f"of training images to keep per class, or null for all"
        )
    generator = torch.Generator().manual_seed(seed)
    labels = torch.as_tensor(labels).cpu()
    keep, short = [], []
    for label in range(num_classes):
        members = (labels == label).nonzero().flatten()
        if len(members) < count:
            short.append(f"{label} ({len(members)})")
        keep.append(members[torch.randperm(len(members), generator=generator)[:count]])
    index = torch.cat(keep).sort().values
    log.info(
        "dataset.labels_per_class=%d: training on %d of %d images%s",
        count,
        len(index),
        len(labels),
        f"; classes with fewer keep all of theirs: {', '.join(short)}" if short else "",
    )
    return index


def class_subset(labels: torch.Tensor, classes: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The indices of the examples whose label is in ``classes`` (in their order in the split), and their labels
    renumbered by position in ``classes`` (``classes=[3, 7]``: 3 becomes 0 and 7 becomes 1)."""
    labels = torch.as_tensor(labels)
    match = labels[:, None] == torch.as_tensor(classes)[None, :]  # [example, position in classes]
    index = match.any(dim=1).nonzero().flatten()
    return index, match[index].long().argmax(dim=1)


def from_hwc_numpy(array) -> torch.Tensor:
    """(N, H, W, C) uint8 array, as torchvision's CIFAR keeps it, to an (N, C, H, W) tensor."""
    return torch.from_numpy(array).permute(0, 3, 1, 2).contiguous()
