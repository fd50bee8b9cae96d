"""RegMixup (Pinto et al., NeurIPS 2022; ``mixup=regmixup``): mixup as a regulariser beside plain training.

Each step the network sees the clean batch and an input-mixed copy of it (lam ~ Beta(alpha, alpha), a large alpha
such as 20 so that lam sits near 0.5), in one forward pass over both, as the public code does
(FrancescoPinto/RegMixup: ``torch.cat([x, mixup_x])``, so BatchNorm normalises the two together). The loss is the
public code's mean over the 2B rows: ``(loss(clean, one-hot) + eta * loss(mixed, mixed targets)) / 2`` (eta = 1
there; the paper writes the sum without the halving, which with SGD is the learning rate doubled). A step costs two
forward and backward passes of the batch: twice input mixup's. Training accuracy counts the clean half.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from omegaconf import DictConfig

from mmx.errors import UserError
from mmx.mixing.base import MixContext, mix
from mmx.mixing.manifold import ManifoldMixup, MixDraw, Points


class RegMixup(ManifoldMixup):
    """Clean cross-entropy plus ``eta`` times the mixup loss of a copy mixed at ``points`` (``[0]``: the input)."""

    forward_passes = 2

    def __init__(
        self,
        name: str,
        alpha: float,
        points: list[int],
        points_per_step: int = 1,
        eta: float = 1.0,
        *,
        context: MixContext,
    ):
        super().__init__(name, alpha, points, points_per_step, context=context)
        self.eta = eta

    @classmethod
    def check(cls, settings: DictConfig, num_points: int | None = None) -> None:
        super().check(settings, num_points)
        if not settings.get("eta", 1.0) > 0:
            raise UserError(
                f"mixup.eta={settings.eta} is not allowed: the weight of the mixup loss must be > 0 (the paper's is 1)"
            )

    def hook(self, program: Points, tensors: dict[str, torch.Tensor]):
        mixing = MixDraw(program, tensors["lams"], tensors["perms"])

        def mix_second_half(k: int, h: torch.Tensor) -> torch.Tensor:
            if k not in program:
                return h
            clean, copy = h.chunk(2)
            i = program.index(k)
            return torch.cat([clean, mix(copy, mixing.lams[i].to(h.dtype), mixing.perms[i])])

        return mix_second_half

    def forward_loss(self, forward, images, labels, program, tensors, loss_fn, num_classes):
        logits = forward(torch.cat([images, images]), self.hook(program, tensors))
        clean, mixed = logits.float().chunk(2)
        plain = loss_fn(clean, F.one_hot(labels, num_classes).float())
        regulariser = loss_fn(mixed, self.targets(program, tensors, labels, num_classes))
        return (plain + self.eta * regulariser) / 2, logits.chunk(2)[0]
