"""Wide ResNets (Zagoruyko & Komodakis) in the form of the Manifold Mixup public code.

Facts matched: convolutions carry biases, the stride sits on a block's second conv, the shortcut
is a 1x1 conv (with bias) of the raw block input when the shape changes, a final BN (momentum 0.9
in PyTorch terms) + ReLU before pooling, and PyTorch's default initialisation: the public code
defines a Xavier-uniform init (gain sqrt(2), zero biases) but never applies it, so the networks
that made the paper's numbers started from the default (``init="xavier"`` applies it).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from mmx.models.staged import ClassifierHead, StagedNetwork


class WideBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int, dropout: float):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, 1, 1, bias=True)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=True)
        self.shortcut = (
            nn.Conv2d(in_planes, planes, 1, stride, bias=True) if stride != 1 or in_planes != planes else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.dropout(self.conv1(F.relu(self.bn1(x))))
        out = self.conv2(F.relu(self.bn2(out)))
        return out + self.shortcut(x)


class FinalActivation(nn.Module):
    """The BN-ReLU that closes a WRN (PreActResNet has none)."""

    def __init__(self, channels: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, momentum=0.9)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(x))


class WideResNet(StagedNetwork):
    """WRN-``depth``-``widen_factor``; mixing points: 0 input, 1-3 outputs of its three stages."""

    def __init__(
        self,
        depth: int = 28,
        widen_factor: int = 10,
        num_classes: int = 10,
        in_channels: int = 3,
        image_size: int = 32,
        dropout: float = 0.0,
        stem_stride: int | str = "auto",
        init: str = "default",
    ):
        if (depth - 4) % 6 != 0:
            raise ValueError(f"WideResNet depth must be 6n+4 (e.g. 16, 22, 28, 40), got {depth}")
        if init not in ("default", "xavier"):
            raise ValueError(f"WideResNet init must be default or xavier, got {init!r}")
        blocks_per_stage = (depth - 4) // 6
        widths = [16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        if stem_stride == "auto":  # the public code's stride-2 stem for 64x64 images
            stem_stride = 2 if image_size >= 64 else 1
        stem = nn.Conv2d(in_channels, 16, 3, int(stem_stride), 1, bias=True)
        in_planes = 16
        stages = []
        for planes, stride in zip(widths, (1, 2, 2)):
            blocks = []
            for s in [stride] + [1] * (blocks_per_stage - 1):
                blocks.append(WideBlock(in_planes, planes, s, dropout))
                in_planes = planes
            stages.append(nn.Sequential(*blocks))
        super().__init__(
            [
                nn.Sequential(stem, stages[0]),
                stages[1],
                stages[2],
                nn.Sequential(FinalActivation(in_planes), ClassifierHead(in_planes, num_classes)),
            ]
        )
        if init == "xavier":
            self._xavier_init()

    def _xavier_init(self) -> None:
        """The initialisation the public code defines (and never calls)."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.xavier_uniform_(module.weight, gain=math.sqrt(2))
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
