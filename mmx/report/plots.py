"""Figures: test error and NLL against epoch per cell (median over seeds, band from the lowest to the
highest seed), final/best test error against alpha, and final error and NLL against any swept setting
(``--against KEY``).

The axes are logarithmic, so the band is the range over seeds, which a log axis shows as it is; a
mean minus one standard deviation would fall below zero and drag the band off the plot.
"""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from mmx.errors import UserError  # noqa: E402
from mmx.files import save_figure, write_text  # noqa: E402
from mmx.report.cells import Cell, cell_key, cells, column_name, show, varying  # noqa: E402
from mmx.report.runs import read_curves  # noqa: E402

log = logging.getLogger("mmx")
PANELS = [("test_error", "test error (%)"), ("test_nll", "test NLL (nats)")]


def label(cell: Cell, keys: list[str], swept: str | None = None) -> str:
    """How a legend names a cell: its regime, alpha and points, and the other settings that vary (those it has),
    leaving out the ``swept`` setting that the x axis shows."""
    s = cell.settings
    if s.get("mixup.name") == "none":
        text = "no mixup"
    else:
        name, alpha, points = s.get("mixup.name"), s.get("mixup.alpha"), s.get("mixup.points")
        text = f"{name} α={alpha:g}" if swept != "mixup.alpha" and alpha is not None else name
        if points not in (None, "", "0") and swept != "mixup.points":  # where it mixes, when past the input
            text += f" {{{points}}}"
    shown = ("mixup.name", "mixup.alpha", "mixup.points", swept)
    others = [f"{column_name(k)}={s.get(k)}" for k in keys if k not in shown and s.get(k) is not None]
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
    save_figure(fig, path, dpi=120)
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
    save_figure(fig, path, dpi=120)
    plt.close(fig)


AGAINST_PANELS = [("final_error", "final test error (%)"), ("final_nll", "final test NLL (nats)")]


def setting_key(name: str, all_cells: list[Cell]) -> str:
    """The dotted key a user named, by its key or its short column name (``K``, ``alpha``, ``regime``)."""
    keys = sorted({k for c in all_cells for k in c.settings})
    by_short = {column_name(k): k for k in keys}
    if name in keys:
        return name
    if name in by_short:
        return by_short[name]
    shown = ", ".join(column_name(k) for k in varying(all_cells)) or "none"
    raise UserError(f"--against {name} is not a setting of these runs; settings that vary between them: {shown}")


def against_points(runs: pd.DataFrame, name: str) -> tuple[pd.DataFrame, str, list[str]]:
    """The numbers of an ``--against`` figure: one row per (line, value of the setting), with the distinct seeds
    and mean ± std over them of the final test error and NLL.

    A line is one combination of the other settings that vary. Settings that take one value for each value
    of the swept one (e.g. ``epochs`` scaled to ``dataset.labels_per_class``) go with it: they are named on
    the axis, not split into lines of one point each. Returns the rows, the key, and those followers.
    """
    all_cells = cells(runs[runs["finished"]])
    if not all_cells:
        raise UserError("no finished runs to plot against a setting; wait for the runs to finish")
    key = setting_key(name, all_cells)
    others = [k for k in varying(all_cells) if k != key]

    def value(cell: Cell, k: str) -> str:
        return show(cell.settings.get(k))

    by_value: dict[str, set] = {}
    for k in others:
        for cell in all_cells:
            by_value.setdefault(k, set()).add((value(cell, key), value(cell, k)))
    values = {value(c, key) for c in all_cells}
    # A follower takes one value per value of the swept setting and several values where it is set at all (alpha is
    # not a follower of the points just because the runs without mixing have neither).
    followers = [
        k
        for k in others
        if len(by_value[k]) == len(values) > 1 and len({v for _, v in by_value[k] if v != show(None)}) > 1
    ]
    line_keys = [k for k in others if k not in followers]
    rows = []
    for cell in all_cells:
        rest = {k: v for k, v in cell.settings.items() if k != key and k not in followers}
        row = {
            "line": label(cell, line_keys, swept=key),
            "line_key": cell_key(rest),
            column_name(key): cell.settings.get(key),
            **{column_name(k): cell.settings.get(k) for k in followers},
            "seeds": cell.runs["seed"].nunique(),
        }
        for column, _ in AGAINST_PANELS:
            row[f"{column}_mean"] = cell.runs[column].mean()
            row[f"{column}_std"] = cell.runs[column].std(ddof=1) if len(cell.runs) > 1 else float("nan")
        rows.append(row)
    return pd.DataFrame(rows), key, followers


def _numeric(values) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def against_figure(runs: pd.DataFrame, name: str, title: str, path: Path) -> Path:
    """Final test error and NLL against one setting, a line per combination of the others, error bars = std over
    distinct seeds; the plotted numbers are written beside the figure as CSV (same name, .csv)."""
    points, key, followers = against_points(runs, name)
    x = column_name(key)
    numeric = _numeric(points[x].tolist())
    unset = show(None)  # e.g. the points of runs without mixing: first, as the baseline
    categories = sorted({show(v) for v in points[x]}, key=lambda v: (v != unset, len(v), v)) if not numeric else []
    fig, axes = plt.subplots(1, len(AGAINST_PANELS), figsize=(12, 4.5), constrained_layout=True)
    lines = list(points.groupby("line_key", sort=False))
    for number, (_, line) in enumerate(lines):
        line = line.sort_values(x) if numeric else line
        dodge = (number - (len(lines) - 1) / 2) * 0.1  # categories: lines side by side, not on top of each other
        position = line[x] if numeric else [categories.index(show(v)) + dodge for v in line[x]]
        low, high = line["seeds"].min(), line["seeds"].max()
        seeds = f"{low}" if low == high else f"{low}-{high}"
        for ax, (column, _) in zip(axes, AGAINST_PANELS):
            ax.errorbar(
                position,
                line[f"{column}_mean"],
                yerr=line[f"{column}_std"].fillna(0),
                fmt="-o" if numeric else "o",
                capsize=3,
                label=f"{line['line'].iloc[0]} (mean ± std over {seeds} seeds)",
            )
    ordered = points.sort_values(x) if numeric else points
    follow = "; ".join(
        f"{column_name(k)} " + " / ".join(map(show, ordered[column_name(k)].unique())) for k in followers
    )
    if follow:
        fig.supxlabel(textwrap.fill(f"changing with {x}: {follow}", 150), fontsize=8)
    for ax, (_, ylabel) in zip(axes, AGAINST_PANELS):
        ax.set_xlabel(x)
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        if numeric and points[x].min() > 0 and points[x].max() / points[x].min() >= 10:
            ax.set_xscale("log")
            ticks = sorted(points[x].unique())
            ax.set_xticks(ticks, labels=[show(t) for t in ticks])
            ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        if not numeric:
            ax.set_xticks(range(len(categories)), labels=categories)
    axes[0].legend(fontsize=7)
    fig.suptitle(title)
    save_figure(fig, path, dpi=120)
    plt.close(fig)
    write_text(path.with_suffix(".csv"), points.drop(columns="line_key").to_csv(index=False, float_format="%.6g"))
    return path


def write_plots(runs: pd.DataFrame, out: Path, against: list[str] = ()) -> list[Path]:
    """Per table and (dataset, model): a curves figure, an alpha figure where alpha varies, and a figure
    against each setting named in ``against``."""
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
        for name in against:
            path = out / f"{stem}_against_{name}.png"
            against_figure(group, name, f"{dataset}, {model}: against {name} ({table})", path)
            written += [path, path.with_suffix(".csv")]
    return written
