"""How far a network is from satisfying the manifold mixup loss at a mixing point.

The paper's theory (Section 3) says that when the manifold mixup loss is perfectly satisfied at a layer,
the network after it acts as a linear model on the layer's representations, which needs the layer to
have at least d - 1 dimensions for d classes. The quantity measured here is the *excess* manifold mixup
loss: the soft-target cross-entropy of the network's output on mixed hidden states, minus the entropy
of the mixed targets (the least any network could score on them). It is the KL divergence from the
mixed targets to the prediction, averaged over the examples: zero exactly when every mixture is
predicted as the mixture of labels it is.

Every example is mixed with a partner at a lam ~ Beta(alpha, alpha) of its own, both drawn from a
seeded generator that depends only on the seed and the number of examples: every run, whatever its
network, is scored on the same mixtures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F


@dataclass
class Mixtures:
    """``draws`` rounds of one partner and one lam per example (CPU tensors of shape ``[draws, count]``)."""

    partners: torch.Tensor
    lams: torch.Tensor

    @classmethod
    def draw(cls, count: int, alpha: float, draws: int = 1, seed: int = 0) -> Mixtures:
        generator = torch.Generator().manual_seed(seed)
        partners = torch.stack([torch.randperm(count, generator=generator) for _ in range(draws)])
        concentration = torch.full((draws * count, 2), float(alpha), dtype=torch.float64)
        lams = torch._sample_dirichlet(concentration, generator=generator)[:, 0].reshape(draws, count)
        return cls(partners, lams)


def excess_mixup_loss(
    forward: Callable,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    point: int,
    mixtures: Mixtures,
    batch_size: int = 500,
) -> dict:
    """The mean over examples and draws of the cross-entropy on mixtures at ``point``, of the targets'
    entropy and of their difference (the excess), for ``forward(inputs, at_point=hook) -> logits``.

    Each batch runs its examples and their partners together up to ``point``; there the hook returns
    the mixed half-size batch, which the rest of the network classifies.
    """
    totals = torch.zeros(3, dtype=torch.float64)
    device = inputs.device
    for partners, lams in zip(mixtures.partners, mixtures.lams):
        for index in torch.arange(len(labels)).split(batch_size):
            other = partners[index]
            lam = lams[index].to(device)
            n = len(index)

            def mix_at_point(k: int, h: torch.Tensor) -> torch.Tensor:
                if k != point:
                    return h
                weight = lam.to(h.dtype).view(-1, *[1] * (h.dim() - 1))
                return weight * h[:n] + (1 - weight) * h[n:]

            both = torch.cat([inputs[index.to(device)], inputs[other.to(device)]])
            with torch.no_grad():
                logits = forward(both, at_point=mix_at_point).double()
            y, y_other = labels[index.to(device)], labels[other.to(device)]
            targets = lam[:, None] * F.one_hot(y, num_classes) + (1 - lam[:, None]) * F.one_hot(y_other, num_classes)
            cross_entropy = -(targets * logits.log_softmax(dim=1)).sum(dim=1)
            entropy = -torch.special.xlogy(targets, targets).sum(dim=1)
            totals += torch.stack([cross_entropy.sum(), entropy.sum(), (cross_entropy - entropy).sum()]).cpu()
    mean = totals / mixtures.lams.numel()
    return {"cross_entropy": float(mean[0]), "target_entropy": float(mean[1]), "excess": float(mean[2])}
