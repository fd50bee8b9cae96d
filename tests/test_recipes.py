"""Every shipped paper recipe composes with the paper's settings and runs in smoke mode."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module

from conftest import assert_one_sentence_error, run_mmx
from fake_datasets import use_checksums, write_cifar, write_svhn, write_tiny_imagenet

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
import write_paper_recipes  # noqa: E402

RECIPES = sorted(f"paper/{p.parent.name}/{p.stem}" for p in (REPO / "configs/experiment/paper").rglob("*.yaml"))
EXPECTED_EPOCHS = {"table1": 1200, "table2": 1200, "table3": 2000, "table5": 2000, "table6": 2000}


def test_committed_recipes_are_what_the_generator_writes():
    expected = write_paper_recipes.expected_files()
    committed = {p: p.read_text() for p in (REPO / "configs/experiment/paper").rglob("*.yaml")}
    assert committed == expected
    assert len(RECIPES) == 18 + 9 + 9 + 20 + 12


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("paper_data")
    for variant in ("cifar10", "cifar100"):
        write_cifar(root, variant, per_batch=8, test=8)
    write_svhn(root, train=16, test=8)
    write_tiny_imagenet(root, classes=3, train_per_class=3, val_per_class=2)
    return root


def compose_recipe(recipe, *overrides):
    with initialize_config_module("mmx.configs", version_base="1.3"):
        return compose("train", overrides=[f"experiment={recipe}", *overrides])


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_has_the_papers_settings(recipe):
    cfg = compose_recipe(recipe)
    table = recipe.split("/")[1]
    assert cfg.experiment == recipe
    assert (cfg.batch_size, cfg.loss, cfg.optim.lr, cfg.optim.momentum, cfg.optim.nesterov, cfg.optim.weight_decay) == \
        (100, "bce", 0.1, 0.9, True, 1e-4)
    assert cfg.epochs == (400 if cfg.model.name == "wrn28_10" else EXPECTED_EPOCHS[table])
    assert list(cfg.schedule.milestones) == {400: [200, 300], 1200: [400, 800], 2000: [1000, 1500]}[cfg.epochs]
    if table in ("table1", "table2"):
        assert cfg.mixup.alpha == {"none": 0.0, "input": 1.0, "manifold": 2.0}[cfg.mixup.name]
    if cfg.mixup.name == "input":
        assert list(cfg.mixup.layers) == [0]
    if cfg.dataset.name == "tinyimagenet":
        assert cfg.model.stem_stride == 2
    assert cfg.dataset.crop_padding == {"svhn": 2}.get(cfg.dataset.name, 4)
    assert cfg.dataset.flip == (cfg.dataset.name != "svhn")


def test_public_code_length_is_offered_beside_the_paper_text():
    cfg = compose_recipe("paper/table1/cifar10_preactresnet18_manifold", "recipe=public_code")
    assert cfg.epochs == 2000 and list(cfg.schedule.milestones) == [500, 1000, 1500]


def test_every_recipe_runs_in_smoke_mode_on_generated_data(data_root, tmp_path, monkeypatch):
    from mmx.train import train

    monkeypatch.setenv("MMX_DATA", str(data_root))
    for variant in ("cifar10", "cifar100", "svhn"):
        use_checksums(monkeypatch, data_root, variant)
    for recipe in RECIPES:
        cfg = compose_recipe(recipe, "smoke=true", "batch_size=2", "trainer.eval_batch_size=2", "trainer.progress=false")
        run_dir = tmp_path / recipe.replace("/", "_")
        run_dir.mkdir()
        summary = train(cfg, run_dir)
        assert summary["finished"] and summary["smoke"] and summary["experiment"] == recipe, recipe
        assert (run_dir / "checkpoints" / "last.pt").is_file()
        shutil.rmtree(run_dir)  # full-size checkpoints: about 15 GB over all recipes if kept


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
    assert_one_sentence_error(run_mmx(["reproduce", "table9", "--dry-run"], tmp_path), "no paper table 'table9'", "table1")


REPRODUCE = """
import sys
sys.path.insert(0, {tests!r})
import pytest
from pathlib import Path
from fake_datasets import use_checksums
from mmx.cli import main
with pytest.MonkeyPatch.context() as patch:
    use_checksums(patch, Path({root!r}), "svhn")
    sys.exit(main(sys.argv[1:]))
"""


def test_reproduce_runs_a_whole_table_as_one_multirun(data_root, tmp_path):
    script = REPRODUCE.format(tests=str(Path(__file__).parent), root=str(data_root))
    args = ["reproduce", "table2", "seeds=2", "smoke=true", "batch_size=2", "trainer.eval_batch_size=2",
            "trainer.progress=false", "model=preactresnet18", "hydra.sweep.dir=sweep"]
    # model=preactresnet18 keeps the test quick: it replaces each cell's model, as any override would
    result = subprocess.run([sys.executable, "-c", script, *args], cwd=tmp_path, capture_output=True, text=True,
                            env={**os.environ, "MMX_DATA": str(data_root)}, timeout=600)
    assert result.returncode == 0, result.stderr
    summaries = [json.loads(p.read_text()) for p in (tmp_path / "sweep").glob("*/summary.json")]
    assert len(summaries) == 9 * 2
    assert {s["experiment"] for s in summaries} == {r for r in RECIPES if r.startswith("paper/table2/")}
    assert {s["seed"] for s in summaries} == {0, 1}
