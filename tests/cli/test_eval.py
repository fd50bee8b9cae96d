"""mmx eval: calibration, attacks, deformations and OOD detection, checked by sanity properties and by hand."""

import json
import math
import shutil

import pytest
import torch
import torchvision.transforms.functional as TF
from torchvision.transforms import InterpolationMode

from mmx.evaluation import attacks, calibration, deformations, ood
from mmx.metrics import brier, expected_calibration_error

from helpers import assert_one_sentence_error, mmx_in_process, run_mmx

pytestmark = pytest.mark.slow  # trains or builds through the command line


@pytest.fixture(scope="module")
def evaluated(digits_run, tmp_path_factory):
    """A copy of the shared digits run, evaluated once through the CLI."""
    run = tmp_path_factory.mktemp("eval") / "run"
    shutil.copytree(digits_run, run)
    result = run_mmx(["eval", f"run={run}", "fgsm.epsilons=[0,0.03]", "pgd.steps=3", "excess.points=[0,1]"], run.parent)
    assert result.returncode == 0, result.stderr
    return run, json.loads((run / "eval.json").read_text()), result.stdout


def test_clean_numbers_match_the_training_evaluation_of_the_same_checkpoint(evaluated):
    run, result, stdout = evaluated
    best = json.loads((run / "summary.json").read_text())["best"]
    assert result["checkpoint"] == "best" and result["epoch"] == best["epoch"] and result["images"] == 360
    clean = result["clean"]
    assert clean["acc"] == pytest.approx(best["acc"], abs=100 / 360 + 1e-9)
    assert clean["nll"] == pytest.approx(best["nll"], rel=1e-3) and clean["ece"] == pytest.approx(best["ece"], abs=1e-3)
    assert 0 <= clean["brier"] <= 2
    assert sum(b["count"] for b in result["reliability"]) == 360 and len(result["reliability"]) == 15
    assert (run / "reliability.png").stat().st_size > 10_000
    assert "clean: acc" in stdout and "eval.json" in stdout


def test_attacks_at_epsilon_zero_keep_the_clean_accuracy_and_larger_ones_do_not_help(evaluated):
    _, result, _ = evaluated
    assert result["fgsm"]["0"] == result["clean"]["acc"]
    assert result["fgsm"]["0.03"] <= result["clean"]["acc"]
    assert result["pgd"]["steps"] == 3 and result["pgd"]["acc"]["0"] == result["clean"]["acc"]
    assert result["pgd"]["acc"]["0.03"] <= result["clean"]["acc"]


def test_every_deformation_and_ood_score_is_reported(evaluated):
    _, result, _ = evaluated
    assert set(result["deformations"]) == set(deformations.DEFORMATIONS) and len(result["deformations"]) == 17
    assert all(0 <= acc <= 100 for acc in result["deformations"].values())
    assert result["ood"]["set"] == "noise" and result["ood"]["images"] == 360
    for score in ("msp", "energy"):
        assert 0 <= result["ood"][score]["auroc"] <= 1 and 0 <= result["ood"][score]["fpr95"] <= 1


def test_random_parts_draw_the_same_whatever_else_is_evaluated(evaluated, tmp_path):
    run, first, _ = evaluated
    again = tmp_path / "run"
    shutil.copytree(run, again)
    result = run_mmx(["eval", f"run={again}", "fgsm.epsilons=[0.1]"], tmp_path)  # no PGD, other epsilons
    assert result.returncode == 0, result.stderr
    second = json.loads((again / "eval.json").read_text())
    assert second["pgd"] is None and second["deformations"] == first["deformations"]
    assert second["ood"] == first["ood"] and second["clean"] == first["clean"]
    assert second["excess"] is None


