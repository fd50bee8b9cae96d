"""The committed studies' make targets, cut to a few runs of a few epochs: they run end to end and write
their tables and figures."""

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO

pytestmark = pytest.mark.slow  # trains through the command line

BIN = Path(sys.executable).parent  # this environment's mmx; STAMP= skips the Makefile's install step


def make(target: str, *variables: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "-C", str(REPO), target, "STAMP=", f"BIN={BIN}", *variables],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


def study(target: str, folder: str, tmp_path: Path, *variables: str) -> Path:
    """Run a study's make target into ``tmp_path/folder`` (its ``FOLDER=`` variable) and return that folder."""
    out = tmp_path / folder.lower()
    result = make(target, f"{folder}={out}", *variables, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def test_the_threshold_study_runs_end_to_end(tmp_path):
    out = study(
        "theory-results",
        "THEORY",
        tmp_path,
        "THEORY_WIDTHS=2,10",
        "THEORY_WIDTHS_3=2",
        "THEORY_WIDTHS_5=4",
        "THEORY_SEEDS=0",
        "THEORY_EPOCHS=2",
        "THEORY_LINEAR_EPOCHS=2",
        "THEORY_CHECK_WIDTHS=10",
    )
    rows = list(csv.DictReader(open(out / "theory.csv")))
    assert [(r["classes"], r["head"], r["regime"], r["width"], r["seeds"]) for r in rows] == [
        ("10", "2 hidden layers", "none", "2", "1"),
        ("10", "2 hidden layers", "none", "10", "1"),
        ("10", "2 hidden layers", "manifold", "2", "1"),
        ("10", "2 hidden layers", "manifold", "10", "1"),
        ("10", "linear", "manifold", "2", "1"),
        ("10", "linear", "manifold", "10", "1"),
        ("5", "linear", "manifold", "4", "1"),
        ("3", "linear", "manifold", "2", "1"),
    ]
    assert all(float(r["excess_train_mean"]) > 0 and float(r["rest_over_largest_mean"]) > 0 for r in rows)
    floors = {(r["classes"], r["width"]): float(r["floor"]) for r in rows if r["head"] == "linear"}
    assert floors[("10", "2")] > floors[("10", "10")] > 0.2  # the floor of a linear head falls until d - 1
    assert all(r["floor"] == "" for r in rows if r["head"] != "linear")  # a floor only where the head is affine
    check = list(csv.DictReader(open(out / "theory_check.csv")))
    assert [(r["head"], r["epochs"], r["epochs_long"]) for r in check] == [
        ("2 hidden layers", "2", "4"),
        ("linear", "2", "4"),
    ]
    assert (out / "theory.png").stat().st_size > 20_000 and "Trained twice as long" in (out / "theory.md").read_text()
    assert not list(out.rglob("*.pt"))  # checkpoints are dropped once measured


def cells(folder: Path) -> list[dict]:
    return list(csv.DictReader(open(folder / "runs.csv")))


def test_the_small_labelled_sets_study_runs_end_to_end(tmp_path):
    out = study(
        "lowlabel-results",
        "LOWLABEL",
        tmp_path,
        "LOWLABEL_SMALL=5",
        "LOWLABEL_LARGE=10",
        "STUDY_SEEDS=0",
        "LOWLABEL_ARGS=model.width=8 epochs=2",
    )
    rows = cells(out)
    assert sorted((r["regime"], r["dataset.labels_per_class"], r["seeds"]) for r in rows) == [
        (regime, labels, "1") for regime in ("input", "manifold", "none") for labels in ("10", "5")
    ]
    figure = out / "runs_digits_preactresnet18_against_dataset.labels_per_class"
    assert Path(f"{figure}.png").stat().st_size > 20_000 and len(list(csv.DictReader(open(f"{figure}.csv")))) == 6
    assert not list(out.rglob("*.pt"))


def test_the_500_steps_of_the_small_labelled_sets_study_follow_the_set_size():
    from helpers import mmx_in_process

    for labels, epochs, every in ((5, 500, 25), (10, 250, 12), (20, 125, 6), (50, 50, 2)):
        result = mmx_in_process(
            ["train", "experiment=lowlabel/digits", f"dataset.labels_per_class={labels}", "--cfg", "job", "--resolve"],
            REPO,
        )
        assert f"\nepochs: {epochs}\n" in result.stdout and f"eval_every: {every}\n" in result.stdout, result.stderr


def test_the_several_layers_study_runs_end_to_end(tmp_path):
    out = study(
        "multilayer-results",
        "MULTILAYER",
        tmp_path,
        "MULTILAYER_SETS=[0],[1,2]",
        "MULTILAYER_K=2",
        "STUDY_SEEDS=0",
        "MULTILAYER_ARGS=model.width=8 epochs=2",
    )
    rows = cells(out)
    assert sorted((r["regime"], r["points"], r.get("K", "")) for r in rows) == [
        ("manifold", "0", "1"),
        ("manifold", "0,1,2", "2"),
        ("manifold", "1,2", "1"),
        ("none", "", ""),
    ]
    assert Path(out / "runs_digits_preactresnet18_against_mixup.points.png").stat().st_size > 20_000
    assert not list(out.rglob("*.pt"))


def test_the_recurrent_networks_study_runs_end_to_end(tmp_path):
    out = study("rnn-results", "RNN", tmp_path, "STUDY_SEEDS=0", "RNN_ARGS=model.hidden=16 epochs=2")
    rows = cells(out)
    assert sorted((r["model"], r["regime"], r["points"]) for r in rows) == [
        ("gru", "input", "0"),
        ("gru", "manifold", "0,1,2"),
        ("gru", "manifold", "1,2"),
        ("gru", "none", ""),
    ]
    assert (out / "runs_digits_gru_curves.png").stat().st_size > 20_000
    assert not list(out.rglob("*.pt"))


def test_the_likelihood_study_runs_end_to_end(tmp_path):
    out = study(
        "likelihood-results",
        "LIKELIHOOD",
        tmp_path,
        "STUDY_SEEDS=0,1",
        "LIKELIHOOD_DIGITS_EPOCHS=1,20",
        "LIKELIHOOD_MNIST_EPOCHS=1",
        "LIKELIHOOD_SIZES=10",
        "LIKELIHOOD_ARGS=model.width=8",
        "LIKELIHOOD_SIZE_ARGS=epochs=2",
    )
    rows = list(csv.DictReader(open(out / "likelihood.csv")))
    assert sorted((r["dataset"], r["condition"], float(r["value"]), r["regime"]) for r in rows) == sorted(
        [("digits", "length", e, g) for e in (1.0, 20.0) for g in ("none", "input", "manifold")]
        + [("digits", "labels", v, g) for v in (10.0, 115.0) for g in ("none", "input", "manifold")]
        + [("mnist5k", "length", 1.0, g) for g in ("none", "input", "manifold")]
        + [("mnist5k", "labels", 10.0, g) for g in ("none", "input", "manifold")]
    )  # digits' 20 epochs are the labelled sizes' middle length, so the whole set (115 per class) joins them
    assert all(r["seeds"] == "2" and float(r["nll_mean"]) > 0 and 0 <= float(r["ece_mean"]) <= 1 for r in rows)
    differences = list(csv.DictReader(open(out / "likelihood_differences.csv")))
    assert len(differences) == 2 * len(rows) // 3  # input and manifold against none in every condition
    for row in differences:
        t, diff, se = float(row["nll_t"]), float(row["nll_diff"]), float(row["nll_se"])
        assert t == pytest.approx(diff / se, rel=1e-4)
    text = (out / "likelihood.md").read_text()
    assert "Measured time of `make likelihood-results`" in text and "noise" in text
    assert (out / "likelihood.png").stat().st_size > 50_000 and (out / "eval_calibration.md").is_file()
    assert not list(out.rglob("*.pt"))


def test_the_mixing_family_study_runs_end_to_end(tmp_path):
    out = study(
        "family-results",
        "FAMILY",
        tmp_path,
        "STUDY_SEEDS=0,1",
        "FAMILY_METHODS=manifold,regmixup",
        "FAMILY_ARGS=epochs=1",
        "FAMILY_LABELS_ARGS=epochs=3",
    )
    rows = list(csv.DictReader(open(out / "family.csv")))
    assert sorted((r["labels"], r["method"]) for r in rows) == sorted(
        (labels, method) for labels in ("all", "10") for method in ("manifold", "regmixup")
    )
    assert all(r["seeds"] == "2" and float(r["nll_mean"]) > 0 and 0 <= float(r["fgsm_mean"]) <= 100 for r in rows)
    differences = list(csv.DictReader(open(out / "family_differences.csv")))
    assert sorted((r["labels"], r["method"]) for r in differences) == sorted(
        (labels, "regmixup") for labels in ("all", "10")
    )  # each method against manifold mixup
    for row in differences:
        assert float(row["error_t"]) == pytest.approx(float(row["error_diff"]) / float(row["error_se"]), rel=1e-4)
    text = (out / "family.md").read_text()
    assert "Measured time of `make family-results`" in text and "chosen on its validation split" in text
    assert "FGSM ε=0.1" in text and (out / "family.png").stat().st_size > 30_000
    assert not list(out.rglob("*.pt"))


def test_the_quickstart_table_says_which_split_chose_best(tmp_path):
    result = make(
        "quickstart", f"QUICKSTART_DIR={tmp_path / 'q'}", "QUICKSTART_ARGS=model.width=8 epochs=2", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("digits")]
    assert len(lines) == 3 and all(" validation " in line for line in lines)
