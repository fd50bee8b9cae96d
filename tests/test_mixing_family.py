"""The mixing family beside manifold mixup: CutMix's box and its clipped area in the targets (at the input and on
feature maps), Noisy Feature Mixup's noise, RegMixup's two-term loss, each against a computation by hand."""

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from mmx.errors import UserError
from mmx.losses import soft_cross_entropy
from mmx.mixing import Draw, MixContext
from mmx.mixing.base import shipped_settings
from mmx.models import PreActResNet
from mmx.parts import create_mixer

from helpers import capture

# 3 x 8 x 8 images through a width-8 PreActResNet18: the states at its four mixing points
SHAPES = ((3, 8, 8), (8, 8, 8), (16, 4, 4), (32, 2, 2))


def method(name: str, seed: int = 0, shapes=SHAPES, **settings):
    """The ``mixup=NAME`` method as a run builds it: its shipped YAML with ``settings``, checked, instantiated."""
    config = OmegaConf.merge(shipped_settings(name), settings)
    context = MixContext(len(shapes), 5, 3, 8, torch.device("cpu"), seed, point_shapes=shapes)
    return create_mixer(config, context)


# --- CutMix ------------------------------------------------------------------------------------------------------

# lam 0.64: sides floor(8 * 0.6) = 4, half 2; centre (0.5, 0.9) of 8 x 8: row 4, column 7. Rows 4-2 .. 4+2 = 2..5,
# columns 7-2 .. 7+2 = 5..9 clipped to 5..7: 4 x 3 = 12 of 64 pixels pasted; the batch keeps 1 - 12/64 = 0.8125.
LAM, CENTER, ROWS, COLS, KEPT = 0.64, (0.5, 0.9), slice(2, 6), slice(5, 8), 1 - 12 / 64


def test_cutmix_pastes_the_box_of_the_public_code_clipped_to_the_image_and_weights_targets_by_its_area():
    cutmix = method("cutmix")
    x, perm = torch.randn(4, 3, 8, 8), torch.tensor([2, 0, 3, 1])
    tensors = {"lams": torch.tensor([LAM]), "perms": perm[None], "centers": torch.tensor([CENTER])}
    mixed = cutmix.hook((0,), tensors)(0, x)
    expected = x.clone()
    expected[:, :, ROWS, COLS] = x[perm][:, :, ROWS, COLS]
    assert torch.equal(mixed, expected)
    labels = torch.tensor([0, 1, 2, 3])
    targets = cutmix.targets((0,), tensors, labels, 5)
    torch.testing.assert_close(targets, KEPT * F.one_hot(labels, 5) + (1 - KEPT) * F.one_hot(labels[perm], 5))


@pytest.mark.parametrize("lam", [0.0, 0.3, 0.5, 0.97, 1.0])
def test_the_targets_weight_is_the_share_of_pixels_left_unpasted_wherever_the_box_falls(lam):
    """Against counting the pixels that changed: every centre of an 8 x 8 image, boxes clipped on any side."""
    cutmix = method("cutmix")
    x = torch.arange(2 * 3 * 64, dtype=torch.float32).reshape(2, 3, 8, 8)  # every pixel differs from its partner
    perm, labels = torch.tensor([1, 0]), torch.tensor([0, 1])
    for row in range(8):
        for col in range(8):
            center = torch.tensor([[(row + 0.5) / 8, (col + 0.5) / 8]])
            tensors = {"lams": torch.tensor([lam]), "perms": perm[None], "centers": center}
            pasted = (cutmix.hook((0,), tensors)(0, x) != x)[0, 0].sum().item()
            side = int(8 * (1 - lam) ** 0.5) // 2
            rows = min(row + side, 8) - max(row - side, 0)
            cols = min(col + side, 8) - max(col - side, 0)
            assert pasted == rows * cols
            weight = cutmix.targets((0,), tensors, labels, 5)[0, 0].item()
            assert weight == pytest.approx(1 - pasted / 64)


