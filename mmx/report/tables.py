"""Result tables: mean +- std over seeds per cell, the paper's number beside ours.

A cell is every setting that can change a result, all but the seed (:mod:`mmx.report.cells`); the
settings that differ between a table's cells are its columns. For each paper table and for the runs
that belong to none ("runs": any user sweep), three files: CSV (every number in its own column),
Markdown and LaTeX (formatted "mean ± std over distinct seeds").
"""

from __future__ import annotations

import logging
import math
from importlib import resources
from pathlib import Path

import pandas as pd

from mmx.files import write_text
from mmx.metrics import scores, test_metrics, val_metrics
from mmx.report.cells import IDENTITY, cells, column_name, identity, regime_order, show, varying

log = logging.getLogger("mmx")

PAPER_IDS = {"table1": ["1a", "1b"], "table2": ["2"], "table3": ["3"], "table5": ["5"], "table6": ["6"]}
# Which of our metrics each table shows, and which paper metric compares with which of ours. The
# paper reports the best epoch (the public code keeps the best test value), so "best" is compared.
# Other tables show the scores the registry marks as shown (mmx.metrics), with its labels and decimals.
SHOWN = {"table3": ["acc", "top5", "nll"], "table5": ["acc", "nll"], "table6": ["acc", "nll"]}
PAPER_TO_OURS = {"test_error": "best_error", "test_nll": "best_nll", "test_acc": "best_acc", "test_top5": "best_top5"}


def shown_scores(table: str) -> list[str]:
    """The scores a table shows: the paper's for its tables, else those the registry marks as shown."""
    return SHOWN.get(table) or [score.name for score in scores() if score.shown]


def paper_numbers() -> pd.DataFrame:
    with resources.files("mmx.report").joinpath("paper.csv").open() as handle:
        paper = pd.read_csv(handle, comment="#", dtype={"table": str, "points": str})
    paper["points"] = paper["points"].fillna("")
    return paper


