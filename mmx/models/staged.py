"""The one thing every mmx network shares: a chain of stages with mixing points between them."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

PointHook = Callable[[int, torch.Tensor], torch.Tensor]


class StagedNetwork(nn.Module):
    """A network written as ``stages[0] -> stages[1] -> ...``.

    Mixing point ``k`` is the input of ``stages[k]``: point 0 is the image itself, point 1 the
    output of the first stage, and so on. The forward pass calls ``at_point(k, h)`` at every point
    and carries on with what it returns, so manifold mixup (or any probe) works on any family
    without knowing its layers.
    """

    def __init__(self, stages: list[nn.Module]):
        super().__init__()
        self.stages = nn.ModuleList(stages)

    @property
    def num_points(self) -> int:
        """How many mixing points there are (valid indices are ``0 .. num_points - 1``)."""
        return len(self.stages)

    @torch.no_grad()
    def point_shapes(self, channels: int, image_size: int) -> tuple[tuple[int, ...], ...]:
        """One example's state shape at each mixing point (``(C, H, W)`` for feature maps), from one forward pass of a
        blank image in eval mode: nothing trains, no running statistic moves, no random number is drawn."""
        shapes: dict[int, tuple[int, ...]] = {}

        def record(k: int, h: torch.Tensor) -> torch.Tensor:
            shapes[k] = tuple(h.shape[1:])
            return h

        training = self.training
        parameter = next(self.parameters())
        self.eval()
        try:
            self(torch.zeros(1, channels, image_size, image_size, device=parameter.device), at_point=record)
        finally:
            self.train(training)
        return tuple(shapes[k] for k in range(self.num_points))

    def forward(self, x: torch.Tensor, at_point: PointHook | None = None) -> torch.Tensor:
        for k, stage in enumerate(self.stages):
            if at_point is not None:
                x = at_point(k, x)
            x = stage(x)
        return x


class ClassifierHead(nn.Module):
    """Global average pooling and a linear layer.

    Adaptive pooling equals the public code's fixed 4x4 (PreActResNet) or 8x8 (WRN) pool at 32x32
    and lets the same network take 8x8 digits or 64x64 Tiny-ImageNet images.
    """

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(torch.flatten(self.pool(x), 1))
