"""Manifold mixup: which point to mix at, how much, and with whom; and the mixing itself.

Per batch the paper draws one mixing point k uniformly from the eligible set (k = 0 is the input,
so input mixup is the set {0}), one lam ~ Beta(alpha, alpha) and one permutation of the batch.
The hidden state at k becomes ``lam * h + (1 - lam) * h[perm]`` and the one-hot targets are
mixed with the same lam and permutation.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

REGIMES = ("none", "input", "manifold")


def mix(x: torch.Tensor, lam: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """Convex combination of a batch with a row-shuffled copy of itself."""
    return lam * x + (1 - lam) * x[perm]


@dataclass
class MixDraw:
    """One batch's draw: the mixing point (a host int), lam and perm (device tensors)."""

    point: int
    lam: torch.Tensor
    perm: torch.Tensor

    def at_point(self, k: int, h: torch.Tensor) -> torch.Tensor:
        """Hook for :meth:`StagedNetwork.forward`: mix at the drawn point, pass through elsewhere."""
        return mix(h, self.lam.to(h.dtype), self.perm) if k == self.point else h

    def targets(self, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
        return mix(F.one_hot(labels, num_classes).float(), self.lam, self.perm)


class Mixer:
    """Draws :class:`MixDraw` per batch for the ``none``, ``input`` or ``manifold`` regime.

    The point is drawn on the host (it chooses which code runs, so it must be known there without
    a device sync); lam and the permutation are drawn on the device. Both generators are seeded
    and their states checkpointed, so a resumed run mixes exactly as an uninterrupted one.
    """

    def __init__(self, regime: str, alpha: float, layers: list[int], device: torch.device, seed: int):
        if regime not in REGIMES:
            raise ValueError(f"mixup regime must be one of {REGIMES}, got {regime!r}")
        self.regime = regime
        self.layers = [] if regime == "none" else list(layers)
        self.device = device
        self.point_generator = torch.Generator().manual_seed(seed)
        self.device_generator = torch.Generator(device).manual_seed(seed + 1)
        self.concentration = torch.tensor([float(alpha), float(alpha)], device=device)

    @property
    def active(self) -> bool:
        return bool(self.layers)

    def draw(self, batch_size: int) -> MixDraw | None:
        if not self.active:
            return None
        index = int(torch.randint(len(self.layers), (1,), generator=self.point_generator))
        # lam ~ Beta(a, a) as the first coordinate of a Dirichlet(a, a) draw.
        lam = torch._sample_dirichlet(self.concentration, generator=self.device_generator)[0]
        perm = torch.randperm(batch_size, device=self.device, generator=self.device_generator)
        return MixDraw(self.layers[index], lam, perm)

    def state_dict(self) -> dict:
        return {"point": self.point_generator.get_state(), "device": self.device_generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.point_generator.set_state(state["point"])
        self.device_generator.set_state(state["device"])
