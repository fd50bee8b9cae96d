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

from mmx.errors import UserError

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
    and their states checkpointed, so a resumed run mixes exactly as an uninterrupted one. The
    mixer checks its own settings against the network's ``num_points`` mixing points.
    """

    def __init__(self, name: str, alpha: float, points: list[int], *, num_points: int, device: torch.device, seed: int):
        self.check(name, alpha, points, num_points)
        self.regime = name
        self.points = [] if name == "none" else list(points)
        self.device = device
        self.point_generator = torch.Generator().manual_seed(seed)
        self.device_generator = torch.Generator(device).manual_seed(seed + 1)
        self.concentration = torch.tensor([float(alpha), float(alpha)], device=device)

    @staticmethod
    def check(name: str, alpha: float, points, num_points: int | None = None) -> None:
        """The settings' one-sentence errors; ``num_points=None`` checks all but the model's range."""
        if name not in REGIMES:
            raise UserError(f"mixup={name} is not a mixing regime; choose one of {', '.join(REGIMES)}")
        if name == "none":
            return
        points = list(points)
        if not points:
            raise UserError(
                f"mixup.points=[] leaves mixup={name} nothing to mix; list at least one point "
                f"(0 is the input) or use mixup=none"
            )
        if not alpha > 0:
            raise UserError(
                f"mixup.alpha must be > 0 for mixup={name} (got {alpha}); the paper uses 1.0 for "
                f"input and 2.0 for manifold mixup on CIFAR"
            )
        if len(set(points)) != len(points):
            raise UserError(
                f"mixup.points={points} repeats a point, which would draw it more often than the "
                f"others; list each point once"
            )
        if any(k < 0 or (num_points is not None and k >= num_points) for k in points):
            top = "" if num_points is None else f"0..{num_points - 1} "
            raise UserError(
                f"mixup.points={points} is not a subset of this model's mixing points {top}(0 is the "
                f"input); pick points from that range"
            )

    @property
    def programs(self) -> list[int | None]:
        """What a training step can run: one program per mixing point, or the unmixed one (``None``)."""
        return list(self.points) if self.points else [None]

    @property
    def active(self) -> bool:
        return bool(self.points)

    def draw(self, batch_size: int) -> MixDraw | None:
        if not self.active:
            return None
        index = int(torch.randint(len(self.points), (1,), generator=self.point_generator))
        # lam ~ Beta(a, a) as the first coordinate of a Dirichlet(a, a) draw.
        lam = torch._sample_dirichlet(self.concentration, generator=self.device_generator)[0]
        perm = torch.randperm(batch_size, device=self.device, generator=self.device_generator)
        return MixDraw(self.points[index], lam, perm)

    def state_dict(self) -> dict:
        return {"point": self.point_generator.get_state(), "device": self.device_generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.point_generator.set_state(state["point"])
        self.device_generator.set_state(state["device"])
