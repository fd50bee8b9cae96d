"""The excess manifold mixup loss: zero exactly when every mixture is predicted as its mixture of labels."""

import math

import pytest
import torch
from torch import nn

from mmx.evaluation.excess import Mixtures, affine_floor, excess_mixup_loss
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


def symmetric_simplex_floor(d: int, alpha: float) -> float:
    """The best excess of logits M * one_hot(class), found by a 1-D search, the lam expectation by adaptive
    quadrature against the Beta density: an independent route to the floor from width d - 1 on (by convexity and
    symmetry, the best of all logit configurations is of this form when classes are equally frequent)."""
    from scipy import integrate, optimize, stats

    def excess(m: float) -> float:
        def kl(lam: float) -> float:  # a pair of different classes: logits m*lam, m*(1-lam), and 0 for the rest
            z = torch.tensor([m * lam, m * (1 - lam)] + [0.0] * (d - 2), dtype=torch.float64)
            log_p = z.log_softmax(0)
            return float(-(lam * log_p[0] + (1 - lam) * log_p[1]) + lam * math.log(lam) + (1 - lam) * math.log(1 - lam))

        different = integrate.quad(lambda lam: kl(lam) * stats.beta.pdf(lam, alpha, alpha), 0, 1, epsabs=1e-11)[0]
        same = math.log1p((d - 1) * math.exp(-m))  # a class mixed with itself: a one-hot target
        return (1 - 1 / d) * different + same / d

    return optimize.minimize_scalar(excess, bounds=(0.1, 60), method="bounded", options={"xatol": 1e-9}).fun


@pytest.mark.parametrize("d", [2, 3, 5])
def test_the_affine_floor_from_d_minus_1_dimensions_is_the_symmetric_simplex(d):
    floor = affine_floor(torch.ones(d), d - 1, alpha=2.0)
    assert floor == pytest.approx(symmetric_simplex_floor(d, 2.0), rel=1e-6)
    assert affine_floor(torch.ones(d), d + 3, alpha=2.0) == pytest.approx(floor, rel=1e-9)  # extra width adds nothing
    assert floor > 0.01  # a softmax of logits on a line never traces the straight line of the targets


def test_the_affine_floor_falls_with_the_width_until_d_minus_1():
    floors = [affine_floor(torch.ones(5), width, alpha=2.0) for width in (1, 2, 3, 4)]
    assert floors[0] > floors[1] > floors[2] > floors[3] > 0
    assert affine_floor(torch.tensor([3.0, 1.0, 1.0]), 2, 2.0) != pytest.approx(affine_floor(torch.ones(3), 2, 2.0))
