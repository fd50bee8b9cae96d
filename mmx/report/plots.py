"""Figures: test error and NLL against epoch per variant (mean line, +- one std band over seeds),
and final/best test error against alpha."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from mmx.report.runs import read_curves  # noqa: E402

PANELS = [("test_error", "test error (%)"), ("test_nll", "test NLL (nats)")]


def variant(row) -> str:
    if row["regime"] == "none":
        return "no mixup"
    label = f"{row['regime']} α={row['alpha']:g}"
    return label + (f" {{{row['points']}}}" if row["regime"] == "manifold" else "")


def curve_figure(runs: pd.DataFrame, title: str, path: Path) -> None:
    """Two panels side by side; one line per variant, band = +- one std over its seeds."""
    fig, axes = plt.subplots(1, len(PANELS), figsize=(12, 4.5), constrained_layout=True)
    for name, group in runs.groupby(runs.apply(variant, axis=1), sort=True):
        curves = pd.concat([read_curves(d).assign(run=d) for d in group["run_dir"]], ignore_index=True)
        if curves.empty:
            continue
        for ax, (column, _) in zip(axes, PANELS):
            stats = curves.groupby("epoch")[column].agg(["mean", "std", "count"])
            (line,) = ax.plot(stats.index, stats["mean"], label=f"{name} ({group['seed'].nunique()} seeds)")
            spread = stats["std"].fillna(0)
            ax.fill_between(
                stats.index, stats["mean"] - spread, stats["mean"] + spread, color=line.get_color(), alpha=0.2
            )
    for ax, (_, label) in zip(axes, PANELS):
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def alpha_figure(runs: pd.DataFrame, title: str, path: Path) -> None:
    """Final and best test error against alpha, one line per regime and layer set, error bars = std."""
    fig, ax = plt.subplots(figsize=(6.5, 4.5), constrained_layout=True)
    done = runs[runs["finished"]]
    for (regime, points), group in done.groupby(["regime", "points"], sort=True):
        stats = group.groupby("alpha")[["final_error", "best_error"]].agg(["mean", "std"])
        name = regime + (f" {{{points}}}" if regime == "manifold" else "")
        for block, style in (("final", "-o"), ("best", "--s")):
            ax.errorbar(
                stats.index,
                stats[(f"{block}_error", "mean")],
                yerr=stats[(f"{block}_error", "std")],
                fmt=style,
                capsize=3,
                label=f"{name}, {block} epoch",
            )
    ax.set_xlabel("alpha (lam ~ Beta(alpha, alpha))")
    ax.set_ylabel("test error (%)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_plots(runs: pd.DataFrame, out: Path) -> list[Path]:
    """Per table and (dataset, model): a curves figure, and an alpha figure where alpha varies."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for (table, dataset, model), group in runs.groupby(["table", "dataset", "model"], sort=True):
        stem = f"{table}_{dataset}_{model}"
        curve_figure(group, f"{dataset}, {model} ({table})", out / f"{stem}_curves.png")
        written.append(out / f"{stem}_curves.png")
        mixed = group[(group["regime"] != "none") & group["finished"]]
        alphas_per_variant = mixed.groupby(["regime", "points"])["alpha"].nunique()
        if (alphas_per_variant > 1).any():
            alpha_figure(
                group[group["regime"] != "none"],
                f"{dataset}, {model}: alpha sweep ({table})",
                out / f"{stem}_alpha.png",
            )
            written.append(out / f"{stem}_alpha.png")
    return written
