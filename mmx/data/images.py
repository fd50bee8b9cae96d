"""The in-memory form every dataset is loaded into."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class ImageSplits:
    """Train and test images as uint8 NCHW tensors with int64 labels.

    uint8 keeps CIFAR-10 at 150 MB, so whole datasets sit in (device) memory and batches are
    gathered, augmented and normalised there, with no worker processes.
    """

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    num_classes: int

    def __post_init__(self):
        for name in ("train_images", "test_images"):
            images = getattr(self, name)
            if images.dtype != torch.uint8 or images.dim() != 4:
                raise ValueError(f"{name} must be a uint8 NCHW tensor, got {images.dtype} {tuple(images.shape)}")
        if len(self.train_images) != len(self.train_labels) or len(self.test_images) != len(self.test_labels):
            raise ValueError("every image needs exactly one label")

    @property
    def channels(self) -> int:
        return self.train_images.shape[1]

    def to(self, device: torch.device) -> "ImageSplits":
        return ImageSplits(self.train_images.to(device), self.train_labels.to(device),
                           self.test_images.to(device), self.test_labels.to(device), self.num_classes)


def from_hwc_numpy(array) -> torch.Tensor:
    """(N, H, W, C) uint8 array, as torchvision's CIFAR keeps it, to an (N, C, H, W) tensor."""
    return torch.from_numpy(array).permute(0, 3, 1, 2).contiguous()
