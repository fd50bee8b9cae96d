"""Result tables: mean +- std over seeds per cell, the paper's number beside ours.

One cell is one (dataset, model, regime, alpha, mixing points, epochs, loss, labels per class). For
each paper table and for the runs that belong to none ("runs": any user sweep), three files:
CSV (every number in its own column), Markdown and LaTeX (formatted "mean ± std").
"""

from __future__ import annotations

import logging
import math
from importlib import resources
from pathlib import Path

import pandas as pd

from mmx.run_dir import TEST_METRICS

log = logging.getLogger("mmx")

CELL = ["dataset", "model", "regime", "alpha", "points", "epochs", "loss", "labels_per_class"]
PAPER_IDS = {"table1": ["1a", "1b"], "table2": ["2"], "table3": ["3"], "table5": ["5"], "table6": ["6"]}
# Which of our metrics each table shows, and which paper metric compares with which of ours. The
# paper reports the best epoch (the public code keeps the best test value), so "best" is compared.
SHOWN = {"table3": ["acc", "top5", "nll"], "table5": ["acc", "nll"], "table6": ["acc", "nll"]}
DEFAULT_SHOWN = ["error", "nll", "ece"]
PAPER_TO_OURS = {"test_error": "best_error", "test_nll": "best_nll", "test_acc": "best_acc", "test_top5": "best_top5"}
# The test metrics' labels and decimals come from the one specification of the epoch metrics.
LABELS = {name: metric.label for name, metric in TEST_METRICS.items()}
DECIMALS = {name: metric.decimals for name, metric in TEST_METRICS.items()}


def paper_numbers() -> pd.DataFrame:
    with resources.files("mmx.report").joinpath("paper.csv").open() as handle:
        paper = pd.read_csv(handle, comment="#", dtype={"table": str, "points": str})
    paper["points"] = paper["points"].fillna("")
    return paper


