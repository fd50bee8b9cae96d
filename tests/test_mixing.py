"""Mixing maths: hidden states and targets mixed with one lam and permutation; the point draw; several points."""

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from mmx.mixing import MixContext, mix
from mmx.mixing.base import shipped_settings
from mmx.mixing.manifold import MixDraw
from mmx.models import PreActResNet, WideResNet
from mmx.parts import create_mixer

from helpers import capture


def method(name: str, alpha: float, points: list, points_per_step: int = 1, *, seed: int = 0):
    """The ``mixup=NAME`` method as a run builds it (its YAML with these settings, checked, then instantiated)."""
    settings = OmegaConf.merge(
        shipped_settings(name), {"alpha": alpha, "points": points, "points_per_step": points_per_step}
    )
    return create_mixer(settings, MixContext(4, 5, 3, 8, torch.device("cpu"), seed))


def mixing(draw) -> MixDraw:
    return MixDraw(draw.program, draw.tensors["lams"], draw.tensors["perms"])


@pytest.mark.parametrize("model", [PreActResNet(18, 10, width=4), WideResNet(10, 1, 10)])
@pytest.mark.parametrize("point", [0, 1, 2, 3])
def test_hidden_state_at_the_drawn_point_is_the_mix_of_clean_states(model, point):
    torch.manual_seed(0)
    model.eval()
    x = torch.randn(6, 3, 16, 16)
    perm = torch.tensor([3, 0, 5, 1, 2, 4])
    draw = MixDraw.one(point, lam=torch.tensor(0.3), perm=perm)
    _, clean = capture(model, x)
    _, mixed = capture(model, x, draw.at_point)
    expected = 0.3 * clean[point] + 0.7 * clean[point][perm]
    torch.testing.assert_close(mixed[point], expected)
    for k in range(point):  # earlier points are untouched
        torch.testing.assert_close(mixed[k], clean[k])
    if point + 1 < 4:  # later points see the mixed state, not the clean one
        assert not torch.allclose(mixed[point + 1], clean[point + 1])


def test_targets_are_mixed_with_the_same_lam_and_perm_and_sum_to_one():
    labels = torch.tensor([0, 1, 2, 2])
    lam, perm = torch.tensor(0.25), torch.tensor([1, 0, 3, 2])
    draw = MixDraw.one(1, lam, perm)
    targets = draw.targets(labels, 3)
    torch.testing.assert_close(targets.sum(1), torch.ones(4))
    expected = torch.tensor([[0.25, 0.75, 0], [0.75, 0.25, 0], [0, 0, 1], [0, 0, 1.0]])
    torch.testing.assert_close(targets, expected)
    torch.testing.assert_close(mix(F.one_hot(labels, 3).float(), lam, perm), expected)


def test_only_eligible_points_are_drawn_and_each_of_them_is():
    mixer = method("manifold", 2.0, [0, 2, 3], seed=1)
    points = [mixer.draw(8).program[0] for _ in range(300)]
    assert set(points) == {0, 2, 3}
    counts = [points.count(k) for k in (0, 2, 3)]
    assert min(counts) > 60  # roughly uniform: 100 expected each


def test_input_mixup_only_mixes_the_input_and_none_never_mixes():
    assert {method("input", 1.0, [0]).draw(4).program for _ in range(20)} == {(0,)}
    unmixed = method("none", 0.0, [0, 1])
    draw = unmixed.draw(4)
    assert (draw.program, draw.tensors, unmixed.hook(draw.program, draw.tensors), unmixed.programs) == (
        None,
        {},
        None,
        [None],
    )
    labels = torch.tensor([0, 2, 1, 2])
    torch.testing.assert_close(unmixed.targets(None, {}, labels, 3), F.one_hot(labels, 3).float())


@pytest.mark.parametrize("alpha", [0.2, 1.0, 2.0])
def test_lam_follows_beta_alpha_alpha(alpha):
    mixer = method("manifold", alpha, [0], seed=3)
    lams = torch.cat([mixer.draw(4).tensors["lams"] for _ in range(4000)])
    assert ((lams >= 0) & (lams <= 1)).all()
    assert abs(lams.mean().item() - 0.5) < 0.03
    variance = 1 / (4 * (2 * alpha + 1))
    assert abs(lams.var().item() - variance) < 0.15 * variance


