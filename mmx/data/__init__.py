"""Datasets, and the batches a training step draws from them.

Every loader returns a :class:`Splits`: in memory as uint8 tensors (:class:`ImageSplits`: digits,
CIFAR, SVHN, Tiny-ImageNet, synthetic), or streamed from image folders (ImageNet). Both hand out
:class:`Batches` of normalised images on the training device.
"""

from __future__ import annotations

from typing import Iterator, Protocol

import torch

from mmx.data.batches import Normalizer, TrainBatches, eval_batches, process_slice
from mmx.data.holdout import Validation
from mmx.data.images import ImageSplits


class Batches(Protocol):
    """An epoch of training batches: full global batches of ``batch_size``, this process's slice of each."""

    batch_size: int

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


class Splits(Protocol):
    """A dataset's train and test splits (and a validation split held out of the training set, when asked
    for), and what a network needs to know of their images."""

    num_classes: int
    validation: Validation | None  # which images the validation split holds, None without one

    @property
    def channels(self) -> int: ...

    @property
    def image_size(self) -> int: ...

    @property
    def train_size(self) -> int: ...

    @property
    def test_size(self) -> int: ...

    @property
    def val_size(self) -> int: ...

    def with_validation(self, size, seed: int = 0) -> "Splits": ...

    def with_labels_per_class(self, count: int, seed: int = 0) -> "Splits": ...

    def with_classes(self, classes: list[int]) -> "Splits": ...

    def to(self, device: torch.device) -> "Splits": ...

    def train_batches(
        self,
        batch_size: int,
        normalizer: Normalizer,
        *,
        crop_padding,
        flip,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
    ) -> Batches: ...

    def test_batches(
        self, first: int, last: int, batch_size: int, normalizer: Normalizer
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...

    def val_batches(
        self, first: int, last: int, batch_size: int, normalizer: Normalizer
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...


__all__ = [
    "Batches",
    "ImageSplits",
    "Normalizer",
    "Splits",
    "TrainBatches",
    "Validation",
    "eval_batches",
    "process_slice",
]
