"""Every shipped paper recipe composes with the paper's settings and runs in smoke mode."""

import math
import sys

import pytest
import torch

from mmx.models.preact_resnet import stem_for

from fake_datasets import use_checksums, write_svhn
from helpers import REPO

sys.path.insert(0, str(REPO / "scripts"))
import write_paper_recipes  # noqa: E402

RECIPES = sorted(f"paper/{p.parent.name}/{p.stem}" for p in (REPO / "configs/experiment/paper").rglob("*.yaml"))
EXPECTED_EPOCHS = {"table1": 1200, "table2": 1200, "table3": 2000, "table5": 2000, "table6": 2000}


def test_committed_recipes_are_what_the_generator_writes():
    expected = write_paper_recipes.expected_files()
    committed = {p: p.read_text() for p in (REPO / "configs/experiment/paper").rglob("*.yaml")}
    assert committed == expected
    assert len(RECIPES) == 18 + 9 + 9 + 20 + 12


@pytest.fixture
def compose_recipe(compose):
    return lambda recipe, *overrides: compose(f"experiment={recipe}", *overrides)


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_has_the_papers_settings(recipe, compose_recipe):
    cfg = compose_recipe(recipe)
    table = recipe.split("/")[1]
    assert cfg.experiment == recipe
    assert (
        cfg.batch_size,
        cfg.loss.name,
        cfg.optim.lr,
        cfg.optim.momentum,
        cfg.optim.nesterov,
        cfg.optim.weight_decay,
    ) == (100, "bce", 0.1, 0.9, True, 1e-4)
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


@pytest.mark.parametrize(
    "recipe, epochs, milestones",
    [
        ("paper/table1/cifar10_preactresnet18_manifold", 2000, [500, 1000, 1500]),
        ("paper/table3/tinyimagenet_preactresnet18_none", 2000, [500, 1000, 1500]),
        ("paper/table2/svhn_wrn28_10_none", 400, [200, 300]),
        ("paper/table1/cifar100_wrn28_10_manifold", 400, [200, 300]),
    ],
)
def test_public_code_length(recipe, epochs, milestones, compose_recipe):
    cfg = compose_recipe(recipe, "recipe=public_code")
    assert cfg.epochs == epochs and list(cfg.schedule.milestones) == milestones


@pytest.fixture
def public_code(compose_recipe, paper_data, monkeypatch):
    """``public_code(recipe, *overrides)``: a public_code run's config and Trainer, built on the generated files."""
    from mmx.trainer import Trainer

    monkeypatch.setenv("MMX_DATA", str(paper_data))
    for variant in ("cifar10", "cifar100", "svhn"):
        use_checksums(monkeypatch, paper_data, variant)

    def build(recipe, *overrides):
        cfg = compose_recipe(recipe, "recipe=public_code", "trainer.progress=false", *overrides)
        return cfg, Trainer(cfg)

    return build


def test_public_code_pads_cifar_crops_by_2(public_code, paper_data):
    cfg, trainer = public_code(
        "paper/table1/cifar10_preactresnet18_none",
        "model.width=8",
        "batch_size=8",
    )
    assert cfg.dataset.crop_padding == 2 and trainer.batches.crop_padding == 2
    # a crop of the padded image moves no pixel by more than the padding
    image = torch.zeros(1, 1, 8, 8, dtype=torch.uint8)
    image[0, 0, 4, 4] = 255
    from mmx.data.augment import random_crop_flip

    crops = random_crop_flip(
        image.repeat(400, 1, 1, 1), trainer.batches.crop_padding, False, torch.Generator().manual_seed(0)
    )
    rows, cols = torch.nonzero(crops[:, 0] == 255, as_tuple=True)[1:]
    assert set((rows - 4).tolist()) == set((cols - 4).tolist()) == {-2, -1, 0, 1, 2}


def test_public_code_wrn_starts_from_pytorchs_default_init(compose_recipe):
    from mmx.parts import create_model

    def convs(init):
        cfg = compose_recipe(
            "paper/table1/cifar10_wrn28_10_none",
            "recipe=public_code",
            "model.depth=10",
            "model.widen_factor=1",
            f"model.init={init}",
        )
        torch.manual_seed(0)
        return [m for m in create_model(cfg.model, 10, 3, 32).modules() if isinstance(m, torch.nn.Conv2d)]

    assert compose_recipe("paper/table1/cifar10_wrn28_10_none", "recipe=public_code").model.init == "default"
    for conv in convs("default"):  # kaiming-uniform with a = sqrt(5): |w| and |b| <= 1 / sqrt(fan_in)
        bound = 1 / math.sqrt(conv.weight[0].numel())
        assert conv.weight.abs().max() <= bound and conv.bias.abs().max() <= bound and conv.bias.abs().sum() > 0
    assert all(conv.bias.abs().sum() == 0 for conv in convs("xavier"))  # the init the code never applies


def test_public_code_normalises_tiny_imagenet_with_mean_and_std_one_half(public_code, paper_data):
    cfg, trainer = public_code(
        "paper/table3/tinyimagenet_preactresnet18_none",
        "model.width=8",
        "batch_size=3",
    )
    pixels = trainer.normalizer(torch.tensor([0, 255], dtype=torch.uint8).view(2, 1, 1, 1).expand(2, 3, 1, 1))
    assert torch.equal(pixels.flatten(), torch.tensor([-1.0] * 3 + [1.0] * 3))


