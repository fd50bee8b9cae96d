"""The excess manifold mixup loss: zero exactly when every mixture is predicted as its mixture of labels."""

import math

import pytest
import torch
from torch import nn

from mmx.evaluation.excess import Mixtures, excess_mixup_loss
from mmx.models import StagedNetwork


class Log(nn.Module):
    def forward(self, h):
        return torch.log(h.clamp_min(1e-300))


class Uniform(nn.Module):
    def __init__(self, classes):
        super().__init__()
        self.classes = classes

    def forward(self, h):
        return torch.zeros(len(h), self.classes, dtype=h.dtype)


def one_hot_data(classes=4, count=40):
    labels = torch.arange(count) % classes
    return nn.functional.one_hot(labels, classes).double(), labels


def test_a_network_that_outputs_the_log_of_its_mixed_state_satisfies_the_loss_exactly():
    """Fed one-hot labels, the state at point 1 *is* the mixed target, and log of it is a logit whose softmax
    is that target: the cross-entropy is the targets' entropy and the excess is zero."""
    inputs, labels = one_hot_data()
    network = StagedNetwork([nn.Identity(), Log()])
    result = excess_mixup_loss(network, inputs, labels, 4, 1, Mixtures.draw(len(labels), 2.0, draws=3), batch_size=7)
    assert result["excess"] == pytest.approx(0, abs=1e-12)
    assert result["cross_entropy"] == pytest.approx(result["target_entropy"]) and result["target_entropy"] > 0.2


def test_a_network_that_predicts_uniformly_is_log_d_minus_the_targets_entropy_away():
    inputs, labels = one_hot_data()
    mixtures = Mixtures.draw(len(labels), 1.0, draws=2, seed=5)
    result = excess_mixup_loss(StagedNetwork([nn.Identity(), Uniform(4)]), inputs, labels, 4, 1, mixtures)
    same = labels[mixtures.partners] == labels  # an example mixed with one of its own class has a one-hot target
    lam = mixtures.lams
    binary = -(lam * lam.log() + (1 - lam) * (1 - lam).log())
    entropy = torch.where(same, torch.zeros_like(lam), binary).mean().item()
    assert result["target_entropy"] == pytest.approx(entropy)
    assert result["excess"] == pytest.approx(math.log(4) - entropy)


def test_mixing_at_the_input_or_a_hidden_point_mixes_the_partner_s_state():
    """With a linear first stage, mixing at point 0 or point 1 gives the same logits, so the same loss."""
    torch.manual_seed(0)
    inputs, labels = torch.randn(30, 5, dtype=torch.float64), torch.arange(30) % 3
    network = StagedNetwork([nn.Linear(5, 6), nn.Sequential(nn.Tanh(), nn.Linear(6, 3))]).double()
    mixtures = Mixtures.draw(30, 2.0)
    at_input = excess_mixup_loss(network, inputs, labels, 3, 0, mixtures, batch_size=8)
    at_hidden = excess_mixup_loss(network, inputs, labels, 3, 1, mixtures, batch_size=30)
    assert at_input == pytest.approx(at_hidden)
    assert at_input["excess"] > 0


def test_the_mixtures_depend_only_on_the_seed_and_the_count():
    a, b = Mixtures.draw(50, 2.0, draws=2, seed=1), Mixtures.draw(50, 2.0, draws=2, seed=1)
    assert torch.equal(a.partners, b.partners) and torch.equal(a.lams, b.lams)
    assert sorted(a.partners[1].tolist()) == list(range(50)) and ((a.lams > 0) & (a.lams < 1)).all()
    assert not torch.equal(a.lams, Mixtures.draw(50, 2.0, draws=2, seed=2).lams)
