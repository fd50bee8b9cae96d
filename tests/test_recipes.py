"""Every shipped paper recipe composes with the paper's settings and runs in smoke mode."""
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mmx.config import compose_train
from mmx.models.preact_resnet import stem_for

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
    return compose_train([f"experiment={recipe}", *overrides])


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_has_the_papers_settings(recipe):
    cfg = compose_recipe(recipe)
    table = recipe.split("/")[1]
    assert cfg.experiment == recipe
    assert (cfg.batch_size, cfg.loss.name, cfg.optim.lr, cfg.optim.momentum, cfg.optim.nesterov, cfg.optim.weight_decay) == \
        (100, "bce", 0.1, 0.9, True, 1e-4)
    assert cfg.epochs == (400 if cfg.model.name == "wrn28_10" else EXPECTED_EPOCHS[table])
    assert list(cfg.schedule.milestones) == {400: [200, 300], 1200: [400, 800], 2000: [1000, 1500]}[cfg.epochs]
    if table in ("table1", "table2"):
        assert cfg.mixup.alpha == {"none": 0.0, "input": 1.0, "manifold": 2.0}[cfg.mixup.name]
    if cfg.mixup.name == "input":
        assert list(cfg.mixup.points) == [0]
    if cfg.dataset.name == "tinyimagenet":
        assert stem_for(cfg.dataset.image_size, cfg.model.stem, cfg.model.stem_stride) == ("cifar", 2)
        assert list(cfg.dataset.mean) == list(cfg.dataset.std) == [0.5, 0.5, 0.5]  # the public code's
    assert cfg.dataset.crop_padding == {"tinyimagenet": 4}.get(cfg.dataset.name, 2)  # CIFAR: the code's 2
    assert cfg.dataset.flip == (cfg.dataset.name != "svhn")
    assert cfg.trainer.precision == "fp32" and cfg.trainer.tf32 == "auto"
    assert cfg.dataset.labels_per_class is None  # the text: SVHN's whole train split
    if cfg.model.name.startswith("wrn"):
        assert cfg.model.init == "default"


# --- recipe=public_code differs from the public code in nothing docs/paper.md lists (one test per item) ---

@pytest.mark.parametrize("recipe, epochs, milestones", [
    ("paper/table1/cifar10_preactresnet18_manifold", 2000, [500, 1000, 1500]),
    ("paper/table3/tinyimagenet_preactresnet18_none", 2000, [500, 1000, 1500]),
    ("paper/table2/svhn_wrn28_10_none", 400, [200, 300]),
    ("paper/table1/cifar100_wrn28_10_manifold", 400, [200, 300]),
])
def test_public_code_length(recipe, epochs, milestones):
    cfg = compose_recipe(recipe, "recipe=public_code")
    assert cfg.epochs == epochs and list(cfg.schedule.milestones) == milestones


def public_code_setup(data_root, monkeypatch, recipe, *overrides):
    """The parts a public_code run trains with, built on the generated files."""
    from mmx.trainer import Trainer

    monkeypatch.setenv("MMX_DATA", str(data_root))
    for variant in ("cifar10", "cifar100", "svhn"):
        use_checksums(monkeypatch, data_root, variant)
    cfg = compose_recipe(recipe, "recipe=public_code", "trainer.progress=false", *overrides)
    return cfg, Trainer(cfg)


def test_public_code_pads_cifar_crops_by_2(data_root, monkeypatch):
    cfg, s = public_code_setup(data_root, monkeypatch, "paper/table1/cifar10_preactresnet18_none", "model.width=8",
                               "batch_size=8")
    assert cfg.dataset.crop_padding == 2 and s.batches.crop_padding == 2
    # a crop of the padded image moves no pixel by more than the padding
    image = torch.zeros(1, 1, 8, 8, dtype=torch.uint8)
    image[0, 0, 4, 4] = 255
    from mmx.data.augment import random_crop_flip

    crops = random_crop_flip(image.repeat(400, 1, 1, 1), s.batches.crop_padding, False, torch.Generator().manual_seed(0))
    rows, cols = torch.nonzero(crops[:, 0] == 255, as_tuple=True)[1:]
    assert set((rows - 4).tolist()) == set((cols - 4).tolist()) == {-2, -1, 0, 1, 2}


def test_public_code_wrn_starts_from_pytorchs_default_init():
    from mmx.parts import create_model

    def convs(init):
        cfg = compose_recipe("paper/table1/cifar10_wrn28_10_none", "recipe=public_code", "model.depth=10",
                             "model.widen_factor=1", f"model.init={init}")
        torch.manual_seed(0)
        return [m for m in create_model(cfg.model, 10, 3, 32).modules() if isinstance(m, torch.nn.Conv2d)]

    assert compose_recipe("paper/table1/cifar10_wrn28_10_none", "recipe=public_code").model.init == "default"
    for conv in convs("default"):  # kaiming-uniform with a = sqrt(5): |w| and |b| <= 1 / sqrt(fan_in)
        bound = 1 / math.sqrt(conv.weight[0].numel())
        assert conv.weight.abs().max() <= bound and conv.bias.abs().max() <= bound and conv.bias.abs().sum() > 0
    assert all(conv.bias.abs().sum() == 0 for conv in convs("xavier"))  # the init the code never applies


