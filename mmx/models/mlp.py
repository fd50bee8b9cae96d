"""Fully connected networks with a narrow bottleneck, as in the paper's spectrum (Appendix G) and spiral
(Figure 1) studies.

Mixing points: 0 is the (flattened) input, 1 the bottleneck, the only hidden layer the paper mixes
there. The bottleneck is linear, so its representations are free to spread over all its dimensions.
"""

from __future__ import annotations

from torch import nn

from mmx.models.staged import StagedNetwork


def _layers(sizes: list[int], last_activation: bool) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers.append(nn.Linear(a, b))
        if last_activation or i < len(sizes) - 2:
            layers.append(nn.LeakyReLU(0.2))
    return layers


class BottleneckMLP(StagedNetwork):
    """``before`` hidden layers of ``width``, a linear ``bottleneck``, ``after`` hidden layers, a linear classifier.

    The paper's MNIST network is ``before=3, after=4, width=1024`` with a bottleneck of 12 or 30
    units; its spiral network (nine linear layers, 2-D bottleneck in the middle) is
    ``before=4, after=3, bottleneck=2``. ``image_size`` and ``in_channels`` give the input size
    (images are flattened); ``in_features`` sets it directly for non-image inputs.
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        image_size: int = 8,
        in_features: int | None = None,
        width: int = 1024,
        bottleneck: int = 12,
        before: int = 3,
        after: int = 4,
    ):
        if before < 1 or after < 0 or bottleneck < 1:
            raise ValueError(
                f"BottleneckMLP needs before >= 1, after >= 0 and bottleneck >= 1 (got {before}, {after}, {bottleneck})"
            )
        inputs = in_features or in_channels * image_size * image_size
        encoder = _layers([inputs] + [width] * before + [bottleneck], last_activation=False)
        decoder = _layers([bottleneck] + [width] * after + [num_classes], last_activation=False)
        super().__init__([nn.Sequential(nn.Flatten(), *encoder), nn.Sequential(*decoder)])
