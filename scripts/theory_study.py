"""Tabulate and plot the threshold study (``make theory-results``) from its trained runs.

For every run (the last checkpoint: the study asks about trained networks, not early-stopped ones):
the excess manifold mixup loss at the bottleneck (mmx/evaluation/excess.py) on mixtures of training
images and of test images, the same seeded mixtures for every run; the class-conditional spectrum's
rest-to-largest singular value ratio at the bottleneck (``mmx spectrum``); the final test error and
NLL. Per regime and bottleneck width: mean, std and min-max over seeds, in ``theory.csv``/``.md``,
and ``theory.png``: the excess loss against the width with d - 1 marked, the spectrum ratio beside.

Usage: python scripts/theory_study.py RUNS_DIR [--check CHECK_DIR] --out OUT
``--check`` holds runs of twice the length, for the table that says whether the excess loss had
stopped falling.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from mmx.evaluation import trained_run
from mmx.evaluation.excess import Mixtures, excess_mixup_loss
from mmx.figures.spectrum import class_spectra, representations, summarise
from mmx.run_dir import RunDir

POINT = 1  # the bottleneck
ALPHA = 2.0
SEEDS = {"train": 0, "test": 1}  # the mixtures' seeds: the same for every run


def measure(run_dir: Path) -> dict:
    run = trained_run.load(run_dir, "last", "cpu")
    summary = RunDir(run_dir).read_summary()
    splits = {
        "train": (run.data.train_images.float() / 255, run.data.train_labels),
        "test": run.test_pixels(),
    }
    row = {
        "run": run_dir.name,
        "regime": run.cfg.mixup.name,
        "width": int(run.cfg.model.bottleneck),
        "epochs": int(run.cfg.epochs),
        "seed": int(run.cfg.seed),
        "classes": run.data.num_classes,
        "test_error": summary["final"]["error"],
        "test_nll": summary["final"]["nll"],
    }
    for split, (images, labels) in splits.items():
        mixtures = Mixtures.draw(len(labels), ALPHA, draws=1, seed=SEEDS[split])
        loss = excess_mixup_loss(run.logits, images, labels, run.data.num_classes, POINT, mixtures)
        row[f"excess_{split}"] = loss["excess"]
    hidden, labels = representations(run, POINT)
    row["rest_over_largest"] = summarise(class_spectra(hidden, labels, run.data.num_classes))["rest_over_largest"]
    return row


def measure_all(root: Path) -> pd.DataFrame:
    runs = sorted(p.parent for p in root.rglob("summary.json"))
    if not runs:
        raise SystemExit(f"theory_study: no finished runs under {root}; run `make theory-results` first")
    return pd.DataFrame([measure(run) for run in runs])


METRICS = ["excess_train", "excess_test", "test_error", "test_nll", "rest_over_largest"]


def aggregate(rows: pd.DataFrame) -> pd.DataFrame:
    grouped = rows.groupby(["regime", "width"])
    table = grouped[METRICS].agg(["mean", "std", "min", "max"])
    table.columns = [f"{metric}_{stat}" for metric, stat in table.columns]
    table.insert(0, "seeds", grouped["seed"].nunique())
    table = table.reset_index()
    order = table["regime"].map({"none": 0, "input": 1, "manifold": 2})
    return table.assign(order=order).sort_values(["order", "width"]).drop(columns="order")


def markdown(table: pd.DataFrame) -> str:
    columns = ["excess, train mixtures", "excess, test mixtures", "test error %", "test NLL", "rest / largest"]
    lines = ["| regime | width | seeds | " + " | ".join(columns) + " |", "|---|---:|---:|" + "---:|" * len(columns)]
    for _, r in table.iterrows():
        cells = [f"{r[f'{m}_mean']:.4f} ± {r[f'{m}_std']:.4f}" for m in METRICS]
        lines.append(f"| {r['regime']} | {r['width']} | {r['seeds']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def stopped_falling(rows: pd.DataFrame, longer: pd.DataFrame, path: Path) -> str:
    """The excess loss of the same seed trained twice as long, beside the study's, as CSV and Markdown."""
    joined = longer.merge(rows, on=["regime", "width", "seed"], suffixes=("_long", ""))
    joined["change"] = joined["excess_train_long"] - joined["excess_train"]
    columns = ["regime", "width", "seed", "epochs", "epochs_long", "excess_train", "excess_train_long", "change"]
    joined = joined[columns].sort_values(["regime", "width"], ascending=[False, True])
    joined.to_csv(path, index=False)
    short, long = int(joined["epochs"].iloc[0]), int(joined["epochs_long"].iloc[0])
    lines = [
        "",
        f"Trained twice as long (seed 0): the excess loss on training mixtures after {short} and {long} epochs.",
        "",
        f"| regime | width | {short} epochs | {long} epochs | change |",
        "|---|---:|---:|---:|---:|",
    ]
    for _, r in joined.iterrows():
        lines.append(
            f"| {r['regime']} | {r['width']} | {r['excess_train']:.4f} | {r['excess_train_long']:.4f} "
            f"| {r['change']:+.4f} |"
        )
    return "\n".join(lines) + "\n"


def plot(table: pd.DataFrame, classes: int, path: Path) -> None:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for regime, part in table.groupby("regime", sort=False):
        for axis, metric in ((left, "excess_train"), (right, "rest_over_largest")):
            line = axis.plot(part["width"], part[f"{metric}_mean"], marker="o", markersize=3, label=regime)[0]
            axis.fill_between(
                part["width"], part[f"{metric}_min"], part[f"{metric}_max"], color=line.get_color(), alpha=0.2
            )
    for axis in (left, right):
        axis.axvline(classes - 1, color="grey", linestyle="--", linewidth=1, label=f"d - 1 = {classes - 1}")
        widths = sorted(table["width"].unique())
        axis.set(xscale="log", xlabel="bottleneck width (units)")
        axis.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        axis.set_xticks(widths, labels=[str(w) for w in widths])
        axis.legend(fontsize=8)
    left.set(yscale="log", ylabel="excess manifold mixup loss (nats)", title="on mixtures of training images")
    right.set(ylabel="rest / largest singular value", title="class-conditional spectrum at the bottleneck")
    figure.suptitle("mean over seeds; band: lowest to highest seed", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", type=Path)
    parser.add_argument("--check", type=Path, default=None, help="the same runs trained twice as long")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    rows = measure_all(args.runs)
    rows.to_csv(args.out / "theory_runs.csv", index=False)
    table = aggregate(rows)
    table.to_csv(args.out / "theory.csv", index=False)
    text = markdown(table)
    if args.check:
        text += stopped_falling(rows, measure_all(args.check), args.out / "theory_check.csv")
    (args.out / "theory.md").write_text(text)
    plot(table, int(rows["classes"].iloc[0]), args.out / "theory.png")
    print(text, end="")
    print(json.dumps({"wrote": [str(args.out / n) for n in ("theory.csv", "theory.md", "theory.png")]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
