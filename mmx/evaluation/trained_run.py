"""A trained run loaded back for evaluation: its network, and its test split on the same device."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mmx.api import LoadedRun, load_run
from mmx.data import ImageSplits
from mmx.errors import UserError
from mmx.parts import load_data, resolve_device

CHECKPOINTS = ("best", "last")


@dataclass
class TrainedRun:
    """:class:`mmx.api.LoadedRun` with its test images as uint8 on the run's device.

    ``logits(pixels)`` takes images in pixel units (floats in [0, 1], before normalisation), the
    space in which attacks and deformations are defined.
    """

    loaded: LoadedRun
    data: ImageSplits
    device: torch.device

    def __getattr__(self, name):  # run_dir, cfg, network, epoch, checkpoint, mean, std
        return getattr(self.loaded, name)

    def logits(self, pixels: torch.Tensor, at_point=None) -> torch.Tensor:
        return self.network(self.loaded.normalize(pixels), at_point=at_point).float()

    def test_pixels(self, max_images: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        count = self.data.test_size if max_images is None else min(max_images, self.data.test_size)
        return self.data.test_images[:count].float() / 255, self.data.test_labels[:count]

    def val_pixels(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The validation split the run held out of its training set (empty without one)."""
        if self.data.val_images is None:
            return self.data.test_images[:0].float(), self.data.test_labels[:0]
        return self.data.val_images.float() / 255, self.data.val_labels


def load(run_dir, which: str = "best", device: str = "auto") -> TrainedRun:
    target = resolve_device(device)
    loaded = load_run(run_dir, which, target)
    data = load_data(loaded.cfg.dataset)
    if not isinstance(data, ImageSplits):
        raise UserError(
            f"mmx eval works on datasets held in memory, not on streamed folders ({loaded.cfg.dataset.name}); "
            f"evaluate a digits, MNIST, CIFAR, SVHN or Tiny-ImageNet run"
        )
    return TrainedRun(loaded, data.to(target), target)
