"""Which runs are seeds of one another: a cell is every setting that can change a result, all but the seed.

A run's settings are its whole resolved config, flattened to dotted keys, without the settings
listed in ``NOT_RESULTS`` (paths, progress bars, the device's index, performance switches that
compute the same step) and with the precision it really trained in. Runs with equal settings form
a cell; within a cell each seed counts once (a repeated seed is reported, not averaged as another
seed), and the settings that differ between the cells of a table become its columns.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pandas as pd
from omegaconf import DictConfig

from mmx.settings import ADDED_SETTINGS, changes_results, flatten


def regime_order(name) -> tuple:
    """Where a mixing method's rows go: no mixing (the baseline) first, then the methods by name."""
    return (0, "") if name == "none" else (1, str(name))


# Dotted keys shown under a short name.
SHORT = {
    "dataset.name": "dataset",
    "model.name": "model",
    "mixup.name": "regime",
    "mixup.alpha": "alpha",
    "mixup.points": "points",
    "mixup.points_per_step": "K",
    "loss.name": "loss",
    "optim.lr": "lr",
}
IDENTITY = ("dataset", "model", "regime")  # always shown


def settings_of(cfg: DictConfig, precision: str | None) -> dict:
    """What makes a run's numbers what they are: ``cfg`` without ``NOT_RESULTS``, with the precision it used."""
    flat = {**ADDED_SETTINGS, **flatten(cfg)}
    kept = {k: v for k, v in flat.items() if changes_results(k)}
    kept = {k: v for k, v in kept.items() if not k.endswith("._target_") and not k.endswith("._partial_")}
    if kept.get("mixup.name") == "none":  # alpha and points mean nothing without mixing
        for key in ("mixup.alpha", "mixup.points", "mixup.points_per_step"):
            kept.pop(key, None)
    if kept.get("dataset.val_size") is None:  # which images a validation split holds means nothing without one
        kept.pop("dataset.val_seed", None)
    kept["precision"] = precision  # None until the first epoch's summary says what "auto" became
    return kept


def cell_key(settings: dict) -> str:
    return json.dumps(settings, sort_keys=True, default=str)


@dataclass
class Cell:
    """The runs of one cell, one per seed, and what was left out."""

    settings: dict
    runs: pd.DataFrame  # one row per distinct seed
    repeats: pd.DataFrame = field(default_factory=pd.DataFrame)  # further runs of a seed already counted

    def note(self) -> str:
        if self.repeats.empty:
            return ""
        seeds = ", ".join(str(s) for s in sorted(self.repeats["seed"].unique()))
        return f"{len(self.repeats)} repeated run(s) of seed {seeds} left out"


def cells(runs: pd.DataFrame) -> list[Cell]:
    """The cells of ``runs``, regimes in the order none, input, manifold. A seed's first run (by folder
    name) counts; a finished run is preferred to an unfinished one of the same seed."""
    out = []
    for _, group in _join_unknown_precision(runs).groupby("cell", sort=False):
        ordered = group.sort_values(["finished", "run_dir"], ascending=[False, True])
        first = ordered.drop_duplicates("seed")
        out.append(Cell(json.loads(group["cell"].iloc[0]), first.sort_values("seed"), ordered.drop(first.index)))
    return sorted(out, key=_order)


def _join_unknown_precision(runs: pd.DataFrame) -> pd.DataFrame:
    """A run stopped before its first summary has no known precision: it joins the one cell that agrees with it
    in every other setting (else it stays a cell of its own)."""

    def rest(key: str) -> str:
        settings = json.loads(key)
        settings.pop("precision", None)
        return cell_key(settings)

    runs = runs.copy()
    known = {}
    for key in runs["cell"].unique():
        if json.loads(key).get("precision") is not None:
            known.setdefault(rest(key), set()).add(key)
    for index, key in runs["cell"].items():
        if json.loads(key).get("precision") is None and len(known.get(rest(key), ())) == 1:
            runs.at[index, "cell"] = next(iter(known[rest(key)]))
    return runs


def _order(cell: Cell):
    """Dataset, model, regime (none, input, manifold), then every setting by key, numbers by value (5 before 10)."""
    s = cell.settings

    def value(v):
        return (0, v, "") if isinstance(v, (int, float)) and not isinstance(v, bool) else (1, 0, str(v))

    rest = tuple((k, value(s[k])) for k in sorted(s))
    return (str(s.get("dataset.name")), str(s.get("model.name")), regime_order(s.get("mixup.name")), rest)


def known_values(all_cells: list[Cell], key: str) -> set[str]:
    """The values the cells have for ``key``, as text; a precision not known yet (a run in its first epoch, before its
    first summary says what "auto" became) is none of them."""
    values = {json.dumps(c.settings.get(key), default=str) for c in all_cells}
    return values - {"null"} if key == "precision" else values


def varying(all_cells: list[Cell]) -> list[str]:
    """The settings that differ between cells (their columns), after the identity ones."""
    keys = sorted({k for c in all_cells for k in c.settings})
    differ = [k for k in keys if len(known_values(all_cells, k)) > 1]
    # A setting added since the paper (K) varies only where some cell leaves its old value, not where it
    # is merely absent (runs without mixing have no K).
    differ = [
        k
        for k in differ
        if k not in ADDED_SETTINGS or any(c.settings.get(k, ADDED_SETTINGS[k]) != ADDED_SETTINGS[k] for c in all_cells)
    ]
    return [k for k in differ if SHORT.get(k) not in IDENTITY]


def column_name(key: str) -> str:
    return SHORT.get(key, key)


def show(value) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)) or value == "":
        return "–"
    return f"{value:g}" if isinstance(value, float) else str(value)


def identity(cell: Cell) -> dict:
    """The columns every table has, and those the paper's numbers are matched on."""
    s = cell.settings
    regime = s.get("mixup.name")
    return {
        "dataset": s.get("dataset.name"),
        "model": s.get("model.name"),
        "regime": regime,
        "alpha": s.get("mixup.alpha") if regime != "none" else None,
        "points": s.get("mixup.points", "") if regime != "none" else "",
    }
