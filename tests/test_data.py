"""Device-side batches: valid crops and flips, every image once per epoch, reproducible under a seed."""

import torch

from mmx.data import Normalizer, TrainBatches, eval_batches
from mmx.data.augment import random_crop_flip
from mmx.data.digits import load_digits


def test_crops_are_windows_of_the_zero_padded_image_with_every_offset_drawn():
    images = torch.arange(1, 17, dtype=torch.uint8).view(1, 1, 4, 4).repeat(500, 1, 1, 1)
    out = random_crop_flip(images, padding=1, flip=False, generator=torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(images[0], (1, 1, 1, 1))
    windows = {(dy, dx): padded[:, dy : dy + 4, dx : dx + 4] for dy in range(3) for dx in range(3)}
    seen = set()
    for crop in out:
        match = [offset for offset, window in windows.items() if torch.equal(crop, window)]
        assert match, "a crop must be a window of the padded image"
        seen.add(match[0])
    assert seen == set(windows)


def test_flip_mirrors_about_half_of_the_images():
    images = torch.randint(0, 255, (2000, 3, 5, 5), dtype=torch.uint8)
    out = random_crop_flip(images, padding=0, flip=True, generator=torch.Generator().manual_seed(0))
    flipped = torch.tensor([torch.equal(o, i.flip(2)) for o, i in zip(out, images)])
    kept = torch.tensor([torch.equal(o, i) for o, i in zip(out, images)])
    assert (flipped | kept).all()
    assert 0.45 < flipped.float().mean() < 0.55


def test_normalisation():
    norm = Normalizer([0.5], [0.25], torch.device("cpu"))
    out = norm(torch.tensor([0, 255], dtype=torch.uint8).view(2, 1, 1, 1))
    torch.testing.assert_close(out.flatten(), torch.tensor([-2.0, 2.0]))


def test_an_epoch_visits_each_image_at_most_once_and_is_reproducible():
    images = torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1).repeat(1, 1, 2, 2)
    labels = torch.arange(10)
    norm = Normalizer([0.0], [1.0], torch.device("cpu"))
    batches = TrainBatches(images, labels, 3, norm, crop_padding=0, flip=False, seed=7)
    assert len(batches) == 3  # the remainder of 10 // 3 is dropped
    epoch = [y for _, y in batches]
    seen = torch.cat(epoch)
    assert len(set(seen.tolist())) == 9
    state = batches.state_dict()
    again = [y for _, y in batches]
    batches.load_state_dict(state)
    replay = [y for _, y in batches]
    assert all(torch.equal(a, b) for a, b in zip(again, replay))
    assert not all(torch.equal(a, b) for a, b in zip(epoch, again))  # a fresh order each epoch


def test_eval_batches_cover_the_test_set_in_order():
    images = torch.zeros(7, 1, 2, 2, dtype=torch.uint8)
    labels = torch.arange(7)
    got = torch.cat([y for _, y in eval_batches(images, labels, 3, Normalizer([0.0], [1.0], torch.device("cpu")))])
    assert torch.equal(got, labels)


def test_digits_split_is_fixed_and_stratified():
    a, b = load_digits(), load_digits()
    assert torch.equal(a.test_labels, b.test_labels) and torch.equal(a.train_images, b.train_images)
    assert len(a.train_images) == 1437 and len(a.test_images) == 360
    assert a.train_images.dtype == torch.uint8 and a.train_images.shape[1:] == (1, 8, 8)
    assert a.train_images.max() == 255
    per_class = torch.bincount(a.test_labels, minlength=10)
    assert per_class.min() >= 35 and per_class.max() <= 37


def test_labels_per_class_keeps_a_fixed_balanced_subset():
    data = load_digits()
    subset = data.with_labels_per_class(5)
    assert torch.bincount(subset.train_labels).tolist() == [5] * 10
    assert torch.equal(subset.train_images, data.with_labels_per_class(5).train_images)  # fixed seed
    assert torch.equal(subset.test_labels, data.test_labels)  # the test set is untouched
    member = subset.train_images[0]
    assert any(torch.equal(member, image) for image in data.train_images)


def test_labels_per_class_caps_each_class_and_keeps_the_smaller_ones_whole(caplog):
    """As the public code's --labels_per_class (its SVHN command caps the larger classes only)."""
    import logging

    import pytest

    from mmx.errors import UserError

    data = load_digits()
    full = torch.bincount(data.train_labels)  # 142..146 training images per class
    with caplog.at_level(logging.INFO, logger="mmx"):
        capped = data.with_labels_per_class(144)
    assert torch.equal(torch.bincount(capped.train_labels), full.clamp(max=144))
    assert f"training on {int(full.clamp(max=144).sum())} of {len(data.train_labels)} images" in caplog.text
    assert "classes with fewer keep all of theirs" in caplog.text
    for bad in (0, -1):
        with pytest.raises(UserError, match="dataset.labels_per_class must be a positive integer"):
            data.with_labels_per_class(bad)


def test_a_class_subset_keeps_those_classes_in_both_splits_relabelled_in_the_order_given():
    data = load_digits()
    subset = data.with_classes([7, 3, 0])
    assert subset.num_classes == 3
    for images, labels, old_images, old_labels in (
        (subset.train_images, subset.train_labels, data.train_images, data.train_labels),
        (subset.test_images, subset.test_labels, data.test_images, data.test_labels),
    ):
        for new, old in enumerate([7, 3, 0]):
            assert torch.equal(images[labels == new], old_images[old_labels == old])  # same images, same order
        assert len(labels) == sum(int((old_labels == c).sum()) for c in (7, 3, 0))
    assert torch.bincount(subset.with_labels_per_class(5).train_labels).tolist() == [5, 5, 5]


def test_crop_and_flip_follow_torchvisions_distribution():
    """Same outcome frequencies as RandomCrop(size, padding) + RandomHorizontalFlip (chi-square test)."""
    from collections import Counter

    from scipy.stats import chi2_contingency
    from torchvision.transforms import v2

    image = torch.arange(1, 17, dtype=torch.uint8).view(1, 4, 4)
    draws = 3000
    torch.manual_seed(0)
    reference = v2.Compose([v2.RandomCrop(4, padding=1), v2.RandomHorizontalFlip()])
    theirs = Counter(reference(image).numpy().tobytes() for _ in range(draws))
    batch = image.unsqueeze(0).repeat(draws, 1, 1, 1)
    ours = Counter(x.numpy().tobytes() for x in random_crop_flip(batch, 1, True, torch.Generator().manual_seed(1)))
    outcomes = sorted(set(theirs) | set(ours))
    assert len(outcomes) == 18  # 9 offsets x 2 mirror states, all distinct for distinct pixels
    _, p_value, _, _ = chi2_contingency([[theirs[o] for o in outcomes], [ours[o] for o in outcomes]])
    assert p_value > 1e-3


def test_augmentation_is_reproducible_under_a_seed():
    batch = torch.randint(0, 255, (64, 3, 8, 8), dtype=torch.uint8)
    a = random_crop_flip(batch, 2, True, torch.Generator().manual_seed(3))
    b = random_crop_flip(batch, 2, True, torch.Generator().manual_seed(3))
    c = random_crop_flip(batch, 2, True, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