def test_public_code_normalises_tiny_imagenet_with_mean_and_std_one_half(data_root, monkeypatch):
    cfg, s = public_code_setup(data_root, monkeypatch, "paper/table3/tinyimagenet_preactresnet18_none",
                               "model.width=8", "batch_size=3")
    pixels = s.normalizer(torch.tensor([0, 255], dtype=torch.uint8).view(2, 1, 1, 1).expand(2, 3, 1, 1))
    assert torch.equal(pixels.flatten(), torch.tensor([-1.0] * 3 + [1.0] * 3))


def test_public_code_caps_svhn_classes_and_keeps_the_smaller_ones_whole(data_root, monkeypatch):
    assert compose_recipe("paper/table2/svhn_preactresnet18_none", "recipe=public_code").dataset.labels_per_class == 7325
    full = torch.bincount(torch.tensor(write_svhn(data_root / "counts", train=16, test=8)["train_labels"]), minlength=10)
    cap = 2  # the generated split is tiny; the recipe's 7325 caps SVHN's real classes the same way
    cfg, s = public_code_setup(data_root, monkeypatch, "paper/table2/svhn_preactresnet18_none", "model.width=8",
                               "batch_size=2", f"dataset.labels_per_class={cap}")
    kept = torch.bincount(s.data.train_labels.cpu(), minlength=10)
    assert torch.equal(kept, full.clamp(max=cap)) and (full < cap).any() and (full > cap).any()


def test_training_accuracy_counts_the_original_labels():
    """A mixed batch whose larger share is the partner's: the prediction follows the partner, so it is wrong."""
    from mmx.losses import soft_cross_entropy
    from mmx.mixing import MixDraw
    from mmx.models import StagedNetwork
    from mmx.step import TrainStep

    network = StagedNetwork([torch.nn.Linear(4, 4)])
    with torch.no_grad():
        network.stages[0].weight.copy_(torch.eye(4) * 10)
        network.stages[0].bias.zero_()
    labels = torch.tensor([0, 1, 2, 3])
    step = TrainStep(network, torch.optim.SGD(network.parameters(), lr=0.0), torch.amp.GradScaler("cpu", enabled=False),
                     soft_cross_entropy, 4, torch.device("cpu"), "fp32")
    draw = MixDraw(0, torch.tensor(0.3), torch.tensor([1, 2, 3, 0]))  # 30% own image, 70% the next one's
    _, correct = step(torch.eye(4), labels, draw)
    assert int(correct) == 0  # against the mixed target's arg-max it would count all 4
    _, correct = step(torch.eye(4), labels, None)
    assert int(correct) == 4


def test_public_code_trains_in_ieee_fp32(data_root, monkeypatch):
    cfg, s = public_code_setup(data_root, monkeypatch, "paper/table1/cifar10_preactresnet18_none", "model.width=8",
                               "batch_size=8")
    assert (cfg.trainer.precision, cfg.trainer.tf32, s.precision) == ("fp32", False, "fp32")
    assert (torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision) == ("ieee", "ieee")
    paper = compose_recipe("paper/table1/cifar10_preactresnet18_none")
    assert (paper.trainer.precision, paper.trainer.tf32) == ("fp32", "auto")  # fp32 too; TF32 convs as PyTorch's default


def test_every_recipe_runs_in_smoke_mode_on_generated_data(data_root, tmp_path, monkeypatch):
    from mmx.train import train

    monkeypatch.setenv("MMX_DATA", str(data_root))
    for variant in ("cifar10", "cifar100", "svhn"):
        use_checksums(monkeypatch, data_root, variant)
    for recipe in RECIPES:
        cfg = compose_recipe(recipe, "smoke=on", "batch_size=2", "trainer.eval_batch_size=2", "trainer.progress=false")
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
    args = ["reproduce", "table2", "seeds=2", "smoke=on", "batch_size=2", "trainer.eval_batch_size=2",
            "trainer.progress=false", "model=preactresnet18", "hydra.sweep.dir=sweep"]
    # model=preactresnet18 keeps the test quick: it replaces each cell's model, as any override would
    result = subprocess.run([sys.executable, "-c", script, *args], cwd=tmp_path, capture_output=True, text=True,
                            env={**os.environ, "MMX_DATA": str(data_root)}, timeout=600)
    assert result.returncode == 0, result.stderr
    summaries = [json.loads(p.read_text()) for p in (tmp_path / "sweep").glob("*/summary.json")]
    assert len(summaries) == 9 * 2
    assert {s["experiment"] for s in summaries} == {r for r in RECIPES if r.startswith("paper/table2/")}
    assert {s["seed"] for s in summaries} == {0, 1}
