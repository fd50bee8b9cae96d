"""Every per-epoch number mmx records (:data:`EPOCH_METRICS`, :data:`VAL_METRICS`), and the test-set metrics
computed on the device: accuracy, NLL and expected calibration error.

torch is imported by the functions that compute, so that what only reads the registry (``mmx tables``,
``mmx --help``) starts without it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Metric:
    """One per-epoch number: its metrics.csv column, TensorBoard tag and how tables show it.

    ``summary`` names test metrics as they appear in summary.json's ``final`` and ``best`` and in
    the result tables; ``lower_is_better`` is None for numbers that are not a quality (lr, time).
    """

    column: str
    tag: str | None
    decimals: int
    lower_is_better: bool | None = None
    summary: str | None = None
    label: str = ""


EPOCH_METRICS = (
    Metric("epoch", None, 0),
    Metric("lr", "lr", 6),
    Metric("train_loss", "train/loss", 4, True),
    Metric("train_acc", "train/acc", 2, False),
    Metric("test_acc", "test/acc", 2, False, "acc", "acc %"),
    Metric("test_error", "test/error", 2, True, "error", "error %"),
    Metric("test_nll", "test/nll", 3, True, "nll", "NLL"),
    Metric("test_ece", "test/ece", 3, True, "ece", "ECE"),
    Metric("epoch_seconds", "time/epoch_seconds", 1),
    Metric("train_images_per_second", "throughput/images_per_second", 0),
    Metric("test_top5", "test/top5", 2, False, "top5", "top-5 %"),
)
# The validation split's numbers (runs with dataset.val_size): metrics.csv columns after the others, and the
# val_* entries of summary.json's final and best.
VAL_METRICS = (
    Metric("val_acc", "val/acc", 2, False, "val_acc", "val acc %"),
    Metric("val_error", "val/error", 2, True, "val_error", "val error %"),
    Metric("val_nll", "val/nll", 3, True, "val_nll", "val NLL"),
    Metric("val_ece", "val/ece", 3, True, "val_ece", "val ECE"),
)
COLUMNS = [m.column for m in EPOCH_METRICS]
VAL_COLUMNS = [m.column for m in VAL_METRICS]


def metric_columns(validation: bool) -> list[str]:
    """metrics.csv's columns: a run with a validation split has the ``val_*`` ones too."""
    return COLUMNS + VAL_COLUMNS if validation else COLUMNS


TEST_METRICS = {m.summary: m for m in EPOCH_METRICS if m.summary}  # acc, error, nll, ece, top5
VALIDATION = {m.summary: m for m in VAL_METRICS}  # val_acc, val_error, val_nll, val_ece


def epoch_row(epoch: int, lr: float, train: dict, test: dict, seconds: float, val: dict | None = None) -> dict:
    """metrics.csv's row for one epoch, from the trainer's statistics and the test (and validation) metrics."""
    row = {
        "epoch": epoch,
        "lr": lr,
        "train_loss": train["train_loss"],
        "train_acc": train["train_acc"],
        "epoch_seconds": seconds,
        "train_images_per_second": train["train_images_per_second"],
    }
    row.update({metric.column: test[name] for name, metric in TEST_METRICS.items()})
    if val is not None:
        row.update({metric.column: val[name.removeprefix("val_")] for name, metric in VALIDATION.items()})
    return row


def confidence_bin(confidence: torch.Tensor, bins: int) -> torch.Tensor:
    """Index of the equal-width bin ``((b - 1) / bins, b / bins]`` holding each confidence (0 joins the first)."""
    return (confidence * bins).ceil().long().clamp(1, bins) - 1


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor, bins: int = 15) -> torch.Tensor:
    """ECE with ``bins`` equal-width confidence bins: sum_b |B_b|/N * |acc(B_b) - conf(B_b)|.

    Confidence is the top softmax probability; a confidence of exactly 0 joins the first bin.
    """
    import torch

    confidence, prediction = probs.max(dim=1)
    correct = (prediction == labels).float()
    bin_index = confidence_bin(confidence, bins)
    conf_sum = torch.zeros(bins, device=probs.device).index_add_(0, bin_index, confidence)
    correct_sum = torch.zeros(bins, device=probs.device).index_add_(0, bin_index, correct)
    return (conf_sum - correct_sum).abs().sum() / len(labels)


def classification_metrics(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Top-1 accuracy and error, top-5 accuracy (percent), NLL (mean cross-entropy, nats), ECE (15 bins)."""
    import torch
    import torch.nn.functional as F

    logits = logits.float()
    correct = (logits.argmax(dim=1) == labels).sum().float()
    top5 = logits.topk(min(5, logits.shape[1]), dim=1).indices
    correct5 = (top5 == labels[:, None]).any(dim=1).sum().float()
    nll = F.cross_entropy(logits, labels)
    ece = expected_calibration_error(logits.softmax(dim=1), labels)
    correct, correct5, nll, ece = torch.stack([correct, correct5, nll, ece]).tolist()  # the one host sync
    accuracy = 100.0 * correct / len(labels)
    return {"acc": accuracy, "error": 100.0 - accuracy, "top5": 100.0 * correct5 / len(labels), "nll": nll, "ece": ece}
