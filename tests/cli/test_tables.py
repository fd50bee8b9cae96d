"""mmx tables and mmx plot on synthetic run directories: finished, unfinished, broken and smoke runs."""

import csv
import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from helpers import REPO, assert_one_sentence_error, run_mmx

pytestmark = pytest.mark.slow  # trains or builds through the command line


def make_run(
    folder: Path,
    *,
    experiment=None,
    dataset="cifar10",
    model="preactresnet18",
    regime="manifold",
    alpha=2.0,
    points=(0, 1, 2),
    seed=0,
    epochs=4,
    done=4,
    best_error=3.0,
    final_error=3.2,
    nll=0.15,
    smoke=False,
) -> Path:
    """A run directory as `mmx train` writes it: config.yaml, metrics.csv and summary.json."""
    folder.mkdir(parents=True)
    config = {
        "experiment": experiment,
        "seed": seed,
        "epochs": epochs,
        "loss": "bce",
        "smoke": smoke,
        "dataset": {"name": dataset, "labels_per_class": None},
        "model": {"name": model},
        "mixup": {
            "name": regime,
            "alpha": alpha if regime != "none" else 0.0,
            "points": list(points) if regime != "none" else [],
        },
    }
    OmegaConf.save(OmegaConf.create(config), folder / "config.yaml")
    with open(folder / "metrics.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["epoch", "test_error", "test_nll"])
        for epoch in range(1, done + 1):
            writer.writerow([epoch, final_error + 10.0 / epoch, nll + 1.0 / epoch])

    def block(error):
        return {"acc": 100 - error, "error": error, "top5": 99.0, "nll": nll, "ece": 0.02, "epoch": done}

    summary = {"finished": done == epochs, "epochs_done": done, "final": block(final_error), "best": block(best_error)}
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


@pytest.fixture
def runs(tmp_path):
    root = tmp_path / "runs"
    cell = "paper/table1/cifar10_preactresnet18_manifold"
    for seed, best in enumerate([3.0, 3.1, 2.9]):
        make_run(root / f"m{seed}", experiment=cell, seed=seed, best_error=best)
    make_run(root / "m_unfinished", experiment=cell, seed=3, done=2)
    make_run(
        root / "n_unfinished",
        experiment="paper/table1/cifar10_preactresnet18_none",
        regime="none",
        seed=0,
        done=1,
        best_error=5.5,
        final_error=6.0,
    )
    for alpha in (0.5, 1.0, 2.0):  # a user's alpha sweep, no experiment
        for seed in (0, 1):
            make_run(
                root / f"sweep_a{alpha}_s{seed}",
                dataset="digits",
                alpha=alpha,
                seed=seed,
                best_error=1.0 + alpha + seed * 0.1,
                final_error=1.2 + alpha,
            )
    broken = make_run(root / "broken_summary", experiment=cell, seed=7)
    (broken / "summary.json").write_text("{ not json")
    (root / "broken_config").mkdir()
    (root / "broken_config" / "config.yaml").write_text("dataset: [unclosed\n")
    make_run(root / "smoke", experiment=cell, smoke=True, seed=9)
    (root / "first_epoch_killed").mkdir()
    OmegaConf.save(OmegaConf.load(root / "m0" / "config.yaml"), root / "first_epoch_killed" / "config.yaml")
    return root


def test_tables_aggregate_seeds_and_compare_with_the_paper(runs, tmp_path):
    result = run_mmx(["tables", str(runs), "--out", "out"], tmp_path)
    assert result.returncode == 0, result.stderr
    out = tmp_path / "out"
    rows = {r["regime"]: r for r in csv.DictReader(open(out / "table1.csv"))}
    manifold = rows["manifold"]
    assert int(manifold["seeds"]) == 3 and int(manifold["unfinished"]) == 2  # m_unfinished + first_epoch_killed
    assert float(manifold["best_error_mean"]) == pytest.approx(3.0)
    assert float(manifold["best_error_std"]) == pytest.approx(0.1)
    # the paper: 2.95 +- 0.046 on CIFAR-10 / PreActResNet18 / manifold mixup
    assert float(manifold["paper_test_error"]) == pytest.approx(2.95)
    assert float(manifold["delta_test_error_sigma"]) == pytest.approx((3.0 - 2.95) / 0.046, rel=1e-3)
    markdown = (out / "table1.md").read_text()
    assert "3.00 ± 0.10" in markdown and "2.95 ± 0.05" in markdown and "+1.1σ" in markdown
    assert "2 unfinished (epochs done: 0, 2 of 4)" in markdown
    # a cell with only unfinished runs still appears, marked, with its latest numbers
    assert "1 unfinished (epochs done: 1 of 4)" in markdown and "5.50" in markdown
    assert (out / "table1.tex").read_text().count(r"\pm") >= 3
    # the user sweep gets its own table: one row per alpha
    sweep = list(csv.DictReader(open(out / "runs.csv")))
    assert sorted(float(r["alpha"]) for r in sweep) == [0.5, 1.0, 2.0]
    assert all(int(r["seeds"]) == 2 for r in sweep)


def test_broken_and_smoke_runs_are_named_not_dropped_silently(runs, tmp_path):
    result = run_mmx(["tables", str(runs), "--out", "out"], tmp_path)
    assert "skipping broken run" in result.stderr
    assert str(runs / "broken_summary") in result.stderr and str(runs / "broken_config") in result.stderr
    assert f"skipping smoke run {runs / 'smoke'}" in result.stderr


def test_plots_are_written_as_png(runs, tmp_path):
    result = run_mmx(["plot", str(runs), "--out", "figs"], tmp_path)
    assert result.returncode == 0, result.stderr
    figures = sorted(p.name for p in (tmp_path / "figs").iterdir())
    assert figures == [
        "runs_digits_preactresnet18_alpha.png",
        "runs_digits_preactresnet18_curves.png",
        "table1_cifar10_preactresnet18_curves.png",
    ]
    for name in figures:
        data = (tmp_path / "figs" / name).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 10_000


def test_no_runs_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    assert_one_sentence_error(run_mmx(["tables", "empty"], tmp_path), "no runs under empty")
    assert_one_sentence_error(run_mmx(["plot", "missing"], tmp_path), "missing does not exist")


def test_committed_digits_results_are_what_the_tables_command_regenerates(tmp_path):
    committed = REPO / "results" / "digits"
    result = run_mmx(["tables", str(committed / "runs"), "--out", "out"], tmp_path)
    assert result.returncode == 0, result.stderr
    for name in ("runs.csv", "runs.md"):
        assert (tmp_path / "out" / name).read_text() == (committed / name).read_text()
    summaries = list((committed / "runs").glob("*/summary.json"))
    assert len(summaries) == 15 and all(json.loads(p.read_text())["finished"] for p in summaries)
