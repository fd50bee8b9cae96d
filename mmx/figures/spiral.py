"""``mmx spiral``: the paper's Figure 1, regenerated.

Two interleaved spirals in the plane, a fully connected network of nine linear layers with a 2-D
bottleneck in the middle (:class:`mmx.models.BottleneckMLP`), trained three ways: no mixup, input
mixup (alpha 1) and manifold mixup at the bottleneck only. Per regime the figure shows the
decision boundary in input space (top) and the bottleneck representations (bottom) of the
training points and of inputs drawn uniformly over the plotted square (grey). Mixing comes from
the same mixing methods (:mod:`mmx.mixing`) and :class:`mmx.step.TrainStep` as ``mmx train``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

from mmx.checks import positive_number
from mmx.files import check_writable
from mmx.losses import soft_cross_entropy
from mmx.mixing import MixContext, Mixer
from mmx.models import BottleneckMLP
from mmx.step import TrainStep

REGIMES = {"none": [], "input": [0], "manifold": [1]}  # regime -> mixing points (1 = the bottleneck)
LIMIT = 1.2  # the plotted square is [-LIMIT, LIMIT]^2


def spirals(n_per_class: int, turns: float = 1.5, noise: float = 0.03, seed: int = 0):
    """Two spirals of ``n_per_class`` points each, rotated by half a turn from each other, inside the unit disc."""
    generator = torch.Generator().manual_seed(seed)
    t = torch.rand(2, n_per_class, generator=generator).sqrt()  # uniform density along the arm
    angle = 2 * math.pi * turns * t + torch.tensor([[0.0], [math.pi]])
    points = torch.stack([t * torch.cos(angle), t * torch.sin(angle)], dim=-1).reshape(-1, 2)
    points += noise * torch.randn(points.shape, generator=generator)
    labels = torch.arange(2).repeat_interleave(n_per_class)
    return points, labels


def train(regime: str, points, labels, *, alpha: float, steps: int, batch_size: int, width: int, seed: int):
    torch.manual_seed(seed)
    model = BottleneckMLP(num_classes=2, in_features=2, width=width, bottleneck=2, before=4, after=3)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    # points in the plane: two features, as channels of a 1x1 "image"
    context = MixContext(model.num_points, 2, channels=2, image_size=1, device=torch.device("cpu"), seed=seed + 1)
    mixer = Mixer(regime, alpha=alpha, points=REGIMES[regime], context=context)
    step = TrainStep(
        model,
        optimizer,
        torch.amp.GradScaler("cpu", enabled=False),
        soft_cross_entropy,
        2,
        torch.device("cpu"),
        "fp32",
        method=mixer,
    )
    order = torch.Generator().manual_seed(seed + 2)
    for _ in range(steps):
        index = torch.randint(len(points), (batch_size,), generator=order)
        step(points[index], labels[index], mixer.draw(batch_size))
    return model.eval()


def bottleneck(model, x):
    return model.stages[0](x)


def figure(results: dict, points, labels, path: Path, grid_size: int = 200) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    axis = torch.linspace(-LIMIT, LIMIT, grid_size)
    grid = torch.cartesian_prod(axis, axis).flip(1)  # rows sweep y, columns sweep x
    uniform = (torch.rand(3000, 2, generator=torch.Generator().manual_seed(1)) * 2 - 1) * LIMIT
    fig, axes = plt.subplots(2, len(results), figsize=(4 * len(results), 8))
    colours = ["tab:blue", "tab:orange"]
    for column, (regime, model) in enumerate(results.items()):
        with torch.no_grad():
            p = model(grid).softmax(dim=1)[:, 1].reshape(grid_size, grid_size)
            hidden_uniform, hidden_train = bottleneck(model, uniform), bottleneck(model, points)
        top, bottom = axes[0, column], axes[1, column]
        filled = top.contourf(axis, axis, p, levels=20, cmap="RdBu_r", vmin=0, vmax=1, alpha=0.8)
        top.contour(axis, axis, p, levels=[0.5], colors="black", linewidths=1)
        for c in (0, 1):
            top.scatter(*points[labels == c].T, s=3, color=colours[c])
        top.set(
            title=f"{regime}: input space",
            xlim=(-LIMIT, LIMIT),
            ylim=(-LIMIT, LIMIT),
            aspect="equal",
            xlabel="x₁",
            ylabel="x₂",
        )
        fig.colorbar(filled, ax=top, fraction=0.046, pad=0.04, label="p(class 1)")
        bottom.scatter(*hidden_uniform.T, s=2, color="lightgrey", label="uniform inputs")
        for c in (0, 1):
            bottom.scatter(*hidden_train[labels == c].T, s=3, color=colours[c], label=f"class {c}")
        bottom.set(title=f"{regime}: 2-D bottleneck", xlabel="bottleneck unit 1", ylabel="bottleneck unit 2")
        bottom.legend(fontsize=7, markerscale=3, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="mmx spiral", description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument(
        "--out", default="results/figures/spiral.png", help="PNG to write (a .json of accuracies beside it)"
    )
    parser.add_argument("--points", type=int, default=1000, help="training points per class")
    parser.add_argument("--steps", type=int, default=3000, help="Adam steps per regime")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--width", type=int, default=128, help="units of the hidden layers")
    parser.add_argument("--alpha", type=positive_number, default=1.0, help="Beta(alpha, alpha) of both mixing regimes")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    check_writable(Path(args.out).parent, "--out")  # before minutes of training, not after
    torch.set_num_threads(min(torch.get_num_threads(), 2))
    points, labels = spirals(args.points, seed=args.seed)
    test_points, test_labels = spirals(args.points, seed=args.seed + 100)
    results, accuracy = {}, {}
    for regime in REGIMES:
        started = time.perf_counter()
        model = train(
            regime,
            points,
            labels,
            alpha=args.alpha,
            steps=args.steps,
            batch_size=args.batch_size,
            width=args.width,
            seed=args.seed,
        )
        with torch.no_grad():
            accuracy[regime] = {
                "train_acc": float((model(points).argmax(1) == labels).float().mean() * 100),
                "test_acc": float((model(test_points).argmax(1) == test_labels).float().mean() * 100),
                "seconds": time.perf_counter() - started,
            }
        results[regime] = model
        print(
            f"{regime:<9} train acc {accuracy[regime]['train_acc']:.1f}%  test acc {accuracy[regime]['test_acc']:.1f}%"
            f"  ({accuracy[regime]['seconds']:.1f} s)"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure(results, points, labels, out)
    out.with_suffix(".json").write_text(json.dumps({"settings": vars(args), "regimes": accuracy}, indent=2) + "\n")
    print(f"wrote {out} and {out.with_suffix('.json')}")
    return 0
