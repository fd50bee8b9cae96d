"""A metric added as README's "Extending mmx" says (one Score), for the tests only: the mean top softmax probability.
mmx itself would list it in mmx/metrics.py's REGISTRY; here it is registered before mmx's command line runs."""

from __future__ import annotations

import torch

from mmx.metrics import Score, register


def mean_confidence(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return logits.softmax(dim=1).max(dim=1).values.mean()


register(Score("confidence", "confidence", 3, False, mean_confidence, shown=True, logged=True, fine_decimals=4))
