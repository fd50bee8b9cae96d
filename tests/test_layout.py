"""The layout a network sees is the one asked for, with that layout's own strides (mmx/layout.py)."""

import pytest
import torch

import mmx
from mmx.data import Normalizer
from mmx.data.augment import normalize, random_crop_flip
from mmx.layout import in_layout, strides


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("channels_last", [False, True])
def test_augmented_batches_have_exactly_the_strides_of_the_layout_asked_for(channels, channels_last):
    """The crop gathers in NHWC. With one channel those strides, (64, 1, 8, 1), pass `is_contiguous()` and PyTorch
    reads them as channels_last: the normaliser must give the layout asked for, not keep them."""
    images = torch.randint(0, 255, (6, channels, 8, 8), dtype=torch.uint8)
    gathered = random_crop_flip(images, padding=1, flip=True, generator=torch.Generator().manual_seed(0))
    batch = Normalizer([0.5] * channels, [0.25] * channels, torch.device("cpu"), channels_last)(gathered)
    assert batch.stride() == strides(batch.shape, channels_last)
    assert batch.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    mean, std = (torch.full((1, channels, 1, 1), v) for v in (0.5, 0.25))
    torch.testing.assert_close(batch, normalize(gathered.contiguous(), mean, std), rtol=0, atol=0)


def test_in_layout_copies_only_what_lacks_the_strides():
    nchw = torch.rand(4, 1, 8, 8)
    assert in_layout(nchw, channels_last=False) is nchw
    ambiguous = torch.rand(4, 8, 8, 1).permute(0, 3, 1, 2)  # strides (64, 1, 8, 1): contiguous, read as NHWC
    assert ambiguous.is_contiguous() and ambiguous.stride() == (64, 1, 8, 1)
    fixed = in_layout(ambiguous, channels_last=False)
    assert fixed.stride() == (64, 64, 8, 1) and torch.equal(fixed, ambiguous)
    assert in_layout(ambiguous, channels_last=True) is ambiguous  # already channels_last's own strides


@pytest.mark.parametrize("channels_last", [False, True])
def test_the_network_receives_the_layout_it_trains_in_when_training_and_evaluating(compose, channels_last):
    from mmx.trainer import Trainer

    cfg = compose("model.width=8", "trainer.progress=false", f"trainer.channels_last={str(channels_last).lower()}")
    trainer = Trainer(cfg)
    seen = []
    trainer.network.register_forward_pre_hook(lambda module, args: seen.append((args[0].shape, args[0].stride())))
    trainer.train_epoch(1, max_steps=2)
    trainer.evaluate(max_batches=1)
    assert len(seen) == 3 and seen[0][0][1] == 1  # two steps and one test batch, of 1-channel digits
    assert all(stride == strides(shape, channels_last) for shape, stride in seen), seen


def test_a_loaded_run_classifies_in_nchw_whatever_the_images_strides(digits_run):
    run = mmx.load_run(digits_run)
    seen = []
    run.network.register_forward_pre_hook(lambda module, args: seen.append(args[0].stride()))
    images = torch.randint(0, 255, (5, 8, 8, 1), dtype=torch.uint8).permute(0, 3, 1, 2)  # read as channels_last
    run.classify(images)
    assert seen == [(64, 64, 8, 1)]
