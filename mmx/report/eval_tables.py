"""Tables of ``mmx eval`` results (eval.json in each run): calibration, FGSM/PGD, deformations, OOD.

Cells are the same as the accuracy tables' (mmx.report.cells); each number is mean ± std over the
distinct seeds that have an eval.json. The paper's numbers stand beside ours where it has them: Table 7
(FGSM; the paper does not state its epsilon) and Table 4 (deformations).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd

from mmx.files import write_text
from mmx.metrics import scores
from mmx.report.cells import IDENTITY, cells, column_name, identity, show, varying
from mmx.report.tables import _mean_std, paper_numbers, to_markdown

TEMPERATURE = "eval_temperature"


def calibration_scores() -> list:
    """The registry's scores mmx eval's calibration table shows (mmx.metrics): accuracy, then each calibration score."""
    return [score for score in scores(every=True) if score.name == "acc" or score.calibration]


def kinds() -> dict[str, tuple[str | None, tuple[str, ...]]]:
    """table -> (paper table id, prefixes of our columns)."""
    return {
        "calibration": (None, (*(f"eval_{score.name}" for score in calibration_scores()), TEMPERATURE)),
        "fgsm": ("7", ("fgsm_", "pgd_")),
        "deformations": ("4", ("deform_",)),
        "ood": (None, ("ood_",)),
    }


def eval_columns() -> dict[str, tuple[str, int]]:
    """The calibration table's columns: (label, decimals), from the registry; ``_scaled``: after temperature scaling."""
    columns = {TEMPERATURE: ("T (fitted on validation)", 3)}
    for score in calibration_scores():
        columns[f"eval_{score.name}"] = (score.label, score.read_decimals)
        if score.calibration:
            columns[f"eval_{score.name}_scaled"] = (f"{score.label} at T", score.read_decimals)
    return columns


def _columns(runs: pd.DataFrame, prefixes) -> list[str]:
    return [c for c in runs.columns if c.startswith(prefixes) and c != "eval_checkpoint" and c != "ood_set"]


def _paper_value(paper: pd.DataFrame, table: str, cell: pd.Series, metric: str) -> float:
    rows = paper[
        (paper["table"] == table)
        & (paper["metric"] == metric)
        & (paper["dataset"] == cell["dataset"])
        & (paper["model"] == cell["model"])
        & (paper["regime"] == cell["regime"])
        & (paper["points"] == cell["points"])
    ]
    alpha = cell["alpha"]
    rows = rows[rows["alpha"].isna() | (False if pd.isna(alpha) else (rows["alpha"] - alpha).abs() < 1e-9)]
    return float(rows["value"].iloc[0]) if len(rows) else math.nan


def eval_table(runs: pd.DataFrame, kind: str, paper: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """(numbers, formatted) for one kind of evaluation, or None when no run has those columns."""
    paper_id, prefixes = kinds()[kind]
    columns = _columns(runs, prefixes)
    evaluated = runs.dropna(subset=columns, how="all") if columns else runs.iloc[0:0]
    if evaluated.empty:
        return None
    numbers, pretty = [], []
    all_cells = cells(evaluated)
    keys = varying(all_cells)
    for each in all_cells:
        group = each.runs
        cell = pd.Series(identity(each))
        row = {**cell.to_dict(), **{column_name(k): each.settings.get(k) for k in keys}, "seeds": len(group)}
        shown = {column: show(row[column]) for column in [*IDENTITY, *(column_name(k) for k in keys)]}
        shown["seeds"] = len(group)
        if kind == "ood":
            shown["OOD set"] = ", ".join(sorted(group["ood_set"].dropna().unique()))
        for column in columns:
            values = group[column].dropna()
            mean = values.mean() if len(values) else math.nan
            std = values.std(ddof=1) if len(values) > 1 else math.nan
            row[f"{column}_mean"], row[f"{column}_std"] = mean, std
            decimals = eval_columns()[column][1] if column.startswith("eval_") else 2 if "ood" not in column else 4
            shown[_label(column)] = _mean_std(mean, std, decimals)
            if 0 < len(values) < len(group):  # e.g. no temperature where a run's validation split was separable
                shown[_label(column)] += f" ({len(values)} of {len(group)} seeds)"
        if paper_id == "7":
            value = _paper_value(paper, "7", cell, "fgsm_acc")
            row["paper_fgsm_acc"] = value
            shown["paper FGSM (ε not stated)"] = "–" if math.isnan(value) else f"{value:.2f}"
        if paper_id == "4":
            for column in columns:
                name = column.removeprefix("deform_")
                value = _paper_value(paper, "4", cell, f"{name}_acc")
                if not math.isnan(value):
                    row[f"paper_{name}_acc"] = value
                    shown[f"paper {deformation_words(name)}"] = f"{value:.2f}"
        numbers.append(row)
        pretty.append(shown)
    return pd.DataFrame(numbers), pd.DataFrame(pretty).fillna("–")


def deformation_words(name: str) -> str:
    """``zoomin60`` as ``zoom-in 60%``, ``rotation20`` as ``rotation ±20°``, ``shear28.6`` as ``shear ±28.6°``."""
    match = re.fullmatch(r"(rotation|shear|zoomin|zoomout)([\d.]+)", name)
    if not match:
        return name
    kind, value = match.groups()
    return {
        "rotation": f"rotation ±{value}°",
        "shear": f"shear ±{value}°",
        "zoomin": f"zoom-in {value}%",
        "zoomout": f"zoom-out {value}%",
    }[kind]


def _label(column: str) -> str:
    if column.startswith("eval_"):
        return eval_columns()[column][0]
    if column.startswith(("fgsm_", "pgd_")):
        attack, eps = column.split("_", 1)
        return f"{attack.upper()} ε={eps} acc %"
    if column.startswith("deform_"):
        return deformation_words(column.removeprefix("deform_"))
    _, score, metric = column.split("_")
    return f"{score.upper() if score == 'msp' else score} {'AUROC' if metric == 'auroc' else 'FPR@95%TPR'}"


CAPTIONS = {
    "calibration": "Test accuracy, NLL, ECE (15 bins) and Brier score of the evaluated checkpoint, and, for runs "
    "with a validation split, the temperature T fitted on it (Guo et al. 2017) and the test NLL, ECE and Brier score "
    "of the logits divided by T (accuracy does not change)",
    "fgsm": "Accuracy (%) under white-box FGSM (and PGD) at each ε in pixel units; paper: Table 7",
    "deformations": "Accuracy (%) on deformed test images (rotation/shear U(±d°), zoom by 100/p); paper: Table 4",
    "ood": "Out-of-distribution detection: AUROC and FPR at 95% TPR of the max softmax (MSP) and energy scores",
}


def write_eval_tables(runs: pd.DataFrame, out: Path) -> list[Path]:
    paper = paper_numbers()
    written = []
    for kind in kinds():
        tables = eval_table(runs, kind, paper)
        if tables is None:
            continue
        numbers, pretty = tables
        text = f"mmx eval, {kind}: {CAPTIONS[kind]}; mean ± sample std over distinct seeds."
        csv_path, md_path = out / f"eval_{kind}.csv", out / f"eval_{kind}.md"
        write_text(csv_path, numbers.to_csv(index=False, float_format="%.6g"))
        write_text(md_path, f"{text}\n\n{to_markdown(pretty, [c for c in pretty.columns if c in numbers.columns])}")
        written += [csv_path, md_path]
    return written