def test_permutation_is_a_permutation_of_the_batch():
    draw = method("manifold", 2.0, [0, 1, 2]).draw(17)
    assert sorted(draw.tensors["perms"][0].tolist()) == list(range(17))


def test_generator_state_round_trip_repeats_the_draws():
    mixer = method("manifold", 2.0, [0, 1, 2], seed=5)
    mixer.draw(8)
    state = mixer.state_dict()
    first = [mixer.draw(8) for _ in range(5)]
    other = method("manifold", 2.0, [0, 1, 2], seed=99)
    other.load_state_dict(state)
    second = [other.draw(8) for _ in range(5)]
    for a, b in zip(first, second):
        assert a.program == b.program and all(torch.equal(a.tensors[k], b.tensors[k]) for k in ("lams", "perms"))


# --- several points per step (mixup.points_per_step) -------------------------------------------


class Chain(torch.nn.Module):
    """Identity stages: the output is the input put through every mix, so it must equal the mixed targets
    when the input is the one-hot labels themselves."""

    num_points = 4

    def forward(self, x, at_point=None):
        for k in range(self.num_points):
            x = at_point(k, x) if at_point else x
        return x


@pytest.mark.parametrize("per_step", [1, 2, 3, 4])
def test_targets_are_the_mixture_the_network_sees_whatever_the_number_of_points(per_step):
    mixer = method("manifold", 1.0, [0, 1, 2, 3], per_step, seed=2)
    labels = torch.tensor([0, 1, 2, 3, 4, 0, 1, 2])
    for _ in range(20):
        draw = mixer.draw(len(labels))
        assert len(draw.program) == per_step and list(draw.program) == sorted(set(draw.program))
        seen = Chain()(F.one_hot(labels, 5).float(), at_point=mixer.hook(draw.program, draw.tensors))
        targets = mixer.targets(draw.program, draw.tensors, labels, 5)
        torch.testing.assert_close(seen, targets, rtol=0, atol=1e-6)
        torch.testing.assert_close(targets.sum(1), torch.ones(len(labels)))


def test_two_points_per_step_mix_twice_in_forward_order_each_with_its_own_lam_and_perm():
    lams, perms = torch.tensor([0.3, 0.8]), torch.tensor([[1, 2, 0], [2, 0, 1]])
    draw = MixDraw((1, 2), lams, perms)
    h = torch.tensor([[1.0], [10.0], [100.0]])
    once = 0.3 * h + 0.7 * h[perms[0]]
    assert torch.equal(draw.at_point(0, h), h)
    torch.testing.assert_close(draw.at_point(1, h), once)
    torch.testing.assert_close(draw.at_point(2, once), 0.8 * once + 0.2 * once[perms[1]])


def test_every_set_of_k_points_is_drawn_and_is_one_program():
    mixer = method("manifold", 2.0, [0, 1, 2], 2)
    assert mixer.programs == [(0, 1), (0, 2), (1, 2)]
    drawn = {mixer.draw(4).program for _ in range(200)}
    assert drawn == set(mixer.programs)


def test_one_point_per_step_draws_exactly_what_the_paper_s_mixer_drew():
    """K = 1 keeps the draw order of mmx before points_per_step existed: point index, then lam, then perm."""
    mixer = method("manifold", 2.0, [0, 1, 2], seed=7)
    host, device = torch.Generator().manual_seed(7), torch.Generator().manual_seed(8)
    for _ in range(10):
        draw = mixer.draw(6)
        index = int(torch.randint(3, (1,), generator=host))
        lam = torch._sample_dirichlet(torch.tensor([2.0, 2.0]), generator=device)[0]
        perm = torch.randperm(6, generator=device)
        assert draw.program == ([0, 1, 2][index],)
        assert torch.equal(mixing(draw).lams[0], lam) and torch.equal(mixing(draw).perms[0], perm)


@pytest.mark.parametrize("per_step", [0, 4])
def test_more_points_per_step_than_points_is_refused(per_step):
    from mmx.errors import UserError

    with pytest.raises(UserError, match="mixup.points_per_step"):
        method("manifold", 2.0, [0, 1, 2], per_step)
