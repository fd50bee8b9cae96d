"""README's "Extending mmx", followed to the letter: a dataset, a metric and a mixing method added as it says, each
living under tests/extending/ (found through hydra.searchpath, or registered from a module of the test's own), then
trained and tabulated through the command line."""

import csv
import json
import os
import subprocess
import sys

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

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


EXTENDING = TESTS / "extending"
WITH_CONFIDENCE = f"""
import sys
sys.path.insert(0, {str(EXTENDING)!r})
import confidence  # noqa: F401 - registers the score, as a line in mmx/metrics.py's REGISTRY would
from mmx.cli import main
sys.exit(main(sys.argv[1:]))
"""


def mmx_with_confidence(args, cwd):
    env = {**os.environ, "MMX_DATA": str(cwd / "data")}
    command = [sys.executable, "-c", WITH_CONFIDENCE, *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_a_metric_is_one_entry_of_the_registry(tmp_path):
    """tests/extending/confidence.py registers a score: it reaches metrics.csv (test and validation), TensorBoard,
    summary.json, the log line, and mmx tables' columns and --brief, with nothing else changed."""
    trained = mmx_with_confidence(["train", *QUICK, "epochs=2", "dataset.val_size=0.1", "hydra.run.dir=run"], tmp_path)
    assert trained.returncode == 0, trained.stderr
    run = tmp_path / "run"
    with open(run / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert all(0 < float(row["test_confidence"]) <= 1 and 0 < float(row["val_confidence"]) <= 1 for row in rows)
    summary = json.loads((run / "summary.json").read_text())
    assert {"confidence", "val_confidence"} <= set(summary["final"]) and "confidence" in trained.stdout
    events = EventAccumulator(str(run / "tb"))
    events.Reload()
    assert {"test/confidence", "val/confidence", "best/confidence"} <= set(events.Tags()["scalars"])

    tables = mmx_with_confidence(["tables", "run", "--out", "out"], tmp_path)
    assert tables.returncode == 0, tables.stderr
    assert "| final confidence |" in (tmp_path / "out" / "runs.md").read_text().replace(" ± ", "")
    brief = mmx_with_confidence(["tables", "run", "--brief"], tmp_path)
    assert brief.returncode == 0 and "test confidence" in brief.stdout.splitlines()[0], brief.stderr


def test_a_mixing_method_is_one_module_and_one_yaml(tmp_path):
    """tests/extending/fixed_mix.py and configs/mixup/fixed_mix.yaml: found through hydra.searchpath and PYTHONPATH,
    its settings checked in one sentence, trained, and tabulated after the runs without mixing."""
    env = {"PYTHONPATH": str(EXTENDING)}
    args = ["train", SEARCH, *QUICK, "epochs=2"]
    wrong = run_mmx([*args, "mixup=fixed_mix", "mixup.lam=2", "hydra.run.dir=wrong"], tmp_path, env=env)
    assert_one_sentence_error(wrong, "mixup.lam=2 is not allowed: it must be between 0 and 1")
    typed = run_mmx([*args, "mixup=fixed_mix", "mixup.point=one", "hydra.run.dir=wrong"], tmp_path, env=env)
    assert_one_sentence_error(typed, "mixup.point=one is not allowed: it must be an integer")
    assert not (tmp_path / "wrong").exists()

    sweep = run_mmx([*args, "-m", "mixup=fixed_mix,none", "hydra.sweep.dir=sweep"], tmp_path, env=env)
    assert sweep.returncode == 0, sweep.stderr
    for job in ("0_mixup=fixed_mix", "1_mixup=none"):
        assert json.loads((tmp_path / "sweep" / job / "summary.json").read_text())["finished"]
    tables = run_mmx(["tables", "sweep", "--out", "out"], tmp_path)
    assert tables.returncode == 0, tables.stderr
    with open(tmp_path / "out" / "runs.csv", newline="") as handle:
        assert [row["regime"] for row in csv.DictReader(handle)] == ["none", "fixed_mix"]
