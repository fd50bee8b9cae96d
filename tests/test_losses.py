"""Losses against hand computations and against the public code's BCELoss(softmax), saturated cases included."""

import math

import pytest
import torch
import torch.nn.functional as F

from mmx.losses import soft_cross_entropy, softmax_bce

LOGITS = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 1.0]])
TARGETS = torch.tensor([[0.7, 0.3, 0.0], [0.0, 0.0, 1.0]])


def softmax_by_hand(row):
    exps = [math.exp(v) for v in row]
    return [e / sum(exps) for e in exps]


def test_soft_cross_entropy_by_hand():
    total = 0.0
    for row, target in zip(LOGITS.tolist(), TARGETS.tolist()):
        p = softmax_by_hand(row)
        total += -sum(t * math.log(q) for t, q in zip(target, p))
    assert math.isclose(soft_cross_entropy(LOGITS, TARGETS).item(), total / 2, rel_tol=1e-6)


def test_soft_cross_entropy_with_one_hot_targets_is_cross_entropy():
    labels = torch.tensor([0, 2])
    expected = F.cross_entropy(LOGITS, labels)
    torch.testing.assert_close(soft_cross_entropy(LOGITS, F.one_hot(labels, 3).float()), expected)


def test_bce_of_softmax_by_hand_and_as_the_public_code_computes_it():
    total = 0.0
    for row, target in zip(LOGITS.tolist(), TARGETS.tolist()):
        p = softmax_by_hand(row)
        total += -sum(t * math.log(q) + (1 - t) * math.log(1 - q) for t, q in zip(target, p))
    by_hand = total / LOGITS.numel()
    assert math.isclose(softmax_bce(LOGITS, TARGETS).item(), by_hand, rel_tol=1e-6)
    public_code = torch.nn.BCELoss()(F.softmax(LOGITS, dim=1), TARGETS)
    torch.testing.assert_close(softmax_bce(LOGITS, TARGETS), public_code)


def test_bce_value_and_gradient_equal_bceloss_of_softmax_in_float64():
    torch.manual_seed(0)
    logits = (torch.randn(64, 10, dtype=torch.float64) * 4).requires_grad_()
    targets = torch.distributions.Dirichlet(torch.ones(10)).sample((64,)).double()
    public = torch.nn.BCELoss()(F.softmax(logits, dim=1), targets)
    (public_gradient,) = torch.autograd.grad(public, logits)
    ours = softmax_bce(logits, targets)
    (gradient,) = torch.autograd.grad(ours, logits)
    assert torch.isfinite(public) and torch.isfinite(public_gradient).all()
    torch.testing.assert_close(ours, public, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gradient, public_gradient, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("margin", [10.0, 18.0, 30.0, 100.0, 1e3, 1e4])
@pytest.mark.parametrize("bf16", [False, True])
def test_bce_value_and_gradient_stay_finite_when_the_softmax_saturates(margin, bf16):
    """In float32 p rounds to 1 at a margin of about 18; log1p(-p) would be -inf and its gradient NaN."""
    logits = torch.zeros(3, 10)
    logits[:, 4] = margin
    targets = F.one_hot(torch.tensor([4, 2, 4]), 10).float()
    targets[2] = 0.5 * targets[2] + 0.5 * F.one_hot(torch.tensor(7), 10)  # a mixed target
    layer = torch.nn.Linear(10, 10)
    with torch.no_grad():
        layer.weight.copy_(torch.eye(10))
        layer.bias.zero_()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss = softmax_bce(layer(logits), targets)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(layer.weight.grad).all() and torch.isfinite(layer.bias.grad).all()
    assert loss.item() <= 100  # BCELoss clamps each log at -100


def test_soft_cross_entropy_is_torchs_cross_entropy_with_probability_targets():
    torch.testing.assert_close(
        soft_cross_entropy(LOGITS, TARGETS), -(TARGETS * F.log_softmax(LOGITS, dim=1)).sum(dim=1).mean()
    )