def test_the_excess_mixup_loss_is_scored_on_both_splits_at_each_point_asked(evaluated):
    _, result, stdout = evaluated
    assert result["excess"]["alpha"] == 2.0 and set(result["excess"]["points"]) == {"0", "1"}
    for point in ("0", "1"):
        for split in ("train", "test"):
            values = result["excess"]["points"][point][split]
            assert values["excess"] > 0 and 0 < values["target_entropy"] < 0.7  # at most log 2 per mixture
            assert values["cross_entropy"] == pytest.approx(values["excess"] + values["target_entropy"])
    assert "excess mixup loss at point 1: train" in stdout


def test_tables_pick_up_eval_json(evaluated, tmp_path):
    run, result, _ = evaluated
    out = tmp_path / "tables"
    assert run_mmx(["tables", str(run.parent), "--out", str(out)], tmp_path).returncode == 0
    for kind in ("calibration", "fgsm", "deformations", "ood"):
        assert (out / f"eval_{kind}.md").exists() and (out / f"eval_{kind}.csv").exists()
    assert f"{result['clean']['brier']:.4f}" in (out / "eval_calibration.md").read_text()
    assert "FGSM ε=0.03 acc %" in (out / "eval_fgsm.md").read_text()
    assert f"{result['ood']['msp']['auroc']:.4f}" in (out / "eval_ood.md").read_text()


@pytest.mark.parametrize(
    "angle, shear, scale",
    [
        (17.0, 0.0, 1.0),
        (-35.0, 0.0, 1.0),
        (0.0, 28.6, 1.0),
        (0.0, -57.3, 1.0),
        (0.0, 0.0, 1 / 0.6),
        (0.0, 0.0, 1 / 1.4),
    ],
)
def test_batched_deformations_equal_torchvision_affine_image_by_image(angle, shear, scale):
    images = torch.rand(3, 3, 16, 20)
    n = len(images)
    matrices = deformations.inverse_affine(torch.full((n,), angle), torch.full((n,), shear), torch.full((n,), scale))
    ours = deformations.warp(images, matrices)
    for image, mine in zip(images, ours):
        theirs = TF.affine(
            image,
            angle=angle,
            translate=[0, 0],
            scale=scale,
            shear=[shear, 0.0],
            interpolation=InterpolationMode.BILINEAR,
        )
        torch.testing.assert_close(mine, theirs, atol=1e-5, rtol=1e-5)


def test_identity_changes_nothing_and_draws_are_per_image():
    images = torch.rand(4, 1, 8, 8)
    torch.testing.assert_close(deformations.deform(images, "identity"), images, atol=1e-6, rtol=0)
    same = images[:1].expand(64, -1, -1, -1)
    rotated = deformations.deform(same, "rotation40", torch.Generator().manual_seed(0))
    assert len({round(float(r.sum()), 4) for r in rotated}) > 32  # each copy got its own angle
    with pytest.raises(ValueError, match="unknown deformation"):
        deformations.deform(images, "twirl")


def test_fgsm_moves_every_pixel_by_epsilon_up_the_loss_and_pgd_stays_in_the_ball():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    x, y = torch.rand(8, 1, 4, 4) * 0.8 + 0.1, torch.randint(3, (8,))
    adversarial = attacks.fgsm(model, x, y, 0.05)
    torch.testing.assert_close((adversarial - x).abs(), torch.full_like(x, 0.05))
    loss = torch.nn.functional.cross_entropy
    assert loss(model(adversarial), y) > loss(model(x), y)
    moved = attacks.pgd(model, x, y, 0.05, steps=5, step_size=0.02, generator=torch.Generator().manual_seed(0))
    assert (moved - x).abs().max() <= 0.05 + 1e-7 and moved.min() >= 0 and moved.max() <= 1
    assert loss(model(moved), y) >= loss(model(adversarial), y) - 1e-4


