"""Fixtures shared by the suite; helpers live in helpers.py.

Tiers: ``make test`` runs the tests not marked ``slow`` (minutes, for the edit-test loop);
``make test-full`` (and CI) runs everything. Tests marked ``gpu`` run wherever a GPU is present.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from helpers import TINY, run_mmx


def pytest_collection_modifyitems(config, items):
    # The slow tests first (a stable sort keeps their order): pytest-xdist hands tests out in this order, so the
    # minutes-long ones start early and the quick ones even out the workers at the end, instead of one long test
    # running alone on one core while the other idles.
    items.sort(key=lambda item: "slow" not in item.keywords)
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def compose():
    """``mmx train``'s config for some overrides, composed and checked once per distinct overrides."""
    from mmx.config import compose_train

    @functools.lru_cache(maxsize=None)
    def composed(*overrides: str):
        return compose_train(list(overrides))

    return lambda *overrides: composed(*overrides).copy()


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory) -> Path:
    """One finished 3-epoch digits run, shared by the tests that only read its artifacts."""
    cwd = tmp_path_factory.mktemp("digits_run")
    result = run_mmx(["train", *TINY, "epochs=3", "schedule.milestones=[2]", "hydra.run.dir=run"], cwd)
    assert result.returncode == 0, result.stderr
    return cwd / "run"


@pytest.fixture(scope="session")
def paper_data(tmp_path_factory) -> Path:
    """CIFAR-10/100, SVHN and Tiny-ImageNet files in their real formats, a few images each."""
    from fake_datasets import write_cifar, write_svhn, write_tiny_imagenet

    root = tmp_path_factory.mktemp("paper_data")
    for variant in ("cifar10", "cifar100"):
        write_cifar(root, variant, per_batch=8, test=8)
    write_svhn(root, train=16, test=8)
    write_tiny_imagenet(root, classes=3, train_per_class=3, val_per_class=2)
    return root
