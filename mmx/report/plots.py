"""Figures: test error and NLL against epoch per cell (median over seeds, band from the lowest to the
highest seed), and final/best test error against alpha.

The axes are logarithmic, so the band is the range over seeds, which a log axis shows as it is; a
mean minus one standard deviation would fall below zero and drag the band off the plot.
"""

from __future__ import annotations

import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from mmx.errors import UserError  # noqa: E402
from mmx.report.cells import Cell, cell_key, cells, column_name, varying  # noqa: E402
from mmx.report.runs import read_curves  # noqa: E402

log = logging.getLogger("mmx")
PANELS = [("test_error", "test error (%)"), ("test_nll", "test NLL (nats)")]


def label(cell: Cell, keys: list[str]) -> str:
    """How a legend names a cell: its regime, alpha and points, and the other settings that vary."""
    s = cell.settings
    if s.get("mixup.name") == "none":
        text = "no mixup"
    else:
        text = f"{s.get('mixup.name')} α={s.get('mixup.alpha'):g}"
        if s.get("mixup.name") == "manifold":
            text += f" {{{s.get('mixup.points')}}}"
    others = [f"{column_name(k)}={s.get(k)}" for k in keys if k not in ("mixup.name", "mixup.alpha", "mixup.points")]
    return ", ".join([text, *others])


def seed_curves(cell: Cell) -> pd.DataFrame:
    """The cell's metrics.csv rows, one run per seed; a damaged file is named and left out."""
    frames = []
    for run_dir in cell.runs["run_dir"]:
        try:
            frames.append(read_curves(run_dir).assign(run=run_dir))
        except UserError as error:
            log.warning("leaving %s out of the figure: %s", run_dir, error)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def curve_figure(runs: pd.DataFrame, title: str, path: Path) -> None:
    """Two panels side by side; one line per cell: the median over seeds, band = lowest to highest seed."""
    fig, axes = plt.subplots(1, len(PANELS), figsize=(12, 4.5), constrained_layout=True)
    all_cells = cells(runs)
    keys = varying(all_cells)
    for cell in all_cells:
        curves = seed_curves(cell)
        if curves.empty:
            continue
        seeds = curves["run"].nunique()
        for ax, (column, _) in zip(axes, PANELS):
            stats = curves.groupby("epoch")[column].agg(["median", "min", "max"])
            band = "band: lowest to highest seed" if seeds > 1 else "one seed"
            (line,) = ax.plot(
                stats.index, stats["median"], label=f"{label(cell, keys)}: median of {seeds} seeds, {band}"
            )
            if seeds > 1:
                ax.fill_between(stats.index, stats["min"], stats["max"], color=line.get_color(), alpha=0.2)
    for ax, (_, name) in zip(axes, PANELS):
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(title)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def alpha_figure(runs: pd.DataFrame, title: str, path: Path) -> None:
    """Final and best test error against alpha: one line per set of settings that differ only in alpha,
    error bars = std over its distinct seeds."""
    fig, ax = plt.subplots(figsize=(6.5, 4.5), constrained_layout=True)
    done = runs[runs["finished"]]
    all_cells = cells(done)
    keys = [k for k in varying(all_cells) if k != "mixup.alpha"]
    lines: dict[str, list[Cell]] = {}
    for cell in all_cells:
        rest = {k: v for k, v in cell.settings.items() if k != "mixup.alpha"}
        lines.setdefault(cell_key(rest), []).append(cell)
    for members in lines.values():
        rows = pd.concat([c.runs for c in members])  # one run per seed in each cell
        stats = rows.groupby("alpha")[["final_error", "best_error"]].agg(["mean", "std"])
        seeds = rows.groupby("alpha")["seed"].nunique().min()
        name = label(members[0], keys).split(" α=")[0] + "".join(
            f", {column_name(k)}={members[0].settings.get(k)}" for k in keys if k not in ("mixup.name", "mixup.points")
        )
        if members[0].settings.get("mixup.name") == "manifold":
            name = name.replace("manifold", f"manifold {{{members[0].settings.get('mixup.points')}}}", 1)
        for block, style in (("final", "-o"), ("best", "--s")):
            ax.errorbar(
                stats.index,
                stats[(f"{block}_error", "mean")],
                yerr=stats[(f"{block}_error", "std")],
                fmt=style,
                capsize=3,
                label=f"{name}, {block} epoch (mean ± std over ≥{seeds} seeds)",
            )
    ax.set_xlabel("alpha (lam ~ Beta(alpha, alpha))")
    ax.set_ylabel("test error (%)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
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
