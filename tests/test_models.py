"""Architectures: the public code's exact parameter counts, any input size, exposed mixing points."""

import pytest
import torch

from mmx.models import PreActResNet, WideResNet

# Parameter counts of the Manifold Mixup public code's networks (10 / 100 classes).
COUNTS = [
    (lambda c: PreActResNet(18, c), 10, 11_171_146),
    (lambda c: PreActResNet(18, c), 100, 11_217_316),
    (lambda c: PreActResNet(34, c), 10, 21_279_306),
    (lambda c: PreActResNet(34, c), 100, 21_325_476),
    (lambda c: PreActResNet(50, c), 10, 23_509_066),
    (lambda c: PreActResNet(101, c), 10, 42_501_194),
    (lambda c: PreActResNet(152, c), 10, 58_144_842),
    (lambda c: WideResNet(28, 10, c), 10, 36_489_290),
    (lambda c: WideResNet(28, 10, c), 100, 36_546_980),
    (lambda c: WideResNet(28, 2, c), 10, 1_469_642),
]


@pytest.mark.parametrize("make, classes, expected", COUNTS)
def test_parameter_counts_match_the_public_code(make, classes, expected):
    with torch.device("meta"):  # counts need shapes, not memory
        model = make(classes)
    assert sum(p.numel() for p in model.parameters()) == expected


@pytest.mark.parametrize(
    "make",
    [
        lambda: PreActResNet(18, 7, in_channels=1, width=4),
        lambda: PreActResNet(50, 7, in_channels=1, width=4),
        lambda: WideResNet(10, 1, 7, in_channels=1),
    ],
)
@pytest.mark.parametrize("size", [8, 32, 64])
def test_models_take_any_input_size(make, size):
    model = make().eval()
    assert model(torch.randn(2, 1, size, size)).shape == (2, 7)


@pytest.mark.parametrize("image_size, stage_one", [(8, 8), (32, 32), (64, 32), (224, 56)])
def test_the_stem_follows_the_image_size(image_size, stage_one):
    """auto: the 3x3 CIFAR stem up to 63x63, its stride-2 form from 64x64 (Tiny-ImageNet), ImageNet's from 128x128."""
    for model in (PreActResNet(18, 10, image_size=image_size, width=4), WideResNet(10, 1, 10, image_size=image_size)):
        seen = {}
        model.eval()(torch.randn(1, 3, image_size, image_size), at_point=lambda k, h: seen.setdefault(k, h.shape) and h)
        expected = stage_one if isinstance(model, PreActResNet) else image_size // (2 if image_size >= 64 else 1)
        assert seen[1][-1] == expected and seen[0][-1] == image_size


def test_an_explicit_stem_overrides_the_image_size():
    seen = {}
    model = PreActResNet(18, 10, image_size=32, width=4, stem_stride=2).eval()
    model(torch.randn(1, 3, 64, 64), at_point=lambda k, h: seen.setdefault(k, h.shape) and h)
    assert seen[1][-1] == 32 and seen[0][-1] == 64


@pytest.mark.parametrize("model", [PreActResNet(18, 10, width=4), WideResNet(10, 1, 10)])
def test_mixing_points_are_input_then_stage_outputs(model):
    shapes = []

    def record(k, h):
        shapes.append((k, tuple(h.shape)))
        return h

    model.eval()(torch.randn(2, 3, 32, 32), at_point=record)
    assert model.num_points == 4
    assert [k for k, _ in shapes] == [0, 1, 2, 3]
    assert shapes[0][1] == (2, 3, 32, 32)
    # stage 1 keeps the resolution, stages 2 and 3 halve it
    assert [shape[-1] for _, shape in shapes] == [32, 32, 16, 8]


def test_hook_output_is_used_downstream():
    model = PreActResNet(18, 3, width=4).eval()
    x = torch.randn(2, 3, 8, 8)
    clean = model(x)
    zeroed = model(x, at_point=lambda k, h: torch.zeros_like(h) if k == 2 else h)
    assert not torch.allclose(clean, zeroed)
    assert torch.allclose(zeroed[0], zeroed[1])  # nothing of the input survives a zeroed point


def test_unknown_depths_are_rejected():
    with pytest.raises(ValueError, match="depth"):
        PreActResNet(19)
    with pytest.raises(ValueError, match="6n\\+4"):
        WideResNet(27, 10)


def test_imagenet_stem_brings_224_pixels_to_56_before_the_first_stage():
    model = PreActResNet(18, num_classes=1000, width=8, stem="imagenet")
    shapes = {}
    out = model(torch.randn(2, 3, 224, 224), at_point=lambda k, h: shapes.setdefault(k, h.shape) and h)
    assert out.shape == (2, 1000)
    assert shapes[1][-2:] == (56, 56) and shapes[2][-2:] == (28, 28)
    stem_convs = [m for m in model.stages[0][0].modules() if isinstance(m, torch.nn.Conv2d)]
    assert stem_convs[0].kernel_size == (7, 7) and stem_convs[0].stride == (2, 2)
    with pytest.raises(ValueError, match="stem must be cifar or imagenet"):
        PreActResNet(18, stem="vit")