def test_cutmix_mixes_a_batch_with_the_chance_its_probability_says_and_otherwise_trains_plainly():
    cutmix = method("cutmix", probability=0.5)
    assert sorted(cutmix.programs) == [(), (0,)]
    draws = [cutmix.draw(4) for _ in range(2000)]
    unmixed = [d for d in draws if d.program == ()]
    assert 0.45 < len(unmixed) / len(draws) < 0.55
    assert unmixed[0].tensors == {} and cutmix.hook((), {}) is None
    labels = torch.tensor([0, 1, 2, 3])
    assert torch.equal(cutmix.targets((), {}, labels, 5), F.one_hot(labels, 5).float())
    lams = torch.cat([d.tensors["lams"] for d in draws if d.program == (0,)])
    assert lams.mean().item() == pytest.approx(0.5, abs=0.03) and lams.var().item() == pytest.approx(1 / 12, abs=0.01)
    assert method("cutmix").programs == [(0,)]  # probability 1: no batch escapes


def test_feature_cutmix_pastes_the_box_into_the_feature_maps_at_the_drawn_point():
    torch.manual_seed(0)
    model = PreActResNet(18, 5, width=8).eval()
    feature_cutmix = method("manifold_cutmix")
    x, perm = torch.randn(4, 3, 8, 8), torch.tensor([3, 2, 1, 0])
    # lam 0.5 on the 4 x 4 maps of point 2: sides floor(4 * 0.707) = 2, half 1; centre row 1, column 3: rows 0..1,
    # columns 2..3 (clipped at 4): 4 of 16 positions pasted
    tensors = {"lams": torch.tensor([0.5]), "perms": perm[None], "centers": torch.tensor([[0.3, 0.99]])}
    _, clean = capture(model, x)
    _, mixed = capture(model, x, feature_cutmix.hook((2,), tensors))
    expected = clean[2].clone()
    expected[:, :, 0:2, 2:4] = clean[2][perm][:, :, 0:2, 2:4]
    torch.testing.assert_close(mixed[2], expected)
    torch.testing.assert_close(mixed[1], clean[1])
    labels = torch.tensor([0, 1, 2, 3])
    targets = feature_cutmix.targets((2,), tensors, labels, 5)
    torch.testing.assert_close(targets, 0.75 * F.one_hot(labels, 5) + 0.25 * F.one_hot(labels[perm], 5))


def test_a_box_needs_feature_maps_and_a_probability_in_range():
    with pytest.raises(UserError, match=r"state at mixing point 1 has shape \[7, 32\] per example"):
        method("manifold_cutmix", shapes=((3, 8, 8), (7, 32), (7, 32)), points=[0, 1])
    with pytest.raises(UserError, match=r"mixup.probability=0 is not allowed: it must be in \(0, 1\]"):
        method("cutmix", probability=0)


# --- Noisy Feature Mixup -------------------------------------------------------------------------------------------


def test_nfm_noise_has_the_public_code_s_mean_and_spread():
    """Per draw, the additive noise is add_noise * b * N(0, 1) and the multiplicative (mult - 1) is
    mult_noise * b' * U(-1, 1), with b, b' ~ Beta(2, 5) (mean 2/7, variance 10/392) drawn once per batch."""
    nfm = method("nfm", points=[1])
    adds, mults = [], []
    for _ in range(400):
        draw = nfm.draw(16)
        add, mult = draw.tensors["add0"], draw.tensors["mult0"]
        assert add.shape == mult.shape == (16, *SHAPES[1])
        assert abs(add.mean()) < 4 * add.std() / add.numel() ** 0.5  # centred
        adds.append(add.std().item() / 0.4)  # b
        uniform = (mult - 1) / 0.2  # b' * U(-1, 1): spread evenly over [-b', b']
        mults.append(uniform.abs().max().item())
        assert uniform.std().item() == pytest.approx(mults[-1] / 3**0.5, rel=0.05)
    for scales in (torch.tensor(adds), torch.tensor(mults)):
        assert scales.mean().item() == pytest.approx(2 / 7, abs=0.02)
        assert scales.var().item() == pytest.approx(10 / 392, abs=0.006)