def aggregate(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per cell (:mod:`mmx.report.cells`): its settings that vary, distinct seeds finished, unfinished
    runs, repeated seeds left out, and mean/std over distinct seeds of the final and best metrics.

    ``attrs["columns"]`` lists the cell's columns: dataset, model, regime, then the varying settings.
    """
    all_cells = cells(runs)
    keys = varying(all_cells)
    rows = []
    for cell in all_cells:
        group = cell.runs
        done, pending = group[group["finished"]], group[~group["finished"]]
        row = {**identity(cell), **{column_name(k): cell.settings.get(k) for k in keys}}
        row.update(seeds=done["seed"].nunique(), unfinished=len(pending))
        status = []
        for how, runs_ended in pending.groupby("ended", sort=True):  # diverged, interrupted, unfinished
            epochs = ", ".join(str(e) for e in sorted(runs_ended["epochs_done"]))
            status.append(f"{len(runs_ended)} {how} (epochs done: {epochs} of {int(group['epochs'].iloc[0])})")
        if cell.note():
            status.append(cell.note())
        row["status"] = "; ".join(status)
        # Finished seeds define the cell; a cell with none shows its unfinished runs' latest numbers.
        source = done if not done.empty else pending
        row["best_chosen_on"] = ", ".join(sorted(group["best_chosen_on"].dropna().unique()))
        for block in ("final", "best"):
            for metric in [*test_metrics(), *val_metrics()]:
                column = f"{block}_{metric}"
                values = source[column].dropna() if column in source else pd.Series(dtype=float)
                row[f"{column}_mean"] = values.mean() if len(values) else math.nan
                row[f"{column}_std"] = values.std(ddof=1) if len(values) > 1 else math.nan
        rows.append(row)
    table = pd.DataFrame(rows)
    table.attrs["columns"] = [*IDENTITY, *(column_name(k) for k in keys)]
    table.attrs["constant"] = constant_settings(all_cells)
    return table


def constant_settings(all_cells) -> str:
    """The settings every cell shares, for the caption (a few that a reader looks for)."""
    shared = []
    for key in ("epochs", "loss.name", "optim.lr", "batch_size", "precision"):
        values = {str(c.settings.get(key)) for c in all_cells}
        if len(values) == 1 and values != {"None"}:
            shared.append(f"{column_name(key)} {values.pop()}")
    return ", ".join(shared)


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
    shown, tested = shown_scores(table), test_metrics()
    out = pd.DataFrame()
    for column in cells.attrs["columns"]:
        out[column] = cells[column].map(show)
    out["seeds"] = cells["seeds"]
    if cells["best_chosen_on"].nunique() > 1:  # else the caption says it
        out["best chosen on"] = cells["best_chosen_on"]
    for block in ("final", "best"):
        for metric in shown:
            out[f"{block} {tested[metric].label}"] = [
                _mean_std(m, s, tested[metric].decimals)
                for m, s in zip(cells[f"{block}_{metric}_mean"], cells[f"{block}_{metric}_std"])
            ]
    if cells["best_val_error_mean"].notna().any():
        chosen = val_metrics()["val_error"]
        out[f"best {chosen.label}"] = [
            _mean_std(m, s, chosen.decimals) for m, s in zip(cells["best_val_error_mean"], cells["best_val_error_std"])
        ]
    for metric, ours in PAPER_TO_OURS.items():
        if f"paper_{metric}" not in cells:
            continue
        name = tested[ours.split("_")[1]].label
        decimals = tested[ours.split("_")[1]].decimals
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


BEST_WORDS = {
    "test": "lowest test error: chosen on the test set, as the paper's best is",
    "validation": "lowest validation error: chosen on a split held out of the training set, not on the test set",
}


def caption(cells: pd.DataFrame, table: str) -> str:
    splits = set(cells["best_chosen_on"])
    best = (
        BEST_WORDS[splits.pop()]
        if len(splits) == 1
        else "lowest error on the split named in 'best chosen on': validation where a cell holds one out, else test"
    )
    parts = [
        f"mmx {table}: mean ± sample std over distinct seeds of the final epoch and of the best epoch ({best}). "
        f"A row is a cell: runs equal in every setting but the seed."
    ]
    if cells.attrs.get("constant"):
        parts.append(f"All runs: {cells.attrs['constant']}.")
    if any(c.startswith("paper_") for c in cells):
        parts.append("Paper: arXiv 1806.05236v7; Δ = our best − paper, in the paper's std (σ) where it gives one.")
    return " ".join(parts)


def to_markdown(table: pd.DataFrame, text_columns: list[str] | None = None) -> str:
    """A GitHub table; the cell's columns (``text_columns``, default the first three) left-aligned."""
    text_columns = text_columns if text_columns is not None else list(table.columns[:3])
    header = "| " + " | ".join(table.columns) + " |"
    rule = "|" + "|".join("---" if c in text_columns else "---:" for c in table.columns) + "|"
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
        write_text(paths[0], cells.to_csv(index=False, float_format="%.6g"))
        write_text(paths[1], f"{text}\n\n{to_markdown(pretty, cells.attrs['columns'])}")
        write_text(
            paths[2],
            pretty.to_latex(index=False, caption=text, label=f"tab:mmx-{table}")
            .replace("±", r"$\pm$")
            .replace("Δ", r"$\Delta$")
            .replace("σ", r"$\sigma$")
            .replace("%", r"\%")
            .replace("_", r"\_")
            .replace("–", "--"),
        )
        written += paths
    return written


def _number(value) -> float:
    """A table cell as a number: NaN for a run with none (unfinished, or written before the metric existed)."""
    return math.nan if value is None or pd.isna(value) else float(value)


def brief(runs: pd.DataFrame) -> str:
    """One line per run: what it trained, how it ended, and its folder (a sweep's names say what it swept)
    (``mmx tables --brief``)."""
    shown = [score for score in scores() if score.shown]  # the registry's, and the test error of the best epoch
    widths = {score.name: max(len(f"test {score.label}"), 8) for score in shown}
    error = test_metrics()["error"]
    header = (
        f"{'dataset':<9} {'model':<15} {'mixup':<9} {'alpha':>5} {'seed':>4} {'epochs':>9}  "
        + " ".join(f"{'test ' + score.label:>{widths[score.name]}}" for score in shown)
        + f"  {'best ' + error.label:>12} {'@epoch':>6} {'chosen on':<10}  {'ended':<11} run"
    )
    lines = [header, "-" * len(header)]
    order = runs.assign(_regime=runs["regime"].map(regime_order))
    for _, r in order.sort_values(["dataset", "model", "_regime", "alpha", "seed"], na_position="first").iterrows():
        alpha = "-" if pd.isna(r["alpha"]) else f"{r['alpha']:g}"
        done = f"{r['epochs_done']}/{r['epochs']}"
        best_epoch = "" if pd.isna(r.get("best_epoch")) else int(r["best_epoch"])
        finals = " ".join(f"{_number(r.get(f'final_{s.name}')):>{widths[s.name]}.{s.read_decimals}f}" for s in shown)
        lines.append(
            f"{r['dataset']:<9} {r['model']:<15} {r['regime']:<9} {alpha:>5} {r['seed']:>4} {done:>9}  {finals}  "
            f"{_number(r.get('best_error')):>12.{error.decimals}f} {best_epoch:>6} "
            f"{r['best_chosen_on']:<10}  {r['ended']:<11} {Path(r['run_dir']).name}"
        )
    lines += ["", "best: the test error of the epoch of lowest error on the split 'chosen on' names"]
    if (runs["best_chosen_on"] == "test").any():
        lines[-1] += (
            "; 'test' means the test set chose it (as the paper does), so it is no estimate of unseen error: "
            "train with dataset.val_size=0.1 to choose on a held-out validation split"
        )
    return "\n".join(lines)
