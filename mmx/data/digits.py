"""scikit-learn's 8x8 handwritten digits: the embedded dataset every CPU smoke run uses."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.datasets import load_digits as _sklearn_digits
from sklearn.model_selection import train_test_split

from mmx.data.images import ImageSplits

SPLIT_SEED = 0  # the split is part of the dataset's definition, not of a run's seed


def load_digits(test_fraction: float = 0.2) -> ImageSplits:
    """1,797 images of 16 grey levels, split once, stratified by class, with a fixed seed.

    The 0..16 grey levels are stretched to 0..255 so that every dataset is uint8 with the same
    meaning of a pixel value.
    """
    bunch = _sklearn_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None, :, :]
    labels = bunch.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=test_fraction, stratify=labels, random_state=SPLIT_SEED
    )
    return ImageSplits(
        torch.from_numpy(x_train),
        torch.from_numpy(y_train),
        torch.from_numpy(x_test),
        torch.from_numpy(y_test),
        num_classes=10,
    )
