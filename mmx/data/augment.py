"""Batched augmentation on the device holding the images (no per-sample Python)."""

from __future__ import annotations

import torch


def random_crop_flip(images: torch.Tensor, padding: int, flip: bool, generator: torch.Generator) -> torch.Tensor:
    """Per-sample random crop with zero padding, then random horizontal flip.

    Same distribution as torchvision's ``RandomCrop(size, padding)`` followed by
    ``RandomHorizontalFlip()``: each image takes an offset uniform in ``0..2*padding`` on each axis
    of the zero-padded image, and is mirrored with probability 1/2. The result is left in the gather's
    layout (NHWC): :class:`mmx.data.Normalizer` gives batches the layout the network trains in.
    """
    n, _, h, w = images.shape
    device = images.device
    if padding > 0:
        padded = torch.nn.functional.pad(images, (padding, padding, padding, padding))
        dy = torch.randint(0, 2 * padding + 1, (n, 1, 1), device=device, generator=generator)
        dx = torch.randint(0, 2 * padding + 1, (n, 1, 1), device=device, generator=generator)
        rows = (dy + torch.arange(h, device=device).view(1, h, 1)).expand(n, h, w)
        cols = (dx + torch.arange(w, device=device).view(1, 1, w)).expand(n, h, w)
        batch = torch.arange(n, device=device).view(n, 1, 1).expand(n, h, w)
        # Advanced indexing on (N, H, W) gives (N, H, W, C); a view moves channels back.
        images = padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)
    if flip:
        mirror = torch.rand(n, device=device, generator=generator) < 0.5
        images = torch.where(mirror.view(n, 1, 1, 1), images.flip(3), images)
    return images


def normalize(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 pixels to normalised float32: (x / 255 - mean) / std in one fused expression."""
    return (images.float() * (1.0 / 255.0) - mean) / std
