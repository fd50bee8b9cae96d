"""Out-of-distribution detection from a classifier's logits: maximum softmax probability and energy."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import roc_auc_score, roc_curve

# score name -> higher means "more in-distribution"
SCORES = {
    "msp": lambda logits: logits.softmax(dim=1).max(dim=1).values,  # Hendrycks & Gimpel 2017
    "energy": lambda logits: torch.logsumexp(logits, dim=1),  # Liu et al. 2020: -energy at T = 1
}


def detection_metrics(in_scores: torch.Tensor, out_scores: torch.Tensor) -> dict[str, float]:
    """AUROC (in-distribution as positives) and the false-positive rate at 95% true-positive rate."""
    scores = torch.cat([in_scores, out_scores]).double().cpu().numpy()
    truth = np.concatenate([np.ones(len(in_scores)), np.zeros(len(out_scores))])
    fpr, tpr, _ = roc_curve(truth, scores)
    return {"auroc": float(roc_auc_score(truth, scores)), "fpr95": float(fpr[np.searchsorted(tpr, 0.95)])}
