"""A mixing method added as README's "Extending mmx" says (a module and a YAML), for the tests only: manifold mixup
at one fixed point with one fixed lam, so that only the partner (a permutation of the batch) is drawn."""

from __future__ import annotations

import torch
from omegaconf import DictConfig

from mmx.errors import UserError
from mmx.mixing import Draw, MixContext, MixingMethod, mix


class FixedMix(MixingMethod):
    """``lam * h + (1 - lam) * h[perm]`` at mixing point ``point`` in every step; targets mixed alike."""

    def __init__(self, name: str, lam: float, point: int, *, context: MixContext):
        super().__init__(name, context=context)
        self.lam, self.point = lam, point
        self.generator = torch.Generator(context.device).manual_seed(context.seed)

    @classmethod
    def check(cls, settings: DictConfig, num_points: int | None = None) -> None:
        super().check(settings, num_points)  # the types, from the annotations above
        if not 0 < settings.lam < 1:
            raise UserError(f"mixup.lam={settings.lam} is not allowed: it must be between 0 and 1")
        if settings.point < 0 or (num_points is not None and settings.point >= num_points):
            raise UserError(f"mixup.point={settings.point} is not a mixing point of this model")

    @property
    def programs(self):
        return [self.point]

    def draw(self, batch_size: int) -> Draw:
        perm = torch.randperm(batch_size, device=self.context.device, generator=self.generator)
        return Draw(self.point, {"perm": perm})

    def hook(self, program, tensors):
        return lambda k, h: mix(h, self.lam, tensors["perm"]) if k == program else h

    def targets(self, program, tensors, labels, num_classes):
        return mix(torch.nn.functional.one_hot(labels, num_classes).float(), self.lam, tensors["perm"])

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
