"""Manifold mixup (Verma et al., ICML 2019): which points to mix at, how much, and with whom; and the mixing itself.

Per batch the paper draws one mixing point k uniformly from the eligible set (k = 0 is the input, so input mixup is
the set {0}), one lam ~ Beta(alpha, alpha) and one permutation of the batch. The hidden state at k becomes
``lam * h + (1 - lam) * h[perm]`` and the one-hot targets are mixed with the same lam and permutation.

``points_per_step = K > 1`` (beyond the paper) draws K distinct points per batch and mixes at each, in forward order,
with a lam and a permutation of its own. The targets undergo the same operations in the same order, so they are
exactly the mixture of labels that the network's last mixed state is a mixture of.

The points are drawn on the host (they choose which code runs, so they must be known there without a device sync);
lam and the permutation on the device. Both generators are seeded and checkpointed, so a resumed run mixes exactly
as an uninterrupted one.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from omegaconf import DictConfig

from mmx.errors import UserError
from mmx.mixing.base import Draw, MixContext, MixingMethod, mix

Points = tuple[int, ...]  # a program: the mixing points of a step, in forward order


@dataclass
class MixDraw:
    """One batch's mixing: the points in forward order (host ints), and for each a lam and a permutation (device
    tensors: ``lams`` of shape ``[K]``, ``perms`` of shape ``[K, batch]``)."""

    points: Points
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


class ManifoldMixup(MixingMethod):
    """Mixes the batch at one point (``points_per_step`` points) drawn per step from ``points``."""

    def __init__(self, name: str, alpha: float, points: list[int], points_per_step: int = 1, *, context: MixContext):
        super().__init__(name, context=context)
        self.points = list(points)
        self.points_per_step = points_per_step
        self.device = context.device
        self.point_generator = torch.Generator().manual_seed(context.seed)
        self.device_generator = torch.Generator(context.device).manual_seed(context.seed + 1)
        self.concentration = torch.tensor([float(alpha), float(alpha)], device=context.device)

    @classmethod
    def check(cls, settings: DictConfig, num_points: int | None = None) -> None:
        super().check(settings, num_points)
        name, alpha, points = settings.name, settings.alpha, list(settings.points)
        per_step = settings.get("points_per_step", 1)
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
        if per_step < 1:
            raise UserError(
                f"mixup.points_per_step={per_step} is not allowed: it must be at least 1 (each step mixes at that "
                f"many distinct points)"
            )
        if per_step > len(points):
            raise UserError(
                f"mixup.points_per_step={per_step} must be between 1 and the {len(points)} point(s) of "
                f"mixup.points={points}, as each step mixes at that many distinct points"
            )

    @property
    def programs(self) -> list[Points]:
        """One program per set of points a step can draw, in forward order (C(n, K) of them)."""
        return [tuple(sorted(c)) for c in itertools.combinations(self.points, self.points_per_step)]

    def draw(self, batch_size: int) -> Draw:
        if self.points_per_step == 1:  # the paper's draw, as it always was (views, no copies, every step)
            index = int(torch.randint(len(self.points), (1,), generator=self.point_generator))
            mixing = MixDraw.one(self.points[index], *self._lam_and_perm(batch_size))
        else:
            chosen = torch.randperm(len(self.points), generator=self.point_generator)[: self.points_per_step].tolist()
            points = tuple(sorted(self.points[i] for i in chosen))
            lams, perms = zip(*(self._lam_and_perm(batch_size) for _ in points))
            mixing = MixDraw(points, torch.stack(lams), torch.stack(perms))
        return Draw(mixing.points, {"lams": mixing.lams, "perms": mixing.perms})

    def _lam_and_perm(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        # lam ~ Beta(a, a) as the first coordinate of a Dirichlet(a, a) draw.
        lam = torch._sample_dirichlet(self.concentration, generator=self.device_generator)[0]
        return lam, torch.randperm(batch_size, device=self.device, generator=self.device_generator)

    def hook(self, program: Points, tensors: dict[str, torch.Tensor]):
        return MixDraw(program, tensors["lams"], tensors["perms"]).at_point

    def targets(self, program: Points, tensors: dict[str, torch.Tensor], labels: torch.Tensor, num_classes: int):
        return MixDraw(program, tensors["lams"], tensors["perms"]).targets(labels, num_classes)

    def state_dict(self) -> dict:
        return {"point": self.point_generator.get_state(), "device": self.device_generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.point_generator.set_state(state["point"])
        self.device_generator.set_state(state["device"])
