"""Test metrics on known cases: accuracy, top-5, NLL and expected calibration error."""

import math

import torch
import torch.nn.functional as F

from mmx.metrics import classification_metrics, expected_calibration_error


def test_ece_by_hand():
    # confidences 0.9 (right), 0.9 (wrong), 0.6 (right): bins (0.8667, 0.9333] and (0.5333, 0.6]
    probs = torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6]])
    labels = torch.tensor([0, 1, 1])
    expected = 2 / 3 * abs(0.9 - 0.5) + 1 / 3 * abs(0.6 - 1.0)
    assert math.isclose(expected_calibration_error(probs, labels).item(), expected, rel_tol=1e-6)


def test_perfectly_calibrated_predictions_have_zero_ece():
    probs = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert expected_calibration_error(probs, torch.tensor([0, 1])).item() == 0.0


def test_classification_metrics():
    logits = torch.tensor([[3.0, 0.0], [0.0, 1.0], [2.0, 0.0], [0.0, 2.0]])
    labels = torch.tensor([0, 1, 1, 1])
    m = classification_metrics(logits, labels)
    assert m["acc"] == 75.0 and m["error"] == 25.0
    assert math.isclose(m["nll"], F.cross_entropy(logits, labels).item(), rel_tol=1e-6)
    assert 0 <= m["ece"] <= 1


def test_top5_accuracy():
    logits = torch.arange(7.0).repeat(2, 1)  # class 6 ranks first, class 0 last
    m = classification_metrics(logits, torch.tensor([2, 1]))
    assert m["top5"] == 50.0 and m["acc"] == 0.0
