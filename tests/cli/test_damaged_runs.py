"""A damaged run folder is named, never crashes and never loses history silently: a config.yaml edited after the run
started, a metrics.csv deleted or cut short, a summary.json that is not one; and a failed download leaves no folder."""

import csv
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from helpers import TINY, assert_one_sentence_error, assert_same_run, kill_when, metric_rows, run_mmx

EDITED = "cannot resume {run}: its config.yaml differs from the config its checkpoints/last.pt was trained with in"


def strip_checkpoint(run, *keys):
    """last.pt as an mmx before these keys existed wrote it."""
    path = run / "checkpoints" / "last.pt"
    state = torch.load(path, weights_only=True)
    for key in keys:
        del state[key]
    torch.save(state, path)


def test_a_config_edited_after_the_run_started_is_refused_before_any_weights_load(tmp_path, digits_run):
    for name, stripped in (("run", ()), ("older", ("config",)), ("oldest", ("config", "model_args"))):
        run = tmp_path / name
        shutil.copytree(digits_run, run)
        strip_checkpoint(run, *stripped)
        config = run / "config.yaml"
        config.write_text(config.read_text().replace("width: 8", "width: 16"))
        before = (run / "metrics.csv").read_text()
        result = run_mmx(["train", f"resume={run}"], tmp_path)
        assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
        if name == "oldest":  # nothing to compare with: the weights' shapes say it, as they load
            assert_one_sentence_error(result, "weights do not fit the network", "[8, 1, 3, 3]", "[16, 1, 3, 3]")
        else:
            assert_one_sentence_error(result, EDITED.format(run=run), "model.width (8 -> 16)", "restore those values")
        assert (run / "metrics.csv").read_text() == before


def test_edits_that_cannot_change_results_still_resume(tmp_path, digits_run):
    """Moving a run to another device or hiding its progress bars is no damage (trainer.device, trainer.progress)."""
    shutil.copytree(digits_run, tmp_path / "run")
    config = tmp_path / "run" / "config.yaml"
    text = config.read_text()
    config.write_text(text.replace("progress: false", "progress: true").replace("device: auto", "device: cpu"))
    result = run_mmx(["train", "resume=run"], tmp_path)
    assert result.returncode == 0 and "already finished" in result.stdout, result.stderr


def test_a_cut_or_damaged_metrics_csv_of_a_finished_run_is_rebuilt_from_its_checkpoint(tmp_path, digits_run):
    whole = (digits_run / "metrics.csv").read_text()
    for name, damage in (("cut", whole[: whole.index("\n2,") + 5]), ("damaged", whole.replace("\n2,", "\nx,"))):
        shutil.copytree(digits_run, tmp_path / name)
        (tmp_path / name / "metrics.csv").write_text(damage)
        result = run_mmx(["train", f"resume={name}"], tmp_path)
        assert result.returncode == 0, result.stderr
        assert "rebuilt from checkpoints/last.pt's copy of the rows" in result.stdout
        assert metric_rows(tmp_path / name) == metric_rows(digits_run)


def test_without_a_copy_of_the_rows_a_metrics_csv_with_a_hole_is_refused(tmp_path, digits_run):
    run = tmp_path / "run"
    shutil.copytree(digits_run, run)
    strip_checkpoint(run, "metrics")  # an mmx before checkpoints kept the rows
    lines = (run / "metrics.csv").read_text().splitlines(keepends=True)
    cut = lines[0] + lines[1] + lines[3]  # epoch 2 lost
    (run / "metrics.csv").write_text(cut)
    result = run_mmx(["train", "resume=run"], tmp_path)
    assert_one_sentence_error(result, "its metrics.csv lacks epoch(s) 2", "restore metrics.csv from a copy")
    assert (run / "metrics.csv").read_text() == cut