def test_ood_metrics_for_separable_reversed_and_identical_scores():
    inside, outside = torch.linspace(1, 2, 100), torch.linspace(-2, -1, 50)
    assert ood.detection_metrics(inside, outside) == {"auroc": 1.0, "fpr95": 0.0}
    assert ood.detection_metrics(outside, inside) == {"auroc": 0.0, "fpr95": 1.0}
    same = torch.rand(2000, generator=torch.Generator().manual_seed(0))
    assert ood.detection_metrics(same[:1000], same[1000:])["auroc"] == pytest.approx(0.5, abs=0.05)
    logits = torch.tensor([[2.0, 0.0], [0.0, 0.0]])
    assert ood.SCORES["msp"](logits)[1] == 0.5 and ood.SCORES["energy"](logits)[1] == pytest.approx(math.log(2))


def test_brier_and_reliability_bins_by_hand():
    probs = torch.tensor([[0.9, 0.1], [0.65, 0.35], [0.3, 0.7], [0.55, 0.45]])
    labels = torch.tensor([0, 1, 1, 0])
    expected = ((0.1**2 + 0.1**2) + (0.65**2 + 0.65**2) + (0.3**2 + 0.3**2) + (0.45**2 + 0.45**2)) / 4
    assert float(brier(probs.log(), labels)) == pytest.approx(expected)  # the softmax of log-probabilities
    bins = calibration.reliability_bins(probs, labels, bins=5)
    # confidences 0.9, 0.65, 0.7, 0.55: right, wrong, right, right; bins (0.4, 0.6], (0.6, 0.8], (0.8, 1]
    assert [b["count"] for b in bins] == [0, 0, 1, 2, 1]
    assert (bins[2]["accuracy"], bins[3]["accuracy"], bins[4]["accuracy"]) == (1.0, 0.5, 1.0)
    assert bins[3]["confidence"] == pytest.approx(0.675) and bins[0]["confidence"] is None
    ece = sum(b["count"] / 4 * abs(b["accuracy"] - b["confidence"]) for b in bins if b["count"])
    assert ece == pytest.approx(float(expected_calibration_error(probs, labels, bins=5)))


EVAL_MISTAKES = [
    ("checkpoint=middle", "checkpoint=middle"),
    ("ood.set=synthetic", "ood.set=synthetic has images of shape (3, 32, 32)"),
    ("ood.set=mnist", "ood.set=mnist is neither"),
    ("fgsm.eps=1", "mmx eval --help"),
    ("excess.points=[4]", "excess.points holds 4, which is not a mixing point of preactresnet18 (0..3)"),
    ("excess.points=[1] excess.alpha=0", "excess.alpha must be > 0 and excess.draws at least 1"),
    ("fgsm.epsilons=[0.1,inf]", "fgsm.epsilons=[0.1, inf] is not allowed: it must be a finite number"),
    ("pgd.steps=5 pgd.step_size=nan", "pgd.step_size=nan is not allowed: it must be a finite number"),
]


def test_mistakes_are_one_sentence_errors(evaluated, tmp_path):
    """Through mmx's entry point in this process (seconds); the installed command's path is the first case."""
    run = evaluated[0]
    assert_one_sentence_error(run_mmx(["eval"], tmp_path), "no run given; pass run=RUN_DIR")
    assert_one_sentence_error(mmx_in_process(["eval", f"run={tmp_path}"], tmp_path), "is not an mmx run directory")
    for argument, fragment in EVAL_MISTAKES:
        assert_one_sentence_error(mmx_in_process(["eval", f"run={run}", *argument.split()], tmp_path), fragment)
    help_text = mmx_in_process(["eval", "--help"], tmp_path)
    assert help_text.returncode == 0 and "epsilons" in help_text.stdout and "excess" in help_text.stdout


def test_sweep_directories_whose_names_hold_equals_and_commas_can_be_evaluated_and_resumed(digits_run, tmp_path):
    run = tmp_path / "sweep" / "0_mixup=none,seed=0"
    shutil.copytree(digits_run, run)
    result = run_mmx(["eval", f"run={run}", "deformations=false", "fgsm.epsilons=[]"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads((run / "eval.json").read_text())["fgsm"] == {}
    resumed = run_mmx(["train", f"resume={run}"], tmp_path)
    assert resumed.returncode == 0 and "already finished" in resumed.stdout + resumed.stderr, resumed.stderr
