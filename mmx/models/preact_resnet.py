"""Pre-activation ResNets in the CIFAR form used by the Manifold Mixup public code.

Facts matched (and asserted by the tests through parameter counts): a 3x3 stem of ``width``
channels, four stages of pre-activation blocks with widths ``width * (1, 2, 4, 8)`` and strides
1/2/2/2, a 1x1 projection shortcut without BN taken from the pre-activated input when the shape
changes, no final BN-ReLU before pooling, and a linear head.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mmx.models.staged import ClassifierHead, StagedNetwork


class PreActBlock(nn.Module):
    """Basic block: BN-ReLU-conv3x3, BN-ReLU-conv3x3."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.shortcut = _projection(in_planes, planes * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class PreActBottleneck(nn.Module):
    """Bottleneck block: 1x1 reduce, 3x3 (strided), 1x1 expand by 4, all pre-activated."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.shortcut = _projection(in_planes, planes * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        out = self.conv3(F.relu(self.bn3(out)))
        return out + shortcut


def _stem(kind: str, in_channels: int, width: int, stride: int) -> nn.Module:
    if kind == "cifar":
        return nn.Conv2d(in_channels, width, 3, stride, 1, bias=False)
    if kind == "imagenet":
        return nn.Sequential(
            nn.Conv2d(in_channels, width, 7, 2, 3, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        )
    raise ValueError(f"PreActResNet stem must be cifar or imagenet, got {kind!r}")


def _projection(in_planes: int, out_planes: int, stride: int) -> nn.Module | None:
    if stride == 1 and in_planes == out_planes:
        return None
    return nn.Conv2d(in_planes, out_planes, 1, stride, bias=False)


# depth -> (block, blocks per stage), as in the public code.
ARCHITECTURES = {
    18: (PreActBlock, (2, 2, 2, 2)),
    34: (PreActBlock, (3, 4, 6, 3)),
    50: (PreActBottleneck, (3, 4, 6, 3)),
    101: (PreActBottleneck, (3, 4, 23, 3)),
    152: (PreActBottleneck, (3, 8, 36, 3)),
}


def stem_for(image_size: int, stem: str = "auto", stem_stride="auto") -> tuple[str, int]:
    """The stem that suits ``image_size`` (``auto``), or the one asked for.

    The public code's 3x3 convolution up to 63x63 (CIFAR, SVHN, digits), with stride 2 from 64x64
    (its Tiny-ImageNet form); ImageNet's 7x7/2 convolution and 3x3/2 max pool from 128x128.
    """
    if stem == "auto":
        stem = "imagenet" if image_size >= 128 else "cifar"
    if stem_stride == "auto":
        stem_stride = 2 if stem == "cifar" and image_size >= 64 else 1
    return stem, int(stem_stride)


class PreActResNet(StagedNetwork):
    """PreActResNet-``depth``; mixing points: 0 input, 1-3 outputs of residual stages 1-3.

    ``stem="cifar"`` is the public code's 3x3 convolution (``stem_stride=2`` its Tiny-ImageNet
    variant); ``stem="imagenet"`` the ImageNet ResNets' 7x7/2 convolution, BN-ReLU and 3x3/2 max
    pool, which bring 224x224 inputs to 56x56 before the first stage; ``auto`` (both) follows
    ``image_size`` (:func:`stem_for`). ``width`` scales every stage (64 is the paper's; tests use
    tiny widths).
    """

    def __init__(
        self,
        depth: int = 18,
        num_classes: int = 10,
        in_channels: int = 3,
        image_size: int = 32,
        width: int = 64,
        stem_stride: int | str = "auto",
        stem: str = "auto",
    ):
        if depth not in ARCHITECTURES:
            raise ValueError(f"PreActResNet depth must be one of {sorted(ARCHITECTURES)}, got {depth}")
        block, counts = ARCHITECTURES[depth]
        stem, stem_stride = stem_for(image_size, stem, stem_stride)
        stem = _stem(stem, in_channels, width, stem_stride)
        in_planes = width
        residual_stages = []
        for i, (count, stride) in enumerate(zip(counts, (1, 2, 2, 2))):
            planes = width * 2**i
            blocks = []
            for s in [stride] + [1] * (count - 1):
                blocks.append(block(in_planes, planes, s))
                in_planes = planes * block.expansion
            residual_stages.append(nn.Sequential(*blocks))
        head = ClassifierHead(in_planes, num_classes)
        super().__init__(
            [
                nn.Sequential(stem, residual_stages[0]),
                residual_stages[1],
                residual_stages[2],
                nn.Sequential(residual_stages[3], head),
            ]
        )