@pytest.mark.slow
def test_a_deleted_metrics_csv_is_rebuilt_on_resume_to_the_rows_of_a_run_never_damaged(tmp_path):
    args = ["train", *TINY, "trainer.deterministic=true", "epochs=4", "schedule.milestones=[2,3]"]
    assert run_mmx([*args, "hydra.run.dir=full"], tmp_path).returncode == 0
    killed = tmp_path / "killed"
    summary = killed / "summary.json"
    kill_when(
        [*args, "hydra.run.dir=killed"],
        tmp_path,
        lambda: summary.exists() and json.loads(summary.read_text() or "{}").get("epochs_done", 0) >= 2,
    )
    done = json.loads(summary.read_text())["epochs_done"]
    assert 2 <= done < 4, "the kill must land mid-run"
    (killed / "metrics.csv").unlink()
    resumed = run_mmx(["train", "resume=killed"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{killed}/metrics.csv was missing; rebuilt from checkpoints/last.pt" in resumed.stdout
    assert_same_run(killed, tmp_path / "full")


def test_damaged_summaries_and_configs_in_a_sweep_are_named_while_the_rest_is_tabulated(tmp_path, digits_run):
    sweep = tmp_path / "sweep"
    damages = {
        "text": ("summary.json", '"finished"'),
        "wrong_type": ("summary.json", None),
        "config": ("config.yaml", "dataset: {name: digits}\nmodel: {name: m}\nmixup: 3\n"),
    }
    for name, (file, text) in damages.items():
        shutil.copytree(digits_run, sweep / name)
        if text is None:  # a number that is not one
            summary = json.loads((digits_run / "summary.json").read_text())
            summary["final"]["nll"] = "low"
            text = json.dumps(summary)
        (sweep / name / file).write_text(text)
    shutil.copytree(digits_run, sweep / "whole")
    for brief in ([], ["--brief"]):
        result = run_mmx(["tables", str(sweep), "--out", "out", *brief], tmp_path)
        assert result.returncode == 0, result.stderr
        warnings = [line for line in result.stderr.splitlines() if line.startswith("WARNING: skipping broken run")]
        assert len(warnings) == 3 and "Traceback" not in result.stderr, result.stderr
        assert "summary.json is damaged (it holds a str, not an object)" in result.stderr
        assert "summary.json is damaged (final.nll is 'low', not a number)" in result.stderr
        assert "config.yaml is damaged" in result.stderr
    assert "whole" in result.stdout  # --brief names the run it tabulated
    with open(tmp_path / "out" / "runs.csv", newline="") as handle:
        assert [int(row["seeds"]) for row in csv.DictReader(handle)] == [1]


def test_a_run_in_its_first_epoch_adds_no_precision_column(tmp_path, digits_run):
    """Its precision is unknown until its first summary: no difference from the cells whose precision is known."""
    shutil.copytree(digits_run, tmp_path / "runs" / "finished")
    first = tmp_path / "runs" / "first_epoch"
    first.mkdir()
    config = (digits_run / "config.yaml").read_text()
    (first / "config.yaml").write_text(config.replace("alpha: 2.0", "alpha: 1.0"))
    result = run_mmx(["tables", "runs", "--out", "out"], tmp_path)
    assert result.returncode == 0, result.stderr
    with open(tmp_path / "out" / "runs.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 and "precision" not in rows[0]
    assert "| precision |" not in (tmp_path / "out" / "runs.md").read_text()


def test_tables_help_lists_brief(tmp_path):
    result = run_mmx(["tables", "--help"], tmp_path)
    assert result.returncode == 0 and "--brief" in result.stdout and "one line per run" in result.stdout


OFFLINE_MMX = """
import sys, urllib.error, urllib.request

def offline(*args, **kwargs):
    raise urllib.error.URLError("no network in this test")

urllib.request.urlopen = offline
from mmx.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("dataset", ["cifar10", "svhn", "tinyimagenet"])
def test_a_failed_download_leaves_no_folder_behind(tmp_path, dataset):
    """torchvision creates the data folders before it downloads; a failed download removes what it created."""
    root = tmp_path / "fresh" / "data"
    result = subprocess.run(
        [sys.executable, "-c", OFFLINE_MMX, "train", *TINY, f"dataset={dataset}", "hydra.run.dir=run"],
        cwd=tmp_path,
        env={**os.environ, "MMX_DATA": str(root)},
        capture_output=True,
        text=True,
    )
    assert_one_sentence_error(result, "could not be downloaded", "no network in this test")
    assert not (tmp_path / "fresh").exists() and not (tmp_path / "run").exists()
