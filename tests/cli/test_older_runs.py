"""Adding a metric never breaks a run or a table: a run written before a metric existed resumes and tabulates with
that metric's cells empty, and a column this mmx does not know (a newer mmx's metric) is kept, never dropped."""

import csv
import json

import pytest
import torch

from helpers import TINY, kill_when, run_mmx

pytestmark = pytest.mark.slow  # trains through the command line

ARGS = ["train", *TINY, "trainer.deterministic=true", "epochs=3", "schedule.milestones=[2]"]


def rows(run):
    with open(run / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def as_if_older(run, missing: str, unknown: str) -> None:
    """``run`` as an mmx without the score ``missing`` and with a column ``unknown`` would have left it."""
    table = rows(run)
    columns = [c for c in table[0] if c != f"test_{missing}"] + [unknown]
    with open(run / "metrics.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows({**row, unknown: 0.5} for row in table)
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    for row in state["metrics"]:
        del row[f"test_{missing}"]
    for record in (state["final"], state["best"]):
        record.pop(missing, None)  # final and best may be one object
    torch.save(state, run / "checkpoints" / "last.pt")
    summary = json.loads((run / "summary.json").read_text())
    for record in (summary["final"], summary["best"]):
        record.pop(missing, None)  # final and best may be one object
    (run / "summary.json").write_text(json.dumps(summary))


def test_a_run_from_before_a_metric_resumes_and_tabulates_with_its_cells_empty(tmp_path):
    run = tmp_path / "older"
    summary = run / "summary.json"
    kill_when([*ARGS, f"hydra.run.dir={run}"], tmp_path, lambda: summary.exists())
    done = json.loads(summary.read_text())["epochs_done"]
    assert done in (1, 2), "the kill must land mid-run"
    as_if_older(run, missing="top5", unknown="test_future")

    resumed = run_mmx(["train", f"resume={run}"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    table = rows(run)
    assert list(table[0])[-1] == "test_future"  # kept, after the columns this mmx knows
    assert [row["test_top5"] == "" for row in table] == [True] * done + [False] * (3 - done)
    assert [row["test_future"] for row in table] == ["0.5"] * done + [""] * (3 - done)
    assert json.loads(summary.read_text())["finished"]

    for command in (["tables", str(run), "--out", "out"], ["tables", str(run), "--brief"], ["plot", str(run)]):
        result = run_mmx([*command, *(["--out", "figures"] if command[0] == "plot" else [])], tmp_path)
        assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
        assert "skipping broken run" not in result.stderr
    with open(tmp_path / "out" / "runs.csv", newline="") as handle:
        (cell,) = list(csv.DictReader(handle))
    assert cell["seeds"] == "1" and float(cell["final_top5_mean"]) > 0


def test_a_run_whose_config_names_the_mixer_of_older_mmx_resumes_to_the_same_numbers(tmp_path):
    """Runs written before mixing methods had classes of their own name ``_target_: mmx.mixing.Mixer`` (the
    committed results/ runs do): such a run resumes, mixing as it did, to the numbers of a run never stopped."""
    from helpers import assert_same_run

    assert run_mmx([*ARGS, "hydra.run.dir=full"], tmp_path).returncode == 0
    run = tmp_path / "older"
    summary = run / "summary.json"
    kill_when([*ARGS, f"hydra.run.dir={run}"], tmp_path, lambda: summary.exists())
    config = run / "config.yaml"
    config.write_text(config.read_text().replace("mmx.mixing.manifold.ManifoldMixup", "mmx.mixing.Mixer"))
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    state["config"]["mixup"]["_target_"] = "mmx.mixing.Mixer"
    torch.save(state, run / "checkpoints" / "last.pt")
    resumed = run_mmx(["train", f"resume={run}"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_run(run, tmp_path / "full")
