"""White-box attacks in pixel units (images in [0, 1], before normalisation): FGSM and PGD."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

Logits = Callable[[torch.Tensor], torch.Tensor]


def _input_gradient(logits: Logits, pixels: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    pixels = pixels.detach().requires_grad_(True)
    loss = F.cross_entropy(logits(pixels), labels, reduction="sum")
    (gradient,) = torch.autograd.grad(loss, pixels)
    return gradient


def fgsm(logits: Logits, pixels: torch.Tensor, labels: torch.Tensor, epsilon: float) -> torch.Tensor:
    """One signed-gradient step of size ``epsilon`` up the loss (Goodfellow et al. 2015), kept in [0, 1]."""
    step = epsilon * _input_gradient(logits, pixels, labels).sign()
    return (pixels + step).clamp(0, 1).detach()


def pgd(
    logits: Logits,
    pixels: torch.Tensor,
    labels: torch.Tensor,
    epsilon: float,
    steps: int,
    step_size: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Projected gradient ascent in the L-infinity ball of radius ``epsilon``, from a random start (Madry et al.
    2018)."""
    noise = torch.rand(pixels.shape, device=pixels.device, generator=generator) * 2 - 1
    adversarial = (pixels + epsilon * noise).clamp(0, 1)
    for _ in range(steps):
        adversarial = adversarial + step_size * _input_gradient(logits, adversarial, labels).sign()
        adversarial = torch.min(torch.max(adversarial, pixels - epsilon), pixels + epsilon).clamp(0, 1).detach()
    return adversarial
