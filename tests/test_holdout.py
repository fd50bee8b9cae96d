"""The validation split (dataset.val_size): stratified, seeded, disjoint from what trains, and refused in one
sentence where it would leave a class nothing to train on."""

import pytest
import torch

from mmx.data.digits import load_digits
from mmx.data.holdout import Validation, per_class_counts, stratified_split
from mmx.data.images import ImageSplits
from mmx.errors import UserError


def numbered(labels: list[int], test: int = 4) -> ImageSplits:
    """Images whose two pixels spell their index in the training set, so that every split can be traced back."""
    n = len(labels)
    index = torch.arange(n)
    images = torch.stack([index // 256, index % 256], dim=1).to(torch.uint8).view(n, 1, 1, 2)
    test_images = torch.full((test, 1, 1, 2), 255, dtype=torch.uint8)
    return ImageSplits(images, torch.tensor(labels), test_images, torch.zeros(test, dtype=torch.long), max(labels) + 1)


def indices(images: torch.Tensor) -> set[int]:
    return set((images[:, 0, 0, 0].long() * 256 + images[:, 0, 0, 1].long()).tolist())


def test_a_fraction_holds_out_each_class_in_proportion_and_the_rest_trains():
    data = load_digits()
    split = data.with_validation(0.1)
    full = torch.bincount(data.train_labels)  # 142..146 per class
    held = torch.bincount(split.val_labels, minlength=10)
    assert int(held.sum()) == round(0.1 * len(data.train_labels)) == 144
    assert ((held - full * 0.1).abs() < 1).all()  # each class within one image of its share
    assert torch.equal(torch.bincount(split.train_labels) + held, full)
    assert torch.equal(split.test_images, data.test_images)  # the test set is never touched
    assert split.validation.per_class == held.tolist() and split.validation.images == 144


def test_the_split_is_seeded_disjoint_and_covers_the_training_set():
    labels = [c for c in range(3) for _ in range(20)]
    data = numbered(labels)
    a, b, other = data.with_validation(12), data.with_validation(12), data.with_validation(12, seed=1)
    assert indices(a.val_images) == indices(b.val_images) and a.validation == b.validation
    assert indices(a.val_images) != indices(other.val_images) and a.validation.sha256 != other.validation.sha256
    assert indices(a.val_images).isdisjoint(indices(a.train_images))
    assert indices(a.val_images) | indices(a.train_images) == set(range(60))
    assert torch.bincount(a.val_labels).tolist() == [4, 4, 4]


def test_labels_per_class_counts_what_remains_after_the_validation_split():
    data = numbered([c for c in range(2) for _ in range(30)])
    split = data.with_validation(10)
    capped = split.with_labels_per_class(5)
    assert torch.bincount(capped.train_labels).tolist() == [5, 5]
    assert torch.equal(capped.val_images, split.val_images)  # the validation split is kept whole
    assert indices(capped.train_images) <= indices(split.train_images)


def test_counts_are_exact_by_largest_remainder():
    assert per_class_counts([50, 30, 20], 10) == [5, 3, 2]
    assert per_class_counts([1, 1, 1], 2) == [1, 1, 0]  # ties go to the lower class
    assert sum(per_class_counts([143, 146, 142, 146, 145, 145, 145, 143, 139, 143], 144)) == 144


@pytest.mark.parametrize(
    "size, words",
    [
        (60, "would hold out 60 of the 60 training images and leave none to train on"),
        (0.99, "would hold out all 1 training images of class 1, leaving it none to train on"),
        (0, "must be a number of images (a whole number of at least 1) or a fraction"),
        (2.5, "must be a number of images"),
        (True, "must be a number of images"),
        ("abc", "must be a number of images"),
    ],
)
def test_a_split_that_leaves_a_class_nothing_is_one_sentence(size, words):
    labels = torch.tensor([0] * 59 + [1])
    with pytest.raises(UserError, match="dataset.val_size=") as error:
        stratified_split(labels, 2, size, 0, "dataset.val_size")
    assert words in str(error.value)


def test_the_record_names_the_held_out_images_and_their_labels():
    index, labels = torch.tensor([1, 5, 9]), torch.tensor([0, 1, 1])
    record = Validation.of(3, 0, index, labels, 2)
    assert record.per_class == [1, 2] and record.images == 3
    assert Validation.of(3, 0, torch.tensor([1, 5, 8]), labels, 2).sha256 != record.sha256
    assert Validation.of(3, 0, index, torch.tensor([1, 1, 1]), 2).sha256 != record.sha256
    assert record.as_dict()["sha256"] == record.sha256
