"""CutMix (Yun et al., ICCV 2019): a box of the shuffled batch pasted into the batch, at the input (``mixup=cutmix``)
or on the feature maps at a drawn mixing point (``mixup=manifold_cutmix``, the CutMix paper's "Feature CutMix").

The box follows the public code (clovaai/CutMix-PyTorch, ``rand_bbox``): lam ~ Beta(alpha, alpha); sides
``floor(H * sqrt(1 - lam))`` and ``floor(W * sqrt(1 - lam))``; a centre drawn uniformly among the map's positions;
corners at the centre minus and plus half of each side (rounded down), clipped to the map. The targets are mixed by
the area actually pasted: ``lam' = 1 - (box area after clipping) / (H * W)``, one-hot of the batch times ``lam'`` plus
one-hot of its shuffled copy times ``1 - lam'``. With probability ``1 - probability`` a batch is not mixed at all
(0.5 in the paper's CIFAR runs, 1.0 on ImageNet).

The box is a mask computed on the device from lam and the centre, so its size never changes a tensor's shape: the
compiled and CUDA-graph steps run it as they run manifold mixup, one graph per set of points (plus one for the
unmixed batch when ``probability`` < 1). Whether a batch is mixed, and at which points, is drawn on the host from the
method's seeded generator; lam, the centres and the permutations on the device; both are checkpointed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from omegaconf import DictConfig

from mmx.errors import UserError
from mmx.mixing.base import Draw, MixContext
from mmx.mixing.manifold import ManifoldMixup, Points

UNMIXED: Points = ()  # the program of a batch the coin left alone


def box(lam: torch.Tensor, center: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The pasted region of an ``height`` x ``width`` map as a boolean mask, and the share of the map it leaves alone
    (the weight of the batch's own targets). ``center`` holds two numbers in [0, 1): the row and column of the centre
    as fractions of the map, so that one draw serves maps of any size."""
    ratio = torch.sqrt(1 - lam)
    half_h, half_w = torch.floor(torch.floor(height * ratio) / 2), torch.floor(torch.floor(width * ratio) / 2)
    row = torch.clamp(torch.floor(center[0] * height), max=height - 1)  # a float32 fraction may round up to 1
    col = torch.clamp(torch.floor(center[1] * width), max=width - 1)
    top, bottom = torch.clamp(row - half_h, 0, height), torch.clamp(row + half_h, 0, height)
    left, right = torch.clamp(col - half_w, 0, width), torch.clamp(col + half_w, 0, width)
    rows = torch.arange(height, device=lam.device)
    cols = torch.arange(width, device=lam.device)
    inside = ((rows >= top) & (rows < bottom))[:, None] & ((cols >= left) & (cols < right))[None, :]
    kept = 1 - (bottom - top) * (right - left) / (height * width)
    return inside, kept


class ManifoldCutMix(ManifoldMixup):
    """A CutMix box at one point (``points_per_step`` points) drawn per step from ``points``; at ``points: [0]`` this
    is CutMix itself (:class:`CutMix`)."""

    def __init__(
        self,
        name: str,
        alpha: float,
        points: list[int],
        points_per_step: int = 1,
        probability: float = 1.0,
        *,
        context: MixContext,
    ):
        super().__init__(name, alpha, points, points_per_step, context=context)
        self.probability = probability

    @classmethod
    def check(cls, settings: DictConfig, num_points: int | None = None) -> None:
        super().check(settings, num_points)
        probability = settings.get("probability", 1.0)
        if not 0 < probability <= 1:
            raise UserError(
                f"mixup.probability={probability} is not allowed: it must be in (0, 1], the chance that a batch is "
                f"mixed (the CutMix paper's CIFAR runs use 0.5)"
            )

    @classmethod
    def check_shapes(cls, settings: DictConfig, point_shapes: tuple[tuple[int, ...], ...]) -> None:
        for k in settings.points:
            if len(point_shapes[k]) != 3:
                raise UserError(
                    f"mixup={settings.name} pastes boxes into feature maps, but this model's state at mixing point "
                    f"{k} has shape {list(point_shapes[k])} per example, not (channels, height, width); list only "
                    f"points with feature maps in mixup.points, or use mixup=manifold"
                )

    @property
    def programs(self) -> list[Points]:
        return super().programs + ([UNMIXED] if self.probability < 1 else [])

    def draw(self, batch_size: int) -> Draw:
        if self.probability < 1 and float(torch.rand(1, generator=self.point_generator)) >= self.probability:
            return Draw(UNMIXED, {})
        mixing = super().draw(batch_size)
        centers = torch.rand(len(mixing.program), 2, device=self.device, generator=self.device_generator)
        return Draw(mixing.program, {**mixing.tensors, "centers": centers})

    def hook(self, program: Points, tensors: dict[str, torch.Tensor]):
        if program == UNMIXED:
            return None

        def paste(k: int, h: torch.Tensor) -> torch.Tensor:
            if k not in program:
                return h
            i = program.index(k)
            inside, _ = box(tensors["lams"][i], tensors["centers"][i], h.shape[-2], h.shape[-1])
            return torch.where(inside, h[tensors["perms"][i]], h)

        return paste

    def targets(self, program: Points, tensors: dict[str, torch.Tensor], labels: torch.Tensor, num_classes: int):
        targets = F.one_hot(labels, num_classes).float()
        for i, k in enumerate(program):
            height, width = self.context.point_shapes[k][-2:]
            _, kept = box(tensors["lams"][i], tensors["centers"][i], height, width)
            targets = kept * targets + (1 - kept) * targets[tensors["perms"][i]]
        return targets


class CutMix(ManifoldCutMix):
    """CutMix at the input: ``points: [0]``, ``alpha`` 1.0; ``probability`` 0.5 in the paper's CIFAR runs."""
