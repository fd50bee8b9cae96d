"""Manifold mixup: which points to mix at, how much, and with whom; and the mixing itself.

Per batch the paper draws one mixing point k uniformly from the eligible set (k = 0 is the input,
so input mixup is the set {0}), one lam ~ Beta(alpha, alpha) and one permutation of the batch.
The hidden state at k becomes ``lam * h + (1 - lam) * h[perm]`` and the one-hot targets are
mixed with the same lam and permutation.

``points_per_step = K > 1`` (beyond the paper) draws K distinct points per batch and mixes at each,
in forward order, with a lam and a permutation of its own. The targets undergo the same operations
in the same order, so they are exactly the mixture of labels that the network's last mixed state is
a mixture of.
"""

from __future__ import annotations

import itertools
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
    """One batch's draw: the mixing points in forward order (host ints), and for each a lam and a
    permutation (device tensors: ``lams`` of shape ``[K]``, ``perms`` of shape ``[K, batch]``)."""

    points: tuple[int, ...]
    lams: torch.Tensor
    perms: torch.Tensor

    @classmethod
    def one(cls, point: int, lam: torch.Tensor, perm: torch.Tensor) -> MixDraw:
        """The paper's draw: one point, one lam, one permutation."""
        return cls((point,), lam[None], perm[None])

    def at_point(self, k: int, h: torch.Tensor) -> torch.Tensor:
        """Hook for :meth:`StagedNetwork.forward`: mix at the drawn points, pass through elsewhere."""
        if k not in self.points:
            return h
        i = self.points.index(k)
        return mix(h, self.lams[i].to(h.dtype), self.perms[i])

    def targets(self, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
        """The one-hot targets put through the same mixes, in the same order, as the hidden states."""
        targets = F.one_hot(labels, num_classes).float()
        for i in range(len(self.points)):
            targets = mix(targets, self.lams[i], self.perms[i])
        return targets


class Mixer:
    """Draws :class:`MixDraw` per batch for the ``none``, ``input`` or ``manifold`` regime.

    The points are drawn on the host (it chooses which code runs, so it must be known there without
    a device sync); lam and the permutation are drawn on the device. Both generators are seeded
    and their states checkpointed, so a resumed run mixes exactly as an uninterrupted one. The
    mixer checks its own settings against the network's ``num_points`` mixing points.
    """

    def __init__(
        self,
        name: str,
        alpha: float,
        points: list[int],
        points_per_step: int = 1,
        *,
        num_points: int,
        device: torch.device,
        seed: int,
    ):
        self.check(name, alpha, points, num_points, points_per_step)
        self.regime = name
        self.points = [] if name == "none" else list(points)
        self.points_per_step = points_per_step
        self.device = device
        self.point_generator = torch.Generator().manual_seed(seed)
        self.device_generator = torch.Generator(device).manual_seed(seed + 1)
        self.concentration = torch.tensor([float(alpha), float(alpha)], device=device)

    @staticmethod
    def check(name: str, alpha: float, points, num_points: int | None = None, points_per_step: int = 1) -> None:
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
        if not 1 <= points_per_step <= len(points):
            raise UserError(
                f"mixup.points_per_step={points_per_step} must be between 1 and the {len(points)} point(s) of "
                f"mixup.points={points}, as each step mixes at that many distinct points"
            )

    @property
    def programs(self) -> list[tuple[int, ...] | None]:
        """What a training step can run: one program per set of points a step can draw, in forward
        order (C(n, K) of them), or the unmixed one (``None``)."""
        if not self.points:
            return [None]
        return [tuple(sorted(c)) for c in itertools.combinations(self.points, self.points_per_step)]

    @property
    def active(self) -> bool:
        return bool(self.points)

    def draw(self, batch_size: int) -> MixDraw | None:
        if not self.active:
            return None
        if self.points_per_step == 1:  # the paper's draw, as it always was (views, no copies, every step)
            index = int(torch.randint(len(self.points), (1,), generator=self.point_generator))
            return MixDraw.one(self.points[index], *self._lam_and_perm(batch_size))
        chosen = torch.randperm(len(self.points), generator=self.point_generator)[: self.points_per_step].tolist()
        points = tuple(sorted(self.points[i] for i in chosen))
        lams, perms = zip(*(self._lam_and_perm(batch_size) for _ in points))
        return MixDraw(points, torch.stack(lams), torch.stack(perms))

    def _lam_and_perm(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        # lam ~ Beta(a, a) as the first coordinate of a Dirichlet(a, a) draw.
        lam = torch._sample_dirichlet(self.concentration, generator=self.device_generator)[0]
        return lam, torch.randperm(batch_size, device=self.device, generator=self.device_generator)

    def state_dict(self) -> dict:
        return {"point": self.point_generator.get_state(), "device": self.device_generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.point_generator.set_state(state["point"])
        self.device_generator.set_state(state["device"])
