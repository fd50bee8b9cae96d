"""Random images with random labels: for timing training steps (``mmx bench``), not for learning."""

from __future__ import annotations

import torch

from mmx.data.images import ImageSplits


def load_synthetic(
    train_size: int = 5000,
    test_size: int = 1000,
    image_size: int = 32,
    channels: int = 3,
    num_classes: int = 10,
    seed: int = 0,
) -> ImageSplits:
    generator = torch.Generator().manual_seed(seed)

    def images(n):
        return torch.randint(0, 256, (n, channels, image_size, image_size), dtype=torch.uint8, generator=generator)

    def labels(n):
        return torch.randint(0, num_classes, (n,), generator=generator)

    return ImageSplits(images(train_size), labels(train_size), images(test_size), labels(test_size), num_classes)
