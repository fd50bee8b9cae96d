"""Every paper recipe runs in smoke mode on generated data, and mmx reproduce runs whole tables."""

import json
import shutil

import pytest

from mmx.config import compose_train, group_options

from fake_datasets import use_checksums
from helpers import assert_one_sentence_error, run_mmx, run_mmx_on_generated

pytestmark = pytest.mark.slow  # trains or builds through the command line

RECIPES = [name for name in group_options("experiment") if name.startswith("paper/")]
# The full-width networks are checked against the paper's in tests/test_models.py; here each recipe runs at the
# smallest width a CPU runs safely (oneDNN needs 8 channels), which takes a tenth of the time and no 15 GB of
# checkpoints.
NARROWEST = {"mmx.models.PreActResNet": ("width", 8), "mmx.models.WideResNet": ("widen_factor", 1)}


def test_every_recipe_runs_in_smoke_mode_on_generated_data(paper_data, tmp_path, monkeypatch):
    from mmx.train import train

    monkeypatch.setenv("MMX_DATA", str(paper_data))
    for variant in ("cifar10", "cifar100", "svhn"):
        use_checksums(monkeypatch, paper_data, variant)
    for recipe in RECIPES:
        cfg = compose_train(
            [f"experiment={recipe}", "smoke=on", "batch_size=2", "trainer.eval_batch_size=2", "trainer.progress=false"]
        )
        key, value = NARROWEST[cfg.model._target_]  # every other setting as the recipe has it
        cfg.model[key] = value
        run_dir = tmp_path / recipe.replace("/", "_")
        run_dir.mkdir()
        summary = train(cfg, run_dir)
        assert summary["finished"] and summary["smoke"] and summary["experiment"] == recipe, recipe
        assert (run_dir / "checkpoints" / "last.pt").is_file()
        shutil.rmtree(run_dir)


def test_reproduce_dry_run_prints_the_estimate_and_the_multirun(tmp_path):
    result = run_mmx(["reproduce", "table6", "seeds=3", "--dry-run"], tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert sum(line.startswith("paper/table6/") for line in lines) == 12
    assert "total for 12 recipes x 3 seeds" in result.stdout and "GPU-hours" in result.stdout
    command = lines[-1]
    assert command.startswith("mmx train -m experiment=paper/table6/") and "seed=0,1,2" in command
    assert not (tmp_path / "runs").exists()


def test_reproduce_rejects_an_unknown_table(tmp_path):
    assert_one_sentence_error(
        run_mmx(["reproduce", "table9", "--dry-run"], tmp_path), "no paper table 'table9'", "table1"
    )


def test_reproduce_runs_a_whole_table_as_one_multirun(paper_data, tmp_path):
    args = [
        "reproduce",
        "table2",
        "seeds=2",
        "smoke=on",
        "batch_size=2",
        "trainer.eval_batch_size=2",
        "trainer.progress=false",
        "model=preactresnet18",
        "hydra.sweep.dir=sweep",
    ]
    # model=preactresnet18 keeps the test quick: it replaces each cell's model, as any override would
    result = run_mmx_on_generated(args, tmp_path, paper_data, "svhn", timeout=600)
    assert result.returncode == 0, result.stderr
    summaries = [json.loads(p.read_text()) for p in (tmp_path / "sweep").glob("*/summary.json")]
    assert len(summaries) == 9 * 2
    assert {s["experiment"] for s in summaries} == {r for r in RECIPES if r.startswith("paper/table2/")}
    assert {s["seed"] for s in summaries} == {0, 1}