def test_public_code_caps_svhn_classes_and_keeps_the_smaller_ones_whole(public_code, paper_data, compose_recipe):
    assert (
        compose_recipe("paper/table2/svhn_preactresnet18_none", "recipe=public_code").dataset.labels_per_class == 7325
    )
    full = torch.bincount(
        torch.tensor(write_svhn(paper_data / "counts", train=16, test=8)["train_labels"]), minlength=10
    )
    cap = 2  # the generated split is tiny; the recipe's 7325 caps SVHN's real classes the same way
    cfg, trainer = public_code(
        "paper/table2/svhn_preactresnet18_none",
        "model.width=8",
        "batch_size=2",
        f"dataset.labels_per_class={cap}",
    )
    kept = torch.bincount(trainer.data.train_labels.cpu(), minlength=10)
    assert torch.equal(kept, full.clamp(max=cap)) and (full < cap).any() and (full > cap).any()


def test_training_accuracy_counts_the_original_labels():
    """A mixed batch whose larger share is the partner's: the prediction follows the partner, so it is wrong."""
    from omegaconf import OmegaConf

    from mmx.losses import soft_cross_entropy
    from mmx.mixing import Draw, MixContext
    from mmx.mixing.base import shipped_settings
    from mmx.models import StagedNetwork
    from mmx.parts import create_mixer
    from mmx.step import TrainStep

    network = StagedNetwork([torch.nn.Linear(4, 4)])
    with torch.no_grad():
        network.stages[0].weight.copy_(torch.eye(4) * 10)
        network.stages[0].bias.zero_()
    labels = torch.tensor([0, 1, 2, 3])

    def step(name: str):
        settings = OmegaConf.merge(shipped_settings(name), {"points": [0]})
        method = create_mixer(settings, MixContext(1, 4, 4, 1, torch.device("cpu"), seed=0))
        return TrainStep(
            network,
            torch.optim.SGD(network.parameters(), lr=0.0),
            torch.amp.GradScaler("cpu", enabled=False),
            soft_cross_entropy,
            4,
            torch.device("cpu"),
            "fp32",
            method=method,
        )

    lams, perms = torch.tensor([0.3]), torch.tensor([[1, 2, 3, 0]])  # 30% own image, 70% the next one's
    _, correct = step("manifold")(torch.eye(4), labels, Draw((0,), {"lams": lams, "perms": perms}))
    assert int(correct) == 0  # against the mixed target's arg-max it would count all 4
    _, correct = step("none")(torch.eye(4), labels, Draw(None, {}))
    assert int(correct) == 4


def test_public_code_trains_in_ieee_fp32(public_code, compose_recipe):
    cfg, trainer = public_code(
        "paper/table1/cifar10_preactresnet18_none",
        "model.width=8",
        "batch_size=8",
    )
    assert (cfg.trainer.precision, cfg.trainer.tf32, trainer.precision) == ("fp32", False, "fp32")
    assert (torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision) == ("ieee", "ieee")
    paper = compose_recipe("paper/table1/cifar10_preactresnet18_none")
    assert (paper.trainer.precision, paper.trainer.tf32) == (
        "fp32",
        "auto",
    )  # fp32 too; TF32 convs as PyTorch's default


# The mixing family's CIFAR recipes with PreActResNet18 (docs/paper.md, "The mixing family"): method, alpha, epochs,
# batch size, lr, weight decay, lr milestones, and the method's own settings.
FAMILY = {
    "cutmix": (1.0, 300, 64, 0.25, 1e-4, [150, 225], {"probability": 0.5}),
    "manifold_cutmix": (1.0, 300, 64, 0.25, 1e-4, [150, 225], {"probability": 0.5, "points": [0, 1, 2]}),
    "nfm": (1.0, 200, 128, 0.1, 5e-4, [100, 150, 180], {"add_noise": 0.4, "mult_noise": 0.2, "points": [0, 1, 2, 3]}),
    "regmixup": (None, 350, 128, 0.1, 5e-4, [150, 250], {"eta": 1.0}),
}


@pytest.mark.parametrize("dataset", ["cifar10", "cifar100"])
@pytest.mark.parametrize("method", FAMILY)
def test_family_recipe_has_its_sources_settings(method, dataset, compose_recipe):
    alpha, epochs, batch, lr, decay, milestones, own = FAMILY[method]
    cfg = compose_recipe(f"family/{dataset}_{method}")
    assert (cfg.dataset.name, cfg.model.name, cfg.mixup.name) == (dataset, "preactresnet18", method)
    assert cfg.mixup.alpha == (alpha or {"cifar10": 20.0, "cifar100": 10.0}[dataset])  # RegMixup's per dataset
    assert (cfg.epochs, cfg.batch_size, cfg.optim.lr, cfg.optim.weight_decay) == (epochs, batch, lr, decay)
    assert list(cfg.schedule.milestones) == milestones and cfg.schedule.gamma == 0.1
    assert {key: cfg.mixup[key] for key in own} == own
    assert cfg.optim.nesterov == (method != "nfm")  # NFM's code uses plain momentum