def test_nfm_multiplies_then_adds_its_noise_to_the_manifold_mix_and_mixes_targets_as_manifold_mixup():
    nfm = method("nfm")
    h, perm = torch.randn(4, 8, 8, 8), torch.tensor([1, 2, 3, 0])
    add, mult = torch.randn(4, 8, 8, 8), 1 + 0.1 * torch.randn(4, 8, 8, 8)
    tensors = {"lams": torch.tensor([0.3]), "perms": perm[None], "add0": add, "mult0": mult}
    noisy = nfm.hook((1,), tensors)
    torch.testing.assert_close(noisy(1, h), (0.3 * h + 0.7 * h[perm]) * mult + add)
    assert noisy(2, h) is h
    labels = torch.tensor([0, 1, 2, 3])
    expected = 0.3 * F.one_hot(labels, 5) + 0.7 * F.one_hot(labels[perm], 5)
    torch.testing.assert_close(nfm.targets((1,), tensors, labels, 5), expected)


def test_nfm_without_noise_draws_none_and_mixes_as_manifold_mixup_does():
    quiet = method("nfm", add_noise=0.0, mult_noise=0.0, seed=3)
    manifold = method("manifold", alpha=1.0, points=[0, 1, 2, 3], seed=3)
    for _ in range(5):
        a, b = quiet.draw(6), manifold.draw(6)
        assert a.program == b.program and sorted(a.tensors) == ["lams", "perms"]
        assert all(torch.equal(a.tensors[k], b.tensors[k]) for k in a.tensors)
    with pytest.raises(UserError, match="mixup.add_noise=-0.1 is not allowed"):
        method("nfm", add_noise=-0.1)


# --- RegMixup ------------------------------------------------------------------------------------------------------


def test_regmixup_loss_is_the_public_code_s_clean_plus_mixup_terms_over_one_pass_of_both():
    torch.manual_seed(0)
    model = PreActResNet(18, 5, width=8).train()
    regmixup = method("regmixup", eta=0.5)
    assert regmixup.forward_passes == 2
    x, labels = torch.randn(6, 3, 8, 8), torch.tensor([0, 1, 2, 3, 4, 0])
    perm, lam = torch.tensor([5, 4, 3, 2, 1, 0]), torch.tensor(0.45)
    draw = Draw((0,), {"lams": lam[None], "perms": perm[None]})
    state = {k: v.clone() for k, v in model.state_dict().items()}
    loss, logits = regmixup.forward_loss(
        lambda images, hook: model(images, at_point=hook), x, labels, *vars(draw).values(), soft_cross_entropy, 5
    )
    model.load_state_dict(state)  # the BatchNorm statistics as they were
    both = model(torch.cat([x, lam * x + (1 - lam) * x[perm]]))  # one pass: BatchNorm sees both halves together
    clean = F.cross_entropy(both[:6], labels)
    mixed = lam * F.cross_entropy(both[6:], labels, reduction="none") + (1 - lam) * F.cross_entropy(
        both[6:], labels[perm], reduction="none"
    )
    torch.testing.assert_close(loss, (clean + 0.5 * mixed.mean()) / 2)
    torch.testing.assert_close(logits, both[:6])  # training accuracy counts the clean half
    with pytest.raises(UserError, match="mixup.eta=0 is not allowed"):
        method("regmixup", eta=0)


# --- all four ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cutmix", "manifold_cutmix", "nfm", "regmixup"])
def test_generator_states_repeat_every_draw(name):
    """What a checkpoint keeps of a method (its generators) draws the same batches again."""
    first = method(name, probability=0.5) if "cutmix" in name else method(name)
    for _ in range(3):
        first.draw(4)
    state = first.state_dict()
    ahead = [first.draw(4) for _ in range(6)]
    second = method(name, seed=99, **({"probability": 0.5} if "cutmix" in name else {}))
    second.load_state_dict(state)
    for a, b in zip(ahead, (second.draw(4) for _ in range(6))):
        assert a.program == b.program and sorted(a.tensors) == sorted(b.tensors)
        assert all(torch.equal(a.tensors[k], b.tensors[k]) for k in a.tensors)
