"""mmx spiral and mmx spectrum: the paper's figures, at tiny sizes on the CPU."""

import json

import pytest
import torch

from mmx.figures.spectrum import class_spectra, summarise
from mmx.figures.spiral import spirals
from mmx.models import BottleneckMLP

from helpers import assert_one_sentence_error, run_mmx


@pytest.mark.slow
def test_spiral_figure_and_accuracies(tmp_path):
    result = run_mmx(
        ["spiral", "--points", "150", "--steps", "300", "--width", "32", "--out", "fig/spiral.png"], tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "fig" / "spiral.png").stat().st_size > 50_000
    report = json.loads((tmp_path / "fig" / "spiral.json").read_text())
    assert set(report["regimes"]) == {"none", "input", "manifold"}
    assert report["regimes"]["none"]["train_acc"] > 70  # 300 steps already separate most of the two arms


def test_spirals_are_two_balanced_interleaved_classes():
    points, labels = spirals(500, seed=0)
    assert points.shape == (1000, 2) and labels.bincount().tolist() == [500, 500]
    assert points.norm(dim=1).max() < 1.2  # inside the plotted square
    # the arms are half a turn apart: class means sit on opposite sides of the origin
    means = torch.stack([points[labels == c].mean(0) for c in (0, 1)])
    assert (means[0] * means[1]).sum() < 0


def test_the_papers_mlps_have_their_layer_counts_and_bottlenecks():
    spiral_net = BottleneckMLP(num_classes=2, in_features=2, width=16, bottleneck=2, before=4, after=3)
    assert sum(isinstance(m, torch.nn.Linear) for m in spiral_net.modules()) == 9
    mnist_net = BottleneckMLP(num_classes=10, in_channels=1, image_size=28, bottleneck=12)
    linears = [m for m in mnist_net.modules() if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linears] == [1024] * 3 + [12] + [1024] * 4 + [10]
    seen = {}
    mnist_net(torch.randn(2, 1, 28, 28), at_point=lambda k, h: seen.setdefault(k, h.shape) and h)
    assert seen[1] == (2, 12) and mnist_net.num_points == 2


def test_class_spectra_see_rank_one_classes_as_flat():
    generator = torch.Generator().manual_seed(0)
    direction = torch.randn(6, generator=generator)
    flat = torch.rand(50, 1, generator=generator) * direction  # class 0: points on one line
    spread = torch.randn(50, 6, generator=generator)  # class 1: all directions
    spectra = class_spectra(torch.cat([flat, spread]).double(), torch.tensor([0] * 50 + [1] * 50), 2)
    assert len(spectra[0]) == 6 and sum(spectra[0][1:]) < 1e-6 * spectra[0][0]  # float32 data: rounding only
    assert sum(spectra[1][1:]) > spectra[1][0]
    summary = summarise(spectra)
    assert summary["largest"] == pytest.approx((spectra[0][0] + spectra[1][0]) / 2)


@pytest.mark.slow
def test_spectrum_of_a_trained_bottleneck_mlp_run(tmp_path):
    train = run_mmx(
        [
            "train",
            "experiment=spectrum/digits_mlp_manifold",
            "model.width=32",
            "epochs=2",
            "schedule.milestones=[]",
            "trainer.progress=false",
            "hydra.run.dir=run",
        ],
        tmp_path,
    )
    assert train.returncode == 0, train.stderr
    result = run_mmx(["spectrum", "run", "--layer", "1", "--out", "fig"], tmp_path)
    assert result.returncode == 0, result.stderr
    entry = json.loads((tmp_path / "run" / "spectrum.json").read_text())
    assert entry["dimensions"] == 12 and len(entry["spectra"]) == 10
    assert all(len(s) == 12 and s == sorted(s, reverse=True) for s in entry["spectra"])
    assert entry["label"].startswith("manifold") and "[1]" in entry["label"]
    assert (tmp_path / "fig" / "spectrum.png").exists() and "rest / largest" in (
        tmp_path / "fig" / "spectrum.md"
    ).read_text()
    assert_one_sentence_error(run_mmx(["spectrum", "run", "--layer", "2"], tmp_path), "--layer 2 is not a mixing point")
