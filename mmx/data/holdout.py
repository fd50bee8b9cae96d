"""Held-out parts of a labelled set, drawn per class: the validation split (``dataset.val_size``), and the
train/test split of a dataset that ships as one set (mnist5k).

A stratified draw keeps every class's share: each class gives up its proportion of the held-out images,
rounded so that the total is exact (largest remainders first, ties to the lower class). The seed belongs
to the split, not to the run, so every seed of a sweep is chosen on, and trains beside, the same images.
"""

from __future__ import annotations

import hashlib
import numbers
from dataclasses import dataclass

import torch

from mmx.errors import UserError


def check_size(size, key: str) -> None:
    """A held-out size is a count (a whole number >= 1) or a fraction in (0, 1); anything else is one sentence."""
    valid = isinstance(size, numbers.Real) and not isinstance(size, bool) and size > 0
    if not (valid and (size < 1 or float(size).is_integer())):
        raise UserError(
            f"{key}={size} is not allowed: it must be a number of images (a whole number of at least 1) or a "
            f"fraction of the training set between 0 and 1"
        )


def held_out_count(size, total: int, key: str) -> int:
    """How many of ``total`` images ``size`` holds out: a count, or a fraction of ``total`` (at least one)."""
    check_size(size, key)
    count = int(size) if size >= 1 else max(1, round(size * total))
    if count >= total:
        raise UserError(
            f"{key}={size} would hold out {count} of the {total} training images and leave none to train on; "
            f"choose fewer (for example {key}=0.1)"
        )
    return count


def per_class_counts(class_sizes: list[int], count: int) -> list[int]:
    """``count`` split over classes in proportion to their sizes, by largest remainder (ties: the lower class)."""
    total = sum(class_sizes)
    exact = [count * n / total for n in class_sizes]
    counts = [int(e) for e in exact]
    by_remainder = sorted(range(len(exact)), key=lambda c: (-(exact[c] - counts[c]), c))
    for c in by_remainder[: count - sum(counts)]:
        counts[c] += 1
    return counts


def stratified_split(labels: torch.Tensor, num_classes: int, size, seed: int, key: str):
    """(kept, held out): sorted indices of ``labels``, the held-out part being ``size`` drawn per class.

    Refused in one sentence when the draw would take every image of a class (none left to train on).
    """
    labels = torch.as_tensor(labels).cpu()
    count = held_out_count(size, len(labels), key)
    members = [(labels == c).nonzero().flatten() for c in range(num_classes)]
    counts = per_class_counts([len(m) for m in members], count)
    emptied = [c for c, (m, k) in enumerate(zip(members, counts)) if len(m) and k >= len(m)]
    if emptied:
        c = emptied[0]
        raise UserError(
            f"{key}={size} would hold out all {len(members[c])} training images of class {c}, leaving it none to "
            f"train on; choose a smaller {key}"
        )
    generator = torch.Generator().manual_seed(seed)
    held = []
    for m, k in zip(members, counts):
        held.append(m[torch.randperm(len(m), generator=generator)[:k]])
    held = torch.cat(held).sort().values
    keep = torch.ones(len(labels), dtype=torch.bool)
    keep[held] = False
    return keep.nonzero().flatten(), held


@dataclass(frozen=True)
class Validation:
    """What a run records of its validation split, so that a resume can prove it holds out the same images."""

    size: float | int  # as configured: a count or a fraction
    seed: int
    images: int
    per_class: list[int]
    sha256: str  # of the held-out indices and their labels

    @classmethod
    def of(cls, size, seed: int, index: torch.Tensor, labels: torch.Tensor, num_classes: int) -> "Validation":
        index, labels = index.cpu().long(), labels.cpu().long()
        digest = hashlib.sha256(index.numpy().tobytes() + labels.numpy().tobytes()).hexdigest()
        per_class = torch.bincount(labels, minlength=num_classes).tolist()
        return cls(size, seed, len(index), per_class, digest)

    def as_dict(self) -> dict:
        return {
            "size": self.size,
            "seed": self.seed,
            "images": self.images,
            "per_class": self.per_class,
            "sha256": self.sha256,
        }
