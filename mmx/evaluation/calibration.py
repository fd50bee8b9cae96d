"""The reliability diagram of predicted probabilities (the Brier score and the ECE are scores of mmx.metrics)."""

from __future__ import annotations

from pathlib import Path

import torch

from mmx.files import save_figure
from mmx.metrics import confidence_bin


def reliability_bins(probs: torch.Tensor, labels: torch.Tensor, bins: int = 15) -> list[dict]:
    """Per equal-width confidence bin (lower, upper]: its range, how many predictions fell in it, their mean
    confidence and accuracy.

    The same bins as the ECE (``mmx.metrics``): ECE is the count-weighted mean of |accuracy - confidence|.
    """
    confidence, predicted = probs.max(dim=1)
    correct = (predicted == labels).float()
    index = confidence_bin(confidence, bins)
    count = torch.bincount(index, minlength=bins).float()
    confidence_sum = torch.bincount(index, weights=confidence, minlength=bins)
    correct_sum = torch.bincount(index, weights=correct, minlength=bins)
    rows = []
    for b in range(bins):
        n = int(count[b])
        rows.append(
            {
                "lower": b / bins,
                "upper": (b + 1) / bins,
                "count": n,
                "confidence": float(confidence_sum[b] / n) if n else None,
                "accuracy": float(correct_sum[b] / n) if n else None,
            }
        )
    return rows


def plot_reliability(rows: list[dict], path: Path, title: str) -> None:
    """Accuracy per confidence bin against the diagonal of perfect calibration, with the bins' counts below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    width = rows[0]["upper"] - rows[0]["lower"]
    centres = [(r["lower"] + r["upper"]) / 2 for r in rows]
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(4.5, 5.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    top.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
    filled = [(c, r) for c, r in zip(centres, rows) if r["count"]]
    top.bar(
        [c for c, _ in filled],
        [r["accuracy"] for _, r in filled],
        width=width,
        edgecolor="black",
        color="tab:blue",
        alpha=0.8,
        label="accuracy",
    )
    top.scatter(
        [c for c, _ in filled],
        [r["confidence"] for _, r in filled],
        color="tab:red",
        s=12,
        zorder=3,
        label="mean confidence",
    )
    top.set(ylim=(0, 1), ylabel="accuracy", title=title)
    top.legend(loc="upper left", fontsize=8)
    bottom.bar(centres, [r["count"] for r in rows], width=width, color="grey", edgecolor="black")
    bottom.set(xlim=(0, 1), xlabel="confidence (max softmax probability)", ylabel="count")
    bottom.set_yscale("symlog")
    figure.tight_layout()
    save_figure(figure, path, dpi=120)
    plt.close(figure)
