"""README's "Extending mmx", followed to the letter: a dataset, a metric and a mixing method added as it says, each
living under tests/extending/ (found through hydra.searchpath, or registered from a module of the test's own), then
trained and tabulated through the command line."""

import csv
import json

import pytest

from fake_datasets import write_mnist_family
from helpers import TESTS, assert_one_sentence_error, run_mmx

pytestmark = pytest.mark.slow  # trains through the command line

SEARCH = f"hydra.searchpath=[file://{TESTS / 'extending' / 'configs'}]"
QUICK = ["model.width=8", "trainer.progress=false", "schedule.milestones=[]"]


def test_a_dataset_is_one_yaml(tmp_path):
    """tests/extending/configs/dataset/fashionmnist.yaml: torchvision's FashionMNIST through mmx's generic loader,
    on generated files in its real format. Without a recipe of its own it is refused in one sentence naming the file
    to add; given a length and a learning rate it trains, tabulates, and mmx eval pairs it with the OOD set its YAML
    names."""
    write_mnist_family(tmp_path / "data", "FashionMNIST")
    args = ["train", SEARCH, "dataset=fashionmnist", "dataset.download=false", *QUICK]
    refused = run_mmx([*args, "hydra.run.dir=run"], tmp_path)
    assert_one_sentence_error(
        refused, "epochs and optim.lr have no value", "recipe/for_dataset/default_fashionmnist.yaml", "epochs=N"
    )
    assert not (tmp_path / "run").exists()

    trained = run_mmx([*args, "epochs=2", "optim.lr=0.05", "batch_size=50", "hydra.run.dir=run"], tmp_path)
    assert trained.returncode == 0, trained.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["dataset"] == "fashionmnist" and summary["finished"] and summary["final"]["acc"] > 20

    tables = run_mmx(["tables", "run", "--out", "out"], tmp_path)
    assert tables.returncode == 0, tables.stderr
    with open(tmp_path / "out" / "runs.csv", newline="") as handle:
        assert [row["dataset"] for row in csv.DictReader(handle)] == ["fashionmnist"]
    evaluated = run_mmx(["eval", "run=run", "deformations=false", "fgsm.epsilons=[]", "ood.max_images=50"], tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads((tmp_path / "run" / "eval.json").read_text())["ood"]["set"] == "digits"
