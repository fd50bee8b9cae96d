"""What the studies' scripts share: their runs, checked before any is counted, and two cells' means compared as
the studies compare them (the difference, its standard error sqrt(s1²/n1 + s2²/n2) (Welch), and t = difference /
standard error; |t| < 2 is called noise)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterator

import pandas as pd

from mmx.errors import UserError
from mmx.report.cells import Cell, cells
from mmx.report.runs import collect

NOISE_T = 2.0


def welch(
    mean: float, std: float, n: int, base_mean: float, base_std: float, base_n: int
) -> tuple[float, float, float]:
    """(difference, standard error, t) of ``mean`` minus ``base_mean`` over seeds; t is NaN without any spread."""
    diff = mean - base_mean
    se = math.sqrt(std**2 / n + base_std**2 / base_n)
    return diff, se, diff / se if se > 0 else float("nan")


def verdict(t: float) -> str:
    """ "lower", "higher", or "noise" where |t| < 2 (or no spread to judge by)."""
    if math.isnan(t) or abs(t) < NOISE_T:
        return "noise"
    return "lower" if t < 0 else "higher"


def counted_runs(runs_dir: Path, checkpoint: str, target: str) -> Iterator[tuple[Cell, pd.Series]]:
    """Each cell's counted runs (a seed's first run) under ``runs_dir``, refused in one sentence unless every one
    finished, chose its best epoch on a validation split and was evaluated by ``mmx eval checkpoint=CHECKPOINT``
    (``target``: the make target that does all three)."""
    runs = collect([runs_dir])
    if runs.empty:
        raise UserError(f"{runs_dir} holds no runs; run make {target}")
    for cell in cells(runs):
        for _, run in cell.runs.iterrows():
            problem = (
                "is unfinished"
                if not run["finished"]
                else "has no validation split"
                if run["best_chosen_on"] != "validation"
                else f"was not evaluated on its {checkpoint} checkpoint"
                if run.get("eval_checkpoint") != checkpoint
                else None
            )
            if problem:
                raise UserError(
                    f"{run['run_dir']} {problem}; the study needs every run finished with dataset.val_size and "
                    f"evaluated by mmx eval checkpoint={checkpoint} (make {target} does both)"
                )
            yield cell, run
