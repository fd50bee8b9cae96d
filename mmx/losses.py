"""Training losses against soft (mixed) targets; both take float32 logits."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy with a distribution as target: mean over the batch of -sum_c t_c log p_c."""
    return F.cross_entropy(logits, targets)  # probability targets: one fused kernel


def softmax_bce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The public code's loss, ``BCELoss(softmax(logits), targets)``: mean over batch and classes.

    Written in log space so that value and gradient stay finite where the softmax saturates. A
    class whose probability is at most 1/2 takes ``log(1 - p)`` as ``log1p(-p)``; only the most
    probable class can have ``p`` round to 1 (``log1p`` then gives -inf and its gradient 0 * inf =
    NaN), so it takes ``log(1 - p)`` as the log-sum-exp of the other logits minus that of all.
    Both logarithms are clamped at -100, as ``BCELoss`` clamps them.
    """
    log_p = F.log_softmax(logits, dim=1)
    top = torch.zeros_like(logits, dtype=torch.bool).scatter_(1, logits.argmax(dim=1, keepdim=True), True)
    # The top class never reaches log1p (its input is replaced by 0), so no inf enters the backward pass.
    log_not_p_rest = torch.log1p(-torch.where(top, 0.0, log_p.exp()))
    log_not_p_top = torch.logsumexp(logits.masked_fill(top, float("-inf")), dim=1, keepdim=True) - torch.logsumexp(
        logits, dim=1, keepdim=True
    )
    log_not_p = torch.where(top, log_not_p_top, log_not_p_rest)
    return -(targets * log_p.clamp(min=-100) + (1 - targets) * log_not_p.clamp(min=-100)).mean()


LOSSES = {"soft_ce": soft_cross_entropy, "bce": softmax_bce}
