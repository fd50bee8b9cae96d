"""Input mixup (Zhang et al., ICLR 2018): manifold mixup restricted to the input, point 0 (configs/mixup/input.yaml).
Its draws are manifold mixup's, so the two regimes differ only where the batch is mixed."""

from __future__ import annotations

from mmx.mixing.manifold import ManifoldMixup


class InputMixup(ManifoldMixup):
    """Mixes the images themselves: ``points: [0]``, ``alpha`` 1.0 in the paper's CIFAR recipes."""
