"""Tabulate and plot the mixing-family study (``make family-results``) from its trained and evaluated runs.

Every run holds out a validation split, which chooses its best epoch; ``mmx eval`` scores that checkpoint and fits
one temperature T on the same split. Per labelled set (the whole one, or a few images per class) and mixing method:
mean ± std over seeds of the test error, the NLL raw and at T, the ECE at T and the accuracy under FGSM at one
epsilon. Then each method against manifold mixup: the difference of the means, its standard error and t
(:mod:`mmx.report.studies`); |t| < 2 is called noise.

Writes ``family.csv`` (cells), ``family_differences.csv``, ``family.md`` (both, as tables) and ``family.png``
(every seed of every method on each metric, with the cell's mean).

Usage: python scripts/family_study.py RUNS_DIR --out OUT [--seconds S]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from mmx.errors import UserError  # noqa: E402
from mmx.report.cells import regime_order  # noqa: E402
from mmx.report.studies import counted_runs, verdict, welch  # noqa: E402

BASELINE = "manifold"
PARTS = ("mean", "std", "n")


def metrics(epsilon: str) -> dict[str, tuple[str, str, int]]:
    """column of the runs table -> (the study's name, its heading, decimals shown)."""
    return {
        "best_error": ("error", "error %", 2),
        "eval_nll": ("nll", "NLL", 3),
        "eval_temperature": ("T", "T", 2),
        "eval_nll_scaled": ("nll_T", "NLL at T", 3),
        "eval_ece_scaled": ("ece_T", "ECE at T", 3),
        f"fgsm_{epsilon}": ("fgsm", f"FGSM ε={epsilon} acc %", 1),
    }


def fgsm_epsilon(run: pd.Series) -> str:
    """The one FGSM epsilon the runs were attacked at (a column ``fgsm_<epsilon>`` of the runs table)."""
    attacked = sorted(c for c in run.index if c.startswith("fgsm_") and not pd.isna(run[c]))
    if len(attacked) != 1:
        raise UserError(f"{run['run_dir']} was attacked at {len(attacked)} FGSM epsilons; the study needs one")
    return attacked[0].removeprefix("fgsm_")


def run_table(runs_dir: Path) -> tuple[pd.DataFrame, str]:
    """One row per counted run (a seed's first run of each cell), refused unless each finished, chose its best
    epoch on validation and was evaluated on that checkpoint with a fitted temperature; and the FGSM epsilon."""
    rows, epsilon = [], None
    for cell, run in counted_runs(runs_dir, "best", "family-results"):
        if epsilon is None:
            epsilon = fgsm_epsilon(run)
        labels = cell.settings.get("dataset.labels_per_class")
        rows.append(
            {
                "dataset": run["dataset"],
                "labels": "all" if labels is None else str(int(labels)),
                "method": run["regime"],
                "seed": int(run["seed"]),
                "best_epoch": int(run["best_epoch"]),
                "cell": run["cell"],
                "run_dir": run["run_dir"],
                **{name: float(run.get(column, math.nan)) for column, (name, _, _) in metrics(epsilon).items()},
            }
        )
    table = pd.DataFrame(rows)
    where = ["dataset", "labels", "method"]
    clash = table.groupby(where)["cell"].nunique()
    if (clash > 1).any():
        place = ", ".join(f"{k}={v}" for k, v in zip(where, clash[clash > 1].index[0]))
        raise UserError(f"runs of {place} differ in other settings too (width, alpha, ...); keep one study per folder")
    return table, epsilon


def summarise(runs: pd.DataFrame, epsilon: str) -> pd.DataFrame:
    """Mean, std and count over seeds per (dataset, labelled set, method)."""
    grouped = runs.groupby(["dataset", "labels", "method"])
    out = grouped["seed"].nunique().rename("seeds").to_frame()
    for name, _, _ in metrics(epsilon).values():
        out[f"{name}_mean"] = grouped[name].mean()
        out[f"{name}_std"] = grouped[name].std(ddof=1)
        out[f"{name}_n"] = grouped[name].count()
    return out.reset_index()


def differences(table: pd.DataFrame, epsilon: str) -> pd.DataFrame:
    """Each method minus manifold mixup, per labelled set and metric, with the standard error and t."""
    rows = []
    compared = [name for name, _, _ in metrics(epsilon).values() if name != "T"]
    for (dataset, labels), group in sorted(table.groupby(["dataset", "labels"]), key=_whole_set_first):
        by_method = group.set_index("method")
        if BASELINE not in by_method.index:
            continue
        base = by_method.loc[BASELINE]
        for method in sorted(by_method.index, key=regime_order):
            if method == BASELINE:
                continue
            row = {"dataset": dataset, "labels": labels, "method": method}
            for metric in compared:
                cell = by_method.loc[method]
                diff, se, t = welch(*(c[f"{metric}_{part}"] for c in (cell, base) for part in PARTS))
                row |= {f"{metric}_diff": diff, f"{metric}_se": se, f"{metric}_t": t}
            rows.append(row)
    return pd.DataFrame(rows)


def _whole_set_first(item) -> tuple:
    (dataset, labels), _ = item
    return dataset, labels != "all", labels


def markdown(table: pd.DataFrame, diffs: pd.DataFrame, epsilon: str, seconds: float | None) -> str:
    shown = metrics(epsilon)
    lines = [
        "# The mixing-family study (make family-results)",
        "",
        "Test numbers of each run's best epoch, chosen on its validation split (never the test set), mean ± std over "
        "seeds. T is the temperature `mmx eval` fitted on the same split; NLL and ECE at T are the test NLL and ECE "
        f"after dividing the logits by it. FGSM: test accuracy under an FGSM attack of ε = {epsilon} (pixels in "
        "[0, 1]). Labels: the training images of each class (all: the 3,500 the validation split leaves), every run "
        "trained for the same 525 steps. Small-data CPU results on mnist5k, not CIFAR's.",
    ]
    if seconds is not None:
        lines += ["", f"Measured time of `make family-results`: {seconds / 60:.1f} minutes."]
    for (dataset, labels), group in sorted(table.groupby(["dataset", "labels"]), key=_whole_set_first):
        lines += ["", f"## {dataset}, {labels} labelled images per class", ""]
        lines += ["| method | seeds | " + " | ".join(heading for _, heading, _ in shown.values()) + " |"]
        lines += ["|---|---:|" + "---:|" * len(shown)]
        for _, row in group.sort_values("method", key=lambda c: c.map(regime_order)).iterrows():
            numbers = " | ".join(
                f"{row[f'{name}_mean']:.{digits}f} ± {row[f'{name}_std']:.{digits}f}"
                + ("" if row[f"{name}_n"] == row["seeds"] else f" ({int(row[f'{name}_n'])} of {row['seeds']})")
                for name, _, digits in shown.values()
            )
            lines.append(f"| {row['method']} | {row['seeds']} | {numbers} |")
    compared = [(name, heading, digits) for name, heading, digits in shown.values() if name != "T"]
    lines += [
        "",
        f"## Each method minus {BASELINE} mixup",
        "",
        f"Difference of the means (method − {BASELINE}) ± its standard error, and t = difference / standard error; "
        '"noise" where |t| < 2. Lower is better for error, NLL and ECE; higher for FGSM accuracy.',
        "",
        "| dataset | labels | method | " + " | ".join(f"Δ {heading}" for _, heading, _ in compared) + " |",
        "|---|---|---|" + "---:|" * len(compared),
    ]
    for _, row in diffs.iterrows():
        cells_text = [
            f"{row[f'{name}_diff']:+.{digits}f} ± {row[f'{name}_se']:.{digits}f} "
            f"(t = {row[f'{name}_t']:+.1f}, {verdict(row[f'{name}_t'])})"
            for name, _, digits in compared
        ]
        lines.append(f"| {row['dataset']} | {row['labels']} | {row['method']} | " + " | ".join(cells_text) + " |")
    return "\n".join(lines) + "\n"


def figure(runs: pd.DataFrame, epsilon: str, path: Path) -> None:
    """A row per labelled set, a panel per metric: every seed as a dot, the mean as a bar, methods in table order."""
    shown = [(name, heading) for name, heading, _ in metrics(epsilon).values() if name != "T"]
    sets = sorted(runs["labels"].unique(), key=lambda labels: labels != "all")
    methods = sorted(runs["method"].unique(), key=regime_order)
    fig, axes = plt.subplots(len(sets), len(shown), figsize=(3.3 * len(shown), 3.4 * len(sets)), squeeze=False)
    for r, labels in enumerate(sets):
        for c, (metric, heading) in enumerate(shown):
            ax = axes[r][c]
            for i, method in enumerate(methods):
                values = runs[(runs["labels"] == labels) & (runs["method"] == method)][metric].dropna()
                color = "tab:red" if method == BASELINE else "tab:blue"
                ax.bar(i, values.mean(), color=color, alpha=0.25, width=0.7)
                ax.plot([i] * len(values), values, "o", color=color, ms=3)
            ax.set_xticks(range(len(methods)), labels=methods, rotation=60, ha="right", fontsize=8)
            ax.set_title(f"{heading} ({labels} per class)", fontsize=9)
            ax.grid(True, axis="y", alpha=0.3)
            low = runs[runs["labels"] == labels][metric].min()
            high = runs[runs["labels"] == labels][metric].max()
            ax.set_ylim(max(0.0, low - 0.15 * (high - low)), high + 0.1 * (high - low))
    fig.suptitle(
        f"The mixing family on mnist5k: each seed (dots) and the mean (bar) at the best epoch chosen on validation; "
        f"{BASELINE} in red"
    )
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
        runs, epsilon = run_table(args.runs)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    table = summarise(runs, epsilon)
    diffs = differences(table, epsilon)
    table.to_csv(args.out / "family.csv", index=False, float_format="%.6g")
    diffs.to_csv(args.out / "family_differences.csv", index=False, float_format="%.6g")
    (args.out / "family.md").write_text(markdown(table, diffs, epsilon, args.seconds))
    figure(runs, epsilon, args.out / "family.png")
    print(f"wrote {args.out}/family.md, .csv, _differences.csv and .png ({runs['run_dir'].nunique()} runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
