"""Noisy Feature Mixup (Lim et al., ICLR 2022; ``mixup=nfm``): manifold mixup, then noise on the mixed state.

At the drawn point the mixed state ``m = lam * h + (1 - lam) * h[perm]`` becomes ``m * (1 + mult) + add``, as in the
public code (erichson/NFM, ``_noise``): ``add = add_noise * b1 * N(0, 1)`` and ``mult = mult_noise * b2 * U(-1, 1)``,
one number per element, with ``b1`` and ``b2`` ~ Beta(2, 5) drawn once per batch each. The targets are manifold
mixup's. A noise level of 0 draws no noise of that kind.

The noise is drawn with the rest of the batch's draw, from the method's seeded device generator, at the shape of the
state it perturbs (the run's ``point_shapes``), so the compiled and CUDA-graph steps take it as an input like lam and
resume draws it exactly.
"""

from __future__ import annotations

import torch
from omegaconf import DictConfig

from mmx.errors import UserError
from mmx.mixing.base import Draw, MixContext, mix
from mmx.mixing.manifold import ManifoldMixup, Points

NOISE_SCALE = (2.0, 5.0)  # Beta(2, 5): the public code's per-batch scale of each noise


class NoisyFeatureMixup(ManifoldMixup):
    """Manifold mixup with additive (``add_noise``) and multiplicative (``mult_noise``) noise at the mixing point."""

    def __init__(
        self,
        name: str,
        alpha: float,
        points: list[int],
        points_per_step: int = 1,
        add_noise: float = 0.4,
        mult_noise: float = 0.2,
        *,
        context: MixContext,
    ):
        super().__init__(name, alpha, points, points_per_step, context=context)
        self.add_noise, self.mult_noise = add_noise, mult_noise
        self.noise_scale = torch.tensor(NOISE_SCALE, device=context.device)

    @classmethod
    def check(cls, settings: DictConfig, num_points: int | None = None) -> None:
        super().check(settings, num_points)
        for key in ("add_noise", "mult_noise"):
            if settings.get(key, 0.0) < 0:
                raise UserError(
                    f"mixup.{key}={settings[key]} is not allowed: a noise level must be 0 (none) or more "
                    f"(the NFM paper's are add_noise=0.4, mult_noise=0.2)"
                )

    def draw(self, batch_size: int) -> Draw:
        mixing = super().draw(batch_size)
        tensors = dict(mixing.tensors)
        for i, k in enumerate(mixing.program):
            shape = (batch_size, *self.context.point_shapes[k])
            if self.add_noise > 0:
                scale = self.add_noise * self._scale()
                tensors[f"add{i}"] = scale * torch.randn(shape, device=self.device, generator=self.device_generator)
            if self.mult_noise > 0:
                scale = self.mult_noise * self._scale()
                uniform = torch.rand(shape, device=self.device, generator=self.device_generator)
                tensors[f"mult{i}"] = 1 + scale * (2 * uniform - 1)
        return Draw(mixing.program, tensors)

    def _scale(self) -> torch.Tensor:
        return torch._sample_dirichlet(self.noise_scale, generator=self.device_generator)[0]

    def hook(self, program: Points, tensors: dict[str, torch.Tensor]):
        def noisy_mix(k: int, h: torch.Tensor) -> torch.Tensor:
            if k not in program:
                return h
            i = program.index(k)
            h = mix(h, tensors["lams"][i].to(h.dtype), tensors["perms"][i])
            if f"mult{i}" in tensors:
                h = h * tensors[f"mult{i}"].to(h.dtype)
            if f"add{i}" in tensors:
                h = h + tensors[f"add{i}"].to(h.dtype)
            return h

        return noisy_mix
