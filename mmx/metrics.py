"""Test-set metrics: accuracy, NLL and expected calibration error, gathered on the device."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def confidence_bin(confidence: torch.Tensor, bins: int) -> torch.Tensor:
    """Index of the equal-width bin ``((b - 1) / bins, b / bins]`` holding each confidence (0 joins the first)."""
    return (confidence * bins).ceil().long().clamp(1, bins) - 1


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor, bins: int = 15) -> torch.Tensor:
    """ECE with ``bins`` equal-width confidence bins: sum_b |B_b|/N * |acc(B_b) - conf(B_b)|.

    Confidence is the top softmax probability; a confidence of exactly 0 joins the first bin.
    """
    confidence, prediction = probs.max(dim=1)
    correct = (prediction == labels).float()
    bin_index = confidence_bin(confidence, bins)
    conf_sum = torch.zeros(bins, device=probs.device).index_add_(0, bin_index, confidence)
    correct_sum = torch.zeros(bins, device=probs.device).index_add_(0, bin_index, correct)
    return (conf_sum - correct_sum).abs().sum() / len(labels)


def classification_metrics(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Top-1 accuracy and error, top-5 accuracy (percent), NLL (mean cross-entropy, nats), ECE (15 bins)."""
    logits = logits.float()
    correct = (logits.argmax(dim=1) == labels).sum().float()
    top5 = logits.topk(min(5, logits.shape[1]), dim=1).indices
    correct5 = (top5 == labels[:, None]).any(dim=1).sum().float()
    nll = F.cross_entropy(logits, labels)
    ece = expected_calibration_error(logits.softmax(dim=1), labels)
    correct, correct5, nll, ece = torch.stack([correct, correct5, nll, ece]).tolist()  # the one host sync
    accuracy = 100.0 * correct / len(labels)
    return {"acc": accuracy, "error": 100.0 - accuracy, "top5": 100.0 * correct5 / len(labels), "nll": nll, "ece": ece}
