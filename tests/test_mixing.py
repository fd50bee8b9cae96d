"""Mixing maths: hidden states and targets mixed with one lam and permutation; the point draw."""

import pytest
import torch
import torch.nn.functional as F

from mmx.mixing import MixDraw, Mixer, mix
from mmx.models import PreActResNet, WideResNet


def capture(model, x, at_point=None):
    """Forward pass recording the hidden state seen by each stage (after any mixing)."""
    seen = {}

    def hook(k, h):
        h = at_point(k, h) if at_point else h
        seen[k] = h.detach().clone()
        return h

    out = model(x, at_point=hook)
    return out, seen


@pytest.mark.parametrize("model", [PreActResNet(18, 10, width=4), WideResNet(10, 1, 10)])
@pytest.mark.parametrize("point", [0, 1, 2, 3])
def test_hidden_state_at_the_drawn_point_is_the_mix_of_clean_states(model, point):
    torch.manual_seed(0)
    model.eval()
    x = torch.randn(6, 3, 16, 16)
    draw = MixDraw(point, lam=torch.tensor(0.3), perm=torch.tensor([3, 0, 5, 1, 2, 4]))
    _, clean = capture(model, x)
    _, mixed = capture(model, x, draw.at_point)
    expected = 0.3 * clean[point] + 0.7 * clean[point][draw.perm]
    torch.testing.assert_close(mixed[point], expected)
    for k in range(point):  # earlier points are untouched
        torch.testing.assert_close(mixed[k], clean[k])
    if point + 1 < 4:  # later points see the mixed state, not the clean one
        assert not torch.allclose(mixed[point + 1], clean[point + 1])


def test_targets_are_mixed_with_the_same_lam_and_perm_and_sum_to_one():
    labels = torch.tensor([0, 1, 2, 2])
    draw = MixDraw(1, lam=torch.tensor(0.25), perm=torch.tensor([1, 0, 3, 2]))
    targets = draw.targets(labels, 3)
    torch.testing.assert_close(targets.sum(1), torch.ones(4))
    expected = torch.tensor([[0.25, 0.75, 0], [0.75, 0.25, 0], [0, 0, 1], [0, 0, 1.0]])
    torch.testing.assert_close(targets, expected)
    torch.testing.assert_close(mix(F.one_hot(labels, 3).float(), draw.lam, draw.perm), expected)


def test_only_eligible_points_are_drawn_and_each_of_them_is():
    mixer = Mixer("manifold", 2.0, [0, 2, 3], num_points=4, device=torch.device("cpu"), seed=1)
    points = [mixer.draw(8).point for _ in range(300)]
    assert set(points) == {0, 2, 3}
    counts = [points.count(k) for k in (0, 2, 3)]
    assert min(counts) > 60  # roughly uniform: 100 expected each


def test_input_mixup_only_mixes_the_input_and_none_never_mixes():
    assert {
        Mixer("input", 1.0, [0], num_points=4, device=torch.device("cpu"), seed=0).draw(4).point for _ in range(20)
    } == {0}
    assert Mixer("none", 0.0, [0, 1], num_points=4, device=torch.device("cpu"), seed=0).draw(4) is None


@pytest.mark.parametrize("alpha", [0.2, 1.0, 2.0])
def test_lam_follows_beta_alpha_alpha(alpha):
    mixer = Mixer("manifold", alpha, [0], num_points=4, device=torch.device("cpu"), seed=3)
    lams = torch.stack([mixer.draw(4).lam for _ in range(4000)])
    assert ((lams >= 0) & (lams <= 1)).all()
    assert abs(lams.mean().item() - 0.5) < 0.03
    variance = 1 / (4 * (2 * alpha + 1))
    assert abs(lams.var().item() - variance) < 0.15 * variance


def test_permutation_is_a_permutation_of_the_batch():
    draw = Mixer("manifold", 2.0, [0, 1, 2], num_points=4, device=torch.device("cpu"), seed=0).draw(17)
    assert sorted(draw.perm.tolist()) == list(range(17))


def test_generator_state_round_trip_repeats_the_draws():
    mixer = Mixer("manifold", 2.0, [0, 1, 2], num_points=4, device=torch.device("cpu"), seed=5)
    mixer.draw(8)
    state = mixer.state_dict()
    first = [mixer.draw(8) for _ in range(5)]
    other = Mixer("manifold", 2.0, [0, 1, 2], num_points=4, device=torch.device("cpu"), seed=99)
    other.load_state_dict(state)
    second = [other.draw(8) for _ in range(5)]
    for a, b in zip(first, second):
        assert a.point == b.point and torch.equal(a.lam, b.lam) and torch.equal(a.perm, b.perm)
