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

import math
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


def affine_floor(
    class_frequencies: torch.Tensor, width: int, alpha: float, restarts: int = 6, nodes: int = 48, seed: int = 0
) -> float:
    """The least expected excess manifold mixup loss that a network whose part after the mixing point is affine
    (logits = A h + b: a linear classifier on the point's ``width`` dimensions) can reach, for pairs of classes
    drawn with ``class_frequencies`` and lam ~ Beta(alpha, alpha).

    Zero is out of reach for any width: along a mixture of two classes the logits move on a line, and a
    softmax of logits on a line is a logistic curve in lam, never the straight line lam*y + (1-lam)*y' that the
    target is. What the width changes is how close the best network comes. The loss is convex in the logits, so
    the best encoder maps each class to one point (Jensen's inequality, partners drawn independently); the
    floor is then the least loss over d class logit vectors lying in one ``width``-dimensional affine subspace.
    From width d - 1 on, that subspace can hold any d logit vectors up to the softmax's shift, so the floor stops
    falling exactly there; below it the problem is not convex, and the floor is the best of ``restarts``
    L-BFGS runs. The expectation over lam is exact for polynomials up to degree 2 * ``nodes`` - 1 (Gauss-Jacobi
    quadrature against the Beta density).
    """
    from scipy.special import roots_jacobi

    frequencies = torch.as_tensor(class_frequencies, dtype=torch.float64)
    frequencies = frequencies / frequencies.sum()
    d = len(frequencies)
    x, w = roots_jacobi(nodes, alpha - 1, alpha - 1)  # weight (1 - x)^(alpha-1) (1 + x)^(alpha-1) on [-1, 1]
    lam = torch.as_tensor((x + 1) / 2)
    weight = torch.as_tensor(w / w.sum())
    eye = torch.eye(d, dtype=torch.float64)
    pair = frequencies[:, None] * frequencies[None, :]
    at = lam.view(1, 1, -1, 1)
    targets = at * eye[:, None, None, :] + (1 - at) * eye[None, :, None, :]  # [a, b, lam, class]
    entropy = -torch.special.xlogy(targets, targets).sum(-1)

    def loss(logits: torch.Tensor) -> torch.Tensor:
        mixed = at * logits[:, None, None, :] + (1 - at) * logits[None, :, None, :]
        cross_entropy = -(targets * mixed.log_softmax(-1)).sum(-1)
        return (((cross_entropy - entropy) * weight).sum(-1) * pair).sum()

    rank = min(width, d - 1)  # more dimensions than d - 1 add nothing (logits are defined up to a shift)
    best = math.inf
    generator = torch.Generator().manual_seed(seed)
    for _ in range(restarts if rank < d - 1 else 1):
        points = torch.randn(d, rank, generator=generator, dtype=torch.float64).requires_grad_()
        head = torch.randn(d, rank, generator=generator, dtype=torch.float64).requires_grad_()
        bias = torch.zeros(d, dtype=torch.float64, requires_grad=True)
        optimizer = torch.optim.LBFGS(
            [points, head, bias],
            max_iter=2000,
            tolerance_grad=1e-10,
            tolerance_change=1e-13,
            line_search_fn="strong_wolfe",
        )

        def closure():
            optimizer.zero_grad()
            value = loss(points @ head.T + bias)
            value.backward()
            return value

        optimizer.step(closure)
        with torch.no_grad():
            best = min(best, float(loss(points @ head.T + bias)))
    return best
