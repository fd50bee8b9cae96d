"""dataset.val_size through the command line: val_* columns, best.pt chosen on validation, the split recorded and
checked on resume, and tables that say which split chose "best"."""

import csv
import json
import shutil
from types import SimpleNamespace

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from mmx.metrics import val_metrics

from helpers import TINY, assert_one_sentence_error, run_mmx

VAL_COLUMNS = [metric.column for metric in val_metrics().values()]  # the registry's validated scores


@pytest.fixture(scope="module")
def validated_run(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("validated")
    args = ["train", *TINY, "epochs=4", "schedule.milestones=[3]", "dataset.val_size=0.1", "hydra.run.dir=validated"]
    result = run_mmx(args, cwd)
    assert result.returncode == 0, result.stderr
    assert "(chosen on validation)" in result.stdout + result.stderr
    return cwd / "validated"


def rows(run):
    with open(run / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_every_record_has_validation_metrics_and_best_is_the_lowest_validation_error(validated_run):
    table = rows(validated_run)
    assert list(table[0])[-len(VAL_COLUMNS) :] == VAL_COLUMNS
    for row in table:
        assert float(row["val_error"]) == pytest.approx(100 - float(row["val_acc"]))
        assert float(row["val_nll"]) > 0 and 0 <= float(row["val_ece"]) <= 1
    summary = json.loads((validated_run / "summary.json").read_text())
    first_lowest = min(table, key=lambda r: (float(r["val_error"]), int(r["epoch"])))
    assert summary["best"]["epoch"] == int(first_lowest["epoch"])
    assert summary["best"]["val_error"] == pytest.approx(float(first_lowest["val_error"]))
    assert summary["best"]["error"] == pytest.approx(float(first_lowest["test_error"]))  # its test error, reported
    best = torch.load(validated_run / "checkpoints" / "best.pt", weights_only=True)
    assert best["epoch"] == summary["best"]["epoch"]
    assert summary["best_chosen_on"] == "validation"
    assert summary["validation"]["images"] == 144 and sum(summary["validation"]["per_class"]) == 144
    assert summary["validation"] == best["validation"]
    events = EventAccumulator(str(validated_run / "tb"))
    events.Reload()
    assert {"val/acc", "val/error", "val/nll", "val/ece", "best/val_error"} <= set(events.Tags()["scalars"])


@pytest.mark.slow
def test_tables_say_which_split_chose_best(validated_run, digits_run, tmp_path):
    brief = run_mmx(["tables", str(validated_run), str(digits_run), "--brief"], tmp_path)
    assert brief.returncode == 0, brief.stderr
    lines = {line.split()[-1]: line for line in brief.stdout.splitlines() if line.startswith("digits")}
    assert " validation " in lines["validated"] and " test " in lines[digits_run.name]
    assert "train with dataset.val_size=0.1 to choose on a held-out validation split" in brief.stdout
    tables = run_mmx(["tables", str(validated_run), "--out", "t"], tmp_path)
    assert tables.returncode == 0, tables.stderr
    caption = (tmp_path / "t" / "runs.md").read_text().splitlines()[0]
    assert "lowest validation error: chosen on a split held out of the training set" in caption
    both = run_mmx(["tables", str(validated_run), str(digits_run), "--out", "both"], tmp_path)
    assert both.returncode == 0, both.stderr
    text = (tmp_path / "both" / "runs.md").read_text()
    assert "| best chosen on |" in text and "| validation |" in text and "| test |" in text


@pytest.mark.slow
def test_a_resume_that_would_hold_out_other_images_is_refused(validated_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(validated_run, run)
    same = run_mmx(["train", "resume=run"], tmp_path)
    assert same.returncode == 0 and "already finished" in same.stdout + same.stderr
    last = run / "checkpoints" / "last.pt"
    state = torch.load(last, weights_only=True)
    state["validation"]["sha256"] = "0" * 64  # as if the dataset's files had changed under the run
    torch.save(state, last)
    result = run_mmx(["train", "resume=run"], tmp_path)
    assert result.returncode == 2
    assert_one_sentence_error(result, "its validation split was 144 images (seed 0, sha256 000000000000)", "restore")


def test_best_follows_the_validation_error_not_the_test_error():
    """Record picks the epoch of lowest validation error when the run holds one out, else of lowest test error."""
    from mmx.data.holdout import Validation
    from mmx.train import Record

    def record(validation):
        trainer = SimpleNamespace(data=SimpleNamespace(validation=validation))
        return Record(SimpleNamespace(), trainer, None)

    held = Validation(0.1, 0, 10, [1] * 10, "f" * 64)
    chosen_on_val, chosen_on_test = record(held), record(None)
    for epoch, (test_error, val_error) in enumerate([(5.0, 9.0), (1.0, 8.0), (3.0, 2.0), (4.0, 2.0)], start=1):
        test = {"acc": 100 - test_error, "error": test_error, "top5": 100.0, "nll": 0.1, "ece": 0.01}
        val = {"acc": 100 - val_error, "error": val_error, "nll": 0.2, "ece": 0.02}
        chosen_on_val.epoch(epoch, test, 1.0, val, row={"epoch": epoch})
        chosen_on_test.epoch(epoch, test, 1.0, None, row={"epoch": epoch})
    assert chosen_on_val.best["epoch"] == 3 and chosen_on_val.best["error"] == 3.0  # the first of the tie at 2.0
    assert chosen_on_test.best["epoch"] == 2 and "val_error" not in chosen_on_test.best


QUICK_EVAL = ["deformations=false", "fgsm.epsilons=[]", "ood.max_images=50"]


@pytest.mark.slow
def test_mmx_eval_fits_a_temperature_that_recovers_a_known_factor_of_the_logits(validated_run, tmp_path):
    """Multiplying the classifier's weights and bias by 4 multiplies every logit by 4: the temperature fitted on
    the validation split is then 4 times the run's own, and the scaled test metrics are the same."""
    plain, scaled = tmp_path / "plain", tmp_path / "scaled"
    shutil.copytree(validated_run, plain)
    shutil.copytree(validated_run, scaled)
    best = scaled / "checkpoints" / "best.pt"
    state = torch.load(best, weights_only=True)
    for name in ("stages.3.1.linear.weight", "stages.3.1.linear.bias"):  # the head, the last stage's last part
        state["model"][name] = state["model"][name] * 4
    torch.save(state, best)
    results = {}
    for run in (plain, scaled):
        done = run_mmx(["eval", f"run={run}", *QUICK_EVAL], tmp_path)
        assert done.returncode == 0, done.stderr
        assert "temperature " in done.stdout and "fitted on 144 validation images" in done.stdout
        results[run.name] = json.loads((run / "eval.json").read_text())["temperature"]
    a, b = results["plain"], results["scaled"]
    assert b["value"] == pytest.approx(4 * a["value"], rel=1e-5)
    assert b["fitted_on"] == "validation" and b["val_images"] == 144 and not b["at_bound"]
    for metric in ("acc", "nll", "ece", "brier"):
        assert b["test"]["after"][metric] == pytest.approx(a["test"]["after"][metric], rel=1e-4, abs=1e-6)
    assert b["test"]["before"]["nll"] != pytest.approx(a["test"]["before"]["nll"], rel=1e-3)  # the factor showed
    assert a["test"]["after"]["acc"] == a["test"]["before"]["acc"]  # dividing by T keeps every arg-max
    assert a["val_nll"]["after"] <= a["val_nll"]["before"]
    tables = run_mmx(["tables", str(plain), "--out", "t"], tmp_path)
    assert tables.returncode == 0, tables.stderr
    calibration = (tmp_path / "t" / "eval_calibration.md").read_text()
    assert "T (fitted on validation)" in calibration and "NLL at T" in calibration
    assert f"{a['value']:.3f}" in calibration


@pytest.mark.slow
def test_a_temperature_needs_a_validation_split(digits_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(digits_run, run)
    refused = run_mmx(["eval", f"run={run}", "temperature.fit=true", *QUICK_EVAL], tmp_path)
    assert refused.returncode == 2
    assert_one_sentence_error(refused, "has no validation split", "dataset.val_size=N")
    assert not (run / "eval.json").exists()
    skipped = run_mmx(["eval", f"run={run}", *QUICK_EVAL], tmp_path)  # auto: the other parts run
    assert skipped.returncode == 0, skipped.stderr
    assert "temperature scaling: not fitted (the run has no validation split; dataset.val_size sets one)" in (
        skipped.stdout
    )
    assert json.loads((run / "eval.json").read_text())["temperature"] is None
