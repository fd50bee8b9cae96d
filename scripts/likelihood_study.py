"""Tabulate and plot the likelihood study (``make likelihood-results``) from its trained and evaluated runs.

Every run holds out a validation split, trains to its last epoch, and is evaluated by ``mmx eval
checkpoint=last``, which fits one temperature T on the validation split. Per dataset, regime and condition
(training length on the full labelled set, or labelled images per class at the middle length's steps):
mean ± std over seeds of the final test error, NLL and ECE (what the paper reports) and of NLL and ECE at T.
Then each mixing regime against no mixing: the difference of the means, its standard error
sqrt(s1²/n1 + s2²/n2) and t, the difference over its standard error; |t| < 2 is called noise
(:mod:`mmx.report.studies`).

Writes ``likelihood.csv`` (cells), ``likelihood_differences.csv``, ``likelihood.md`` (both, as tables) and
``likelihood.png`` (NLL raw and at T against training length and labelled-set size, the median over seeds
with a band from the lowest to the highest seed).

Usage: python scripts/likelihood_study.py RUNS_DIR --out OUT [--seconds S]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from mmx.config import compose_train  # noqa: E402
from mmx.errors import UserError  # noqa: E402
from mmx.report.studies import counted_runs, verdict, welch  # noqa: E402
from mmx.run_dir import RunDir  # noqa: E402

REGIMES = ["none", "input", "manifold"]
METRICS = {  # column of the runs table: the study's name for it
    "final_error": "error",
    "final_nll": "nll",
    "final_ece": "ece",
    "eval_temperature": "T",
    "eval_nll_scaled": "nll_T",
    "eval_ece_scaled": "ece_T",
}
COMPARED = ["nll", "nll_T", "ece", "ece_T", "error"]
PARTS = ("mean", "std", "n")


def per_class_of_full_set(run_dir: str) -> float:
    """Training images per class of a run on the whole training set: what the validation split left."""
    run = RunDir(run_dir)
    cfg, summary = run.read_config(), run.read_summary()
    return (cfg.dataset.train_images - summary["validation"]["images"]) / cfg.dataset.num_classes


def middle_length(dataset: str) -> int:
    """The epochs of experiment=likelihood/DATASET, whose steps the labelled-set sizes are trained for."""
    return int(compose_train([f"experiment=likelihood/{dataset}"]).epochs)


def run_table(runs_dir: Path) -> pd.DataFrame:
    """One row per counted run (a seed's first run of each cell), refused unless each is finished, chose its
    best epoch on validation and was evaluated on its last checkpoint with a fitted temperature."""
    rows = []
    for cell, run in counted_runs(runs_dir, "last", "likelihood-results"):
        labels = cell.settings.get("dataset.labels_per_class")
        rows.append(
            {
                "dataset": run["dataset"],
                "regime": run["regime"],
                "epochs": int(run["epochs"]),
                "labels_per_class": float(labels) if labels is not None else per_class_of_full_set(run["run_dir"]),
                "full_set": labels is None,
                "seed": int(run["seed"]),
                "cell": run["cell"],
                "run_dir": run["run_dir"],
                # T and the numbers at T are NaN where the validation split was separable (no T minimises it)
                **{name: float(run.get(column, math.nan)) for column, name in METRICS.items()},
            }
        )
    table = pd.DataFrame(rows)
    where = ["dataset", "regime", "epochs", "labels_per_class"]
    clash = table.groupby(where)["cell"].nunique()
    if (clash > 1).any():
        place = ", ".join(f"{k}={v}" for k, v in zip(where, clash[clash > 1].index[0]))
        raise UserError(f"runs of {place} differ in other settings too (width, alpha, ...); keep one study per folder")
    return table


def conditions(table: pd.DataFrame) -> pd.DataFrame:
    """The runs under the two conditions: ``length`` (the full set at each length) and ``labels`` (each labelled
    set size at the middle length's steps, the full set included)."""
    full = table[table["full_set"]].assign(condition="length", value=lambda t: t["epochs"].astype(float))
    parts = [full]
    for dataset, group in table[~table["full_set"]].groupby("dataset"):
        middle = full[(full["dataset"] == dataset) & (full["epochs"] == middle_length(dataset))]
        parts.append(pd.concat([group, middle]).assign(condition="labels", value=lambda t: t["labels_per_class"]))
    return pd.concat(parts, ignore_index=True)


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean, std and count over seeds per (dataset, condition, value, regime); T and the numbers at T count only
    the seeds whose validation split gave a temperature."""
    keys = ["dataset", "condition", "value", "regime"]
    grouped = runs.groupby(keys)
    out = grouped["seed"].nunique().rename("seeds").to_frame()
    out["epochs"] = grouped["epochs"].first()
    for name in METRICS.values():
        out[f"{name}_mean"] = grouped[name].mean()
        out[f"{name}_std"] = grouped[name].std(ddof=1)
        out[f"{name}_n"] = grouped[name].count()
    return out.reset_index()


def differences(cells_table: pd.DataFrame) -> pd.DataFrame:
    """Each mixing regime minus no mixing, per condition and metric, with the standard error and t."""
    rows = []
    keys = ["dataset", "condition", "value"]
    for where, group in cells_table.groupby(keys):
        by_regime = group.set_index("regime")
        if "none" not in by_regime.index:
            continue
        base = by_regime.loc["none"]
        for regime in ("input", "manifold"):
            if regime not in by_regime.index:
                continue
            mixed = by_regime.loc[regime]
            row = dict(zip(keys, where), regime=regime)
            for metric in COMPARED:
                diff, se, t = welch(*(cell[f"{metric}_{part}"] for cell in (mixed, base) for part in PARTS))
                row |= {f"{metric}_diff": diff, f"{metric}_se": se, f"{metric}_t": t}
            rows.append(row)
    return pd.DataFrame(rows)


def value_label(condition: str, value: float) -> str:
    return f"{value:g}" if condition == "length" or value == int(value) else f"all ({value:.0f})"


def markdown(cells_table: pd.DataFrame, diffs: pd.DataFrame, seconds: float | None) -> str:
    lines = [
        "# The likelihood study (make likelihood-results)",
        "",
        "Final test numbers of the last epoch, mean ± std over seeds; T is the temperature `mmx eval` fitted on the "
        'run\'s validation split (never the test set), and "at T" the test NLL and ECE after dividing the logits '
        'by it; "(k of n)" where only k seeds\' validation splits held an error, without which no T minimises '
        "their NLL. Length: the whole labelled set (what the validation split leaves) trained for that many epochs. "
        "Labels: that many training images per class, trained for the steps of the middle length; the last labels "
        "row of each dataset is the whole labelled set, the very runs of the middle length's row (not more seeds).",
    ]
    if seconds is not None:
        lines += ["", f"Measured time of `make likelihood-results`: {seconds / 60:.1f} minutes."]
    shown = {"error": ("error %", 2), "nll": ("NLL", 3), "ece": ("ECE", 3), "T": ("T", 2)}
    shown |= {"nll_T": ("NLL at T", 3), "ece_T": ("ECE at T", 3)}
    for (dataset, condition), group in sorted(
        cells_table.groupby(["dataset", "condition"]), key=lambda item: (item[0][0], item[0][1] != "length")
    ):
        axis = "epochs" if condition == "length" else "labels per class"
        lines += ["", f"## {dataset}: {'training length' if condition == 'length' else 'labelled-set size'}", ""]
        lines += [f"| {axis} | regime | seeds | " + " | ".join(name for name, _ in shown.values()) + " |"]
        lines += ["|---:|---|---:|" + "---:|" * len(shown)]
        for _, row in group.sort_values(["value", "regime"], key=_regime_order).iterrows():
            numbers = " | ".join(_mean_std(row, m, d) for m, (_, d) in shown.items())
            lines.append(f"| {value_label(condition, row['value'])} | {row['regime']} | {row['seeds']} | {numbers} |")
    lines += [
        "",
        "## Mixing minus no mixing",
        "",
        "Difference of the means (mixing − none) ± its standard error, and t = difference / standard error; "
        '"noise" where |t| < 2. A negative NLL difference is the paper\'s claim (mixing lowers the NLL).',
        "",
        "| dataset | condition | value | regime | Δ NLL | Δ NLL at T | Δ ECE | Δ ECE at T | Δ error % |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for _, row in diffs.iterrows():
        cells_text = []
        for metric in COMPARED:
            digits = 2 if metric == "error" else 3
            t = row[f"{metric}_t"]
            cells_text.append(
                f"{row[f'{metric}_diff']:+.{digits}f} ± {row[f'{metric}_se']:.{digits}f} (t = {t:+.1f}, {verdict(t)})"
            )
        lines.append(
            f"| {row['dataset']} | {row['condition']} | {value_label(row['condition'], row['value'])} | "
            f"{row['regime']} | " + " | ".join(cells_text) + " |"
        )
    return "\n".join(lines) + "\n"


def _mean_std(row: pd.Series, metric: str, digits: int) -> str:
    text = f"{row[f'{metric}_mean']:.{digits}f} ± {row[f'{metric}_std']:.{digits}f}"
    count = int(row[f"{metric}_n"])
    return text if count == row["seeds"] else f"{text} ({count} of {row['seeds']})"


def _regime_order(column: pd.Series) -> pd.Series:
    return column.map(REGIMES.index) if column.name == "regime" else column


def figure(runs: pd.DataFrame, path: Path) -> None:
    """A row per dataset: NLL and NLL at T against training length, then against labelled images per class."""
    datasets = sorted(runs["dataset"].unique())
    panels = [
        ("length", "nll", "test NLL"),
        ("length", "nll_T", "test NLL at T (fitted on validation)"),
        ("labels", "nll", "test NLL"),
        ("labels", "nll_T", "test NLL at T (fitted on validation)"),
    ]
    fig, axes = plt.subplots(len(datasets), 4, figsize=(18, 4.2 * len(datasets)), squeeze=False)
    for r, dataset in enumerate(datasets):
        for c, (condition, metric, ylabel) in enumerate(panels):
            ax = axes[r][c]
            part = runs[(runs["dataset"] == dataset) & (runs["condition"] == condition)]
            for regime in REGIMES:
                stats = part[part["regime"] == regime].groupby("value")[metric].agg(["median", "min", "max", "count"])
                if stats.empty:
                    continue
                seeds = int(stats["count"].min())
                (line,) = ax.plot(stats.index, stats["median"], "-o", ms=4, label=f"{regime} (median of {seeds})")
                ax.fill_between(stats.index, stats["min"], stats["max"], color=line.get_color(), alpha=0.2)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.grid(True, which="both", alpha=0.3)
            ax.set_xlabel("epochs (whole labelled set)" if condition == "length" else "labelled images per class")
            ax.set_ylabel(ylabel)
            ax.set_title(f"{dataset}: {ylabel.split(' (')[0]}", fontsize=10)
            if not part.empty:
                ticks = sorted(part["value"].unique())
                ax.set_xticks(ticks, labels=[f"{t:g}" if t == int(t) else f"{t:.0f}" for t in ticks])
                ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        for pair in ((0, 1), (2, 3)):  # raw and scaled on the same scale, so the eye compares them
            low = min(axes[r][c].get_ylim()[0] for c in pair)
            high = max(axes[r][c].get_ylim()[1] for c in pair)
            for c in pair:
                axes[r][c].set_ylim(low, high)
    axes[0][0].legend(fontsize=8, title="band: lowest to highest seed", title_fontsize=8)
    fig.suptitle("Test NLL of the last epoch, before and after temperature scaling")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=None, help="the measured time of the make target")
    args = parser.parse_args(argv)
    try:
        runs = conditions(run_table(args.runs))
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    table = summarise(runs)
    diffs = differences(table)
    table.to_csv(args.out / "likelihood.csv", index=False, float_format="%.6g")
    diffs.to_csv(args.out / "likelihood_differences.csv", index=False, float_format="%.6g")
    (args.out / "likelihood.md").write_text(markdown(table, diffs, args.seconds))
    figure(runs, args.out / "likelihood.png")
    print(f"wrote {args.out}/likelihood.md, .csv, _differences.csv and .png ({runs['run_dir'].nunique()} runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
