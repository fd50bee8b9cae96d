"""Training losses against soft (mixed) targets; both take float32 logits."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy with a distribution as target: mean over the batch of -sum_c t_c log p_c."""
    return -(targets * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def softmax_bce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The public code's loss, ``BCELoss(softmax(logits), targets)``: mean over batch and classes.

    Written with log-probabilities (log(1 - p) as log1p(-p)) and clamped at -100 like BCELoss,
    so it equals the original without its overflow.
    """
    log_p = F.log_softmax(logits, dim=1)
    log_not_p = torch.log1p(-log_p.exp())
    return -(targets * log_p.clamp(min=-100) + (1 - targets) * log_not_p.clamp(min=-100)).mean()


LOSSES = {"soft_ce": soft_cross_entropy, "bce": softmax_bce}
