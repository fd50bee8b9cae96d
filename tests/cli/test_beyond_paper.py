"""Beyond the paper: several mixing points per step and recurrent networks, through train, eval and tables."""

import csv
import json

import pytest

from helpers import assert_one_sentence_error, run_mmx

pytestmark = pytest.mark.slow  # trains through the command line

GRU = ["model=gru", "model.hidden=16", "mixup=manifold", "trainer.progress=false", "epochs=2"]


def test_a_gru_mixing_at_one_or_two_points_trains_evaluates_and_tabulates_as_two_cells(tmp_path):
    result = run_mmx(["train", "-m", *GRU, "mixup.points_per_step=1,2", "seed=0,1", "hydra.sweep.dir=sweep"], tmp_path)
    assert result.returncode == 0, result.stderr
    runs = sorted(p for p in (tmp_path / "sweep").iterdir() if p.is_dir())
    assert len(runs) == 4 and all(json.loads((r / "summary.json").read_text())["finished"] for r in runs)

    evaluated = run_mmx(["eval", f"run={runs[-1]}", "fgsm.epsilons=[0.1]", "pgd.steps=2"], tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    report = json.loads((runs[-1] / "eval.json").read_text())
    assert 0 <= report["clean"]["ece"] <= 1 and report["fgsm"] and report["pgd"] and report["ood"]

    tabled = run_mmx(["tables", "sweep", "--out", "out"], tmp_path)
    assert tabled.returncode == 0, tabled.stderr
    rows = list(csv.DictReader(open(tmp_path / "out" / "runs.csv")))
    assert [(row["model"], row["K"], row["seeds"]) for row in rows] == [("gru", "1", "2"), ("gru", "2", "2")]


def test_more_points_per_step_than_mixing_points_is_one_sentence(tmp_path):
    result = run_mmx(["train", *GRU, "mixup.points=[1,2]", "mixup.points_per_step=3"], tmp_path)
    assert_one_sentence_error(result, "mixup.points_per_step=3 must be between 1 and the 2 point(s) of mixup.points")