def aggregate(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per cell: seeds finished, unfinished runs, and mean/std of final and best metrics."""
    rows = []
    for key, group in runs.groupby(CELL, dropna=False, sort=True):
        done = group[group["finished"]]
        pending = group[~group["finished"]]
        row = dict(zip(CELL, key), seeds=len(done), unfinished=len(pending))
        row["status"] = (
            ""
            if pending.empty
            else (
                f"{len(pending)} unfinished (epochs done: {', '.join(str(e) for e in sorted(pending['epochs_done']))}"
                f" of {int(group['epochs'].iloc[0])})"
            )
        )
        # Finished seeds define the cell; a cell with none shows its unfinished runs' latest numbers.
        source = done if not done.empty else pending
        for block in ("final", "best"):
            for metric in TEST_METRICS:
                column = f"{block}_{metric}"
                values = source[column].dropna() if column in source else pd.Series(dtype=float)
                row[f"{column}_mean"] = values.mean() if len(values) else math.nan
                row[f"{column}_std"] = values.std(ddof=1) if len(values) > 1 else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def add_paper(cells: pd.DataFrame, table: str, paper: pd.DataFrame) -> pd.DataFrame:
    """Columns paper_<metric>, paper_<metric>_std, delta_<metric> (ours - paper) and delta_<metric>_sigma."""
    ids = PAPER_IDS.get(table)
    if not ids:
        return cells
    rows = paper[paper["table"].isin(ids)]
    cells = cells.copy()
    for i, cell in cells.iterrows():
        alpha = cell["alpha"]
        match = rows[
            (rows["dataset"] == cell["dataset"])
            & (rows["model"] == cell["model"])
            & (rows["regime"] == cell["regime"])
            & (rows["points"] == cell["points"])
            & (rows["alpha"].isna() if pd.isna(alpha) else (rows["alpha"] - alpha).abs() < 1e-9)
        ]
        for _, published in match.iterrows():
            metric = published["metric"]
            ours = cell.get(f"{PAPER_TO_OURS[metric]}_mean", math.nan)
            cells.loc[i, f"paper_{metric}"] = published["value"]
            cells.loc[i, f"paper_{metric}_std"] = published["std"]
            cells.loc[i, f"delta_{metric}"] = ours - published["value"]
            if published["std"] > 0:
                cells.loc[i, f"delta_{metric}_sigma"] = (ours - published["value"]) / published["std"]
    return cells


def _mean_std(mean: float, std: float, decimals: int) -> str:
    if pd.isna(mean):
        return "–"
    return f"{mean:.{decimals}f}" if pd.isna(std) else f"{mean:.{decimals}f} ± {std:.{decimals}f}"


def formatted(cells: pd.DataFrame, table: str) -> pd.DataFrame:
    """The human-readable table: one column per quantity, constant columns left out."""
    shown = SHOWN.get(table, DEFAULT_SHOWN)
    out = pd.DataFrame()
    for column in CELL:
        values = cells[column].map(
            lambda v: "–" if pd.isna(v) or v == "" else (f"{v:g}" if isinstance(v, float) else str(v))
        )
        if column in ("dataset", "model", "regime") or values.nunique() > 1:
            out[column] = values
    out["seeds"] = cells["seeds"]
    for block in ("final", "best"):
        for metric in shown:
            out[f"{block} {LABELS[metric]}"] = [
                _mean_std(m, s, DECIMALS[metric])
                for m, s in zip(cells[f"{block}_{metric}_mean"], cells[f"{block}_{metric}_std"])
            ]
    for metric, ours in PAPER_TO_OURS.items():
        if f"paper_{metric}" not in cells:
            continue
        name = LABELS[ours.split("_")[1]]
        decimals = DECIMALS[ours.split("_")[1]]
        out[f"paper {name}"] = [
            _mean_std(v, s, decimals) for v, s in zip(cells[f"paper_{metric}"], cells[f"paper_{metric}_std"])
        ]
        sigma = cells.get(f"delta_{metric}_sigma")
        out[f"Δ {name}"] = [
            "–"
            if pd.isna(d)
            else (f"{d:+.{decimals}f} ({z:+.1f}σ)" if sigma is not None and not pd.isna(z) else f"{d:+.{decimals}f}")
            for d, z in zip(cells[f"delta_{metric}"], sigma if sigma is not None else [math.nan] * len(cells))
        ]
    out["status"] = cells["status"]
    return out


def caption(cells: pd.DataFrame, table: str) -> str:
    constant = [f"{c} {cells[c].iloc[0]}" for c in ("epochs", "loss") if cells[c].nunique(dropna=False) == 1]
    parts = [
        f"mmx {table}: mean ± sample std over seeds of the final epoch and of the best epoch (lowest test "
        f"error; the paper reports the best)."
    ]
    if constant:
        parts.append(f"All runs: {', '.join(constant)}.")
    if any(c.startswith("paper_") for c in cells):
        parts.append("Paper: arXiv 1806.05236v7; Δ = our best − paper, in the paper's std (σ) where it gives one.")
    return " ".join(parts)


def to_markdown(table: pd.DataFrame) -> str:
    header = "| " + " | ".join(table.columns) + " |"
    rule = "|" + "|".join("---:" if c not in CELL else "---" for c in table.columns) + "|"
    lines = ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *lines]) + "\n"


def write_tables(runs: pd.DataFrame, out: Path) -> list[Path]:
    """Write <table>.csv/.md/.tex under ``out`` for every table that has runs; returns the paths."""
    out.mkdir(parents=True, exist_ok=True)
    paper = paper_numbers()
    written = []
    for table, group in runs.groupby("table", sort=True):
        cells = add_paper(aggregate(group), table, paper)
        pretty = formatted(cells, table)
        text = caption(cells, table)
        paths = [out / f"{table}.csv", out / f"{table}.md", out / f"{table}.tex"]
        cells.to_csv(paths[0], index=False, float_format="%.6g")
        paths[1].write_text(f"{text}\n\n{to_markdown(pretty)}")
        paths[2].write_text(
            pretty.to_latex(index=False, caption=text, label=f"tab:mmx-{table}")
            .replace("±", r"$\pm$")
            .replace("Δ", r"$\Delta$")
            .replace("σ", r"$\sigma$")
            .replace("%", r"\%")
            .replace("_", r"\_")
            .replace("–", "--")
        )
        written += paths
    return written


def brief(runs: pd.DataFrame) -> str:
    """One line per run: what it trained and how it ended (``mmx tables --brief``)."""
    header = (
        f"{'dataset':<9} {'model':<15} {'mixup':<9} {'alpha':>5} {'seed':>4} {'epochs':>9}  {'test error %':>12} "
        f"{'test NLL':>8} {'ECE':>6}  {'best error %':>12} {'@epoch':>6}"
    )
    lines = [header, "-" * len(header)]
    for _, r in runs.sort_values(["dataset", "model", "regime", "alpha", "seed"], na_position="first").iterrows():
        alpha = "-" if pd.isna(r["alpha"]) else f"{r['alpha']:g}"
        done = f"{r['epochs_done']}/{r['epochs']}"
        best_epoch = "" if pd.isna(r.get("best_epoch")) else int(r["best_epoch"])
        lines.append(
            f"{r['dataset']:<9} {r['model']:<15} {r['regime']:<9} {alpha:>5} {r['seed']:>4} {done:>9}  "
            f"{r.get('final_error', math.nan):>12.2f} {r.get('final_nll', math.nan):>8.4f} "
            f"{r.get('final_ece', math.nan):>6.3f}  {r.get('best_error', math.nan):>12.2f} {best_epoch:>6}"
        )
    return "\n".join(lines)
