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
    settings=None,
    precision="bf16",
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
    merged = OmegaConf.merge(
        OmegaConf.create(config), OmegaConf.from_dotlist([f"{k}={v}" for k, v in (settings or {}).items()])
    )
    OmegaConf.save(merged, folder / "config.yaml")
    with open(folder / "metrics.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["epoch", "test_error", "test_nll"])
        for epoch in range(1, done + 1):
            writer.writerow([epoch, final_error + 10.0 / epoch, nll + 1.0 / epoch])

    def block(error):
        return {"acc": 100 - error, "error": error, "top5": 99.0, "nll": nll, "ece": 0.02, "epoch": done}

    summary = {
        "finished": done == epochs,
        "epochs_done": done,
        "final": block(final_error),
        "best": block(best_error),
        "precision": precision,
    }
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
    assert int(manifold["seeds"]) == 3 and int(manifold["unfinished"]) == 1  # m_unfinished (seed 3)
    assert float(manifold["best_error_mean"]) == pytest.approx(3.0)
    assert float(manifold["best_error_std"]) == pytest.approx(0.1)
    # the paper: 2.95 +- 0.046 on CIFAR-10 / PreActResNet18 / manifold mixup
    assert float(manifold["paper_test_error"]) == pytest.approx(2.95)
    assert float(manifold["delta_test_error_sigma"]) == pytest.approx((3.0 - 2.95) / 0.046, rel=1e-3)
    markdown = (out / "table1.md").read_text()
    assert "3.00 ± 0.10" in markdown and "2.95 ± 0.05" in markdown and "+1.1σ" in markdown
    # first_epoch_killed is a second run of seed 0: reported, not counted as another seed
    assert "1 unfinished (epochs done: 2 of 4); 1 repeated run(s) of seed 0 left out" in markdown
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


@pytest.mark.parametrize("study, runs", [("digits", 15), ("lowlabel", 60), ("multilayer", 60), ("rnn", 20)])
def test_committed_results_are_what_the_tables_command_regenerates(tmp_path, study, runs):
    committed = REPO / "results" / study
    result = run_mmx(["tables", str(committed / "runs"), "--out", "out"], tmp_path)
    assert result.returncode == 0, result.stderr
    for name in ("runs.csv", "runs.md"):
        assert (tmp_path / "out" / name).read_text() == (committed / name).read_text()
    summaries = list((committed / "runs").rglob("summary.json"))
    assert len(summaries) == runs and all(json.loads(p.read_text())["finished"] for p in summaries)


def table_rows(root, tmp_path):
    result = run_mmx(["tables", str(root), "--out", "out"], tmp_path)
    assert result.returncode == 0, result.stderr
    return list(csv.DictReader(open(tmp_path / "out" / "runs.csv"))), (tmp_path / "out" / "runs.md").read_text()


def test_runs_that_differ_in_any_result_setting_are_separate_cells(tmp_path):
    """An lr sweep, and runs differing only in width, batch size, schedule, milestones, steps per epoch or
    precision: never merged into one cell; the differing settings become columns."""
    root = tmp_path / "runs"
    changes = {
        "lr": {"optim.lr": 0.1},
        "lr_small": {"optim.lr": 0.01},
        "width": {"model.width": 16},
        "batch": {"batch_size": 50},
        "cosine": {"schedule.name": "cosine"},
        "milestones": {"schedule.milestones": "[10,20]"},
        "steps": {"trainer.max_steps_per_epoch": 5},
    }
    for name, settings in changes.items():
        for seed in (0, 1):
            make_run(root / f"{name}_{seed}", dataset="digits", seed=seed, settings={"optim.lr": 0.1, **settings})
    make_run(root / "fp32_0", dataset="digits", seed=0, settings={"optim.lr": 0.1}, precision="fp32")
    rows, markdown = table_rows(root, tmp_path)
    assert len(rows) == len(changes) + 1  # seven bf16 cells and the fp32 one
    assert sorted(r["lr"] for r in rows).count("0.01") == 1
    for column in (
        "lr",
        "model.width",
        "batch_size",
        "schedule.name",
        "schedule.milestones",
        "trainer.max_steps_per_epoch",
        "precision",
    ):
        assert column in rows[0], column  # each differing setting is a column of the CSV
        assert f" {column} |" in markdown.splitlines()[2]  # and of the Markdown table
    assert all(int(r["seeds"]) == 2 for r in rows if r["precision"] == "bf16")


def test_copies_of_one_seed_count_once_and_are_reported(tmp_path):
    root = tmp_path / "runs"
    for copy in range(3):
        make_run(root / f"copy{copy}", dataset="digits", seed=0, best_error=3.0 + copy)
    rows, markdown = table_rows(root, tmp_path)
    assert len(rows) == 1 and int(rows[0]["seeds"]) == 1
    assert float(rows[0]["best_error_mean"]) == pytest.approx(3.0)  # the first run of seed 0, not a mean of copies
    assert "2 repeated run(s) of seed 0 left out" in markdown and "± 0.00" not in markdown


def test_plot_skips_a_damaged_run_naming_it(tmp_path):
    root = tmp_path / "runs"
    for seed in (0, 1):
        make_run(root / f"r{seed}", dataset="digits", seed=seed)
    (root / "r1" / "metrics.csv").write_text("epoch,test_error\n1,not-a-number\n")
    result = run_mmx(["plot", str(root), "--out", "figs"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"leaving {root / 'r1'} out of the figure" in result.stderr and "metrics.csv is damaged" in result.stderr
    assert (tmp_path / "figs" / "runs_digits_preactresnet18_curves.png").stat().st_size > 1000


def test_plot_against_a_swept_setting_with_a_setting_that_follows_it(tmp_path):
    """A low-label sweep: labels_per_class 5 and 10, epochs scaled with it (400 and 200), two regimes, two seeds.
    Epochs follows the swept setting, so each regime is one line of two points, not four lines of one."""
    root = tmp_path / "runs"
    for labels, epochs in ((5, 400), (10, 200)):
        for regime in ("none", "manifold"):
            for seed in (0, 1):
                make_run(
                    root / f"{regime}_{labels}_{seed}",
                    dataset="digits",
                    regime=regime,
                    seed=seed,
                    epochs=epochs,
                    done=epochs,
                    final_error=labels + seed + (0 if regime == "none" else -2),
                    settings={"dataset.labels_per_class": labels},
                )
    result = run_mmx(["plot", str(root), "--out", "figs", "--against", "dataset.labels_per_class"], tmp_path)
    assert result.returncode == 0, result.stderr
    stem = tmp_path / "figs" / "runs_digits_preactresnet18_against_dataset.labels_per_class"
    assert Path(f"{stem}.png").stat().st_size > 10_000
    points = list(csv.DictReader(open(f"{stem}.csv")))
    assert sorted((p["line"].split(" ")[0], p["dataset.labels_per_class"], p["epochs"]) for p in points) == [
        ("manifold", "10", "200"),
        ("manifold", "5", "400"),
        ("no", "10", "200"),
        ("no", "5", "400"),
    ]
    by_cell = {(p["line"].split(" ")[0], p["dataset.labels_per_class"]): p for p in points}
    assert float(by_cell[("manifold", "5")]["final_error_mean"]) == pytest.approx(3.5)  # (3 + 4) / 2
    assert float(by_cell[("no", "10")]["final_error_std"]) == pytest.approx(0.5**0.5)
    assert all(p["seeds"] == "2" for p in points)

    rows, _ = table_rows(root, tmp_path)
    assert [(r["regime"], r["dataset.labels_per_class"]) for r in rows] == [
        ("none", "5"),
        ("none", "10"),
        ("manifold", "5"),
        ("manifold", "10"),
    ]  # regimes in order, then numbers by value, not as text

    wrong = run_mmx(["plot", str(root), "--out", "figs", "--against", "labels"], tmp_path)
    assert_one_sentence_error(wrong, "--against labels is not a setting of these runs", "dataset.labels_per_class")
