"""Tabulate and plot the threshold study (``make theory-results``) from its trained runs.

For every run (the last checkpoint: the study asks about trained networks, not early-stopped ones):
the excess manifold mixup loss at the bottleneck (mmx/evaluation/excess.py) on mixtures of training
images and of test images, the same seeded mixtures for every run; the class-conditional spectrum's
rest-to-largest singular value ratio at the bottleneck (``mmx spectrum``); the final test error and
NLL. For networks whose head on the bottleneck is linear, also the least excess any such network can
reach at that width (``affine_floor``: the theory's prediction, with no training in it).

Per number of classes d, head, regime and bottleneck width: mean, std and min-max over seeds, in
``theory.csv``/``.md``, and ``theory.png``: the excess loss against the width with d - 1 and the floor
marked, for all ten digits and for the class subsets, and the spectrum ratio.

Usage: python scripts/theory_study.py RUNS_DIR [--check CHECK_DIR] --out OUT
``--check`` holds runs of twice the length, for the table that says whether the excess loss had
stopped falling. ``--replot OUT`` draws ``theory.png`` again from the measured ``theory_runs.csv``
in OUT (the runs' checkpoints are not kept), and checks that they still give OUT's ``theory.csv``.
"""

from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path

import pandas as pd
import torch

from mmx.evaluation import trained_run
from mmx.evaluation.excess import Mixtures, affine_floor, excess_mixup_loss
from mmx.figures.spectrum import class_spectra, representations, summarise
from mmx.run_dir import RunDir

POINT = 1  # the bottleneck
ALPHA = 2.0
SEEDS = {"train": 0, "test": 1}  # the mixtures' seeds: the same for every run
GROUP = ["classes", "head", "regime", "width"]


def head_name(after: int) -> str:
    return "linear" if after == 0 else f"{after} hidden layers"


@functools.lru_cache(maxsize=None)
def floor(frequencies: tuple[int, ...], width: int) -> float:
    return affine_floor(torch.tensor(frequencies, dtype=torch.float64), width, ALPHA)


def measure(run_dir: Path) -> dict:
    run = trained_run.load(run_dir, "last", "cpu")
    summary = RunDir(run_dir).read_summary()
    splits = {
        "train": (run.data.train_images.float() / 255, run.data.train_labels),
        "test": run.test_pixels(),
    }
    after = int(run.cfg.model.after)
    row = {
        "run": run_dir.name,
        "classes": run.data.num_classes,
        "head": head_name(after),
        "regime": run.cfg.mixup.name,
        "width": int(run.cfg.model.bottleneck),
        "epochs": int(run.cfg.epochs),
        "seed": int(run.cfg.seed),
        "test_error": summary["final"]["error"],
        "test_nll": summary["final"]["nll"],
    }
    for split, (images, labels) in splits.items():
        mixtures = Mixtures.draw(len(labels), ALPHA, draws=1, seed=SEEDS[split])
        loss = excess_mixup_loss(run.logits, images, labels, run.data.num_classes, POINT, mixtures)
        row[f"excess_{split}"] = loss["excess"]
    frequencies = tuple(torch.bincount(run.data.train_labels.cpu(), minlength=run.data.num_classes).tolist())
    row["floor"] = floor(frequencies, row["width"]) if after == 0 else float("nan")
    hidden, labels = representations(run, POINT)
    row["rest_over_largest"] = summarise(class_spectra(hidden, labels, run.data.num_classes))["rest_over_largest"]
    return row


def measure_all(root: Path) -> pd.DataFrame:
    runs = sorted(p.parent for p in root.rglob("summary.json"))
    if not runs:
        raise SystemExit(f"theory_study: no finished runs under {root}; run `make theory-results` first")
    return pd.DataFrame([measure(run) for run in runs])


METRICS = ["excess_train", "excess_test", "test_error", "test_nll", "rest_over_largest"]
ORDER = {"none": 0, "input": 1, "manifold": 2}


def aggregate(rows: pd.DataFrame) -> pd.DataFrame:
    grouped = rows.groupby(GROUP)
    table = grouped[METRICS].agg(["mean", "std", "min", "max"])
    table.columns = [f"{metric}_{stat}" for metric, stat in table.columns]
    table.insert(0, "seeds", grouped["seed"].nunique())
    table.insert(1, "floor", grouped["floor"].first())
    table = table.reset_index()
    order = table["regime"].map(ORDER)
    table = table.assign(order=order).sort_values(
        ["classes", "head", "order", "width"], ascending=[False, True, True, True]
    )
    return table.drop(columns="order")


def markdown(table: pd.DataFrame) -> str:
    columns = ["floor", "excess, train mixtures", "excess, test mixtures", "test error %", "test NLL", "rest / largest"]
    lines = [
        "| d | head | regime | width | seeds | " + " | ".join(columns) + " |",
        "|---:|---|---|---:|---:|" + "---:|" * len(columns),
    ]
    for _, r in table.iterrows():
        cells = ["–" if pd.isna(r["floor"]) else f"{r['floor']:.4f}"]
        cells += [f"{r[f'{m}_mean']:.4f} ± {r[f'{m}_std']:.4f}" for m in METRICS]
        lines.append(
            f"| {r['classes']} | {r['head']} | {r['regime']} | {r['width']} | {r['seeds']} | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines) + "\n"


def stopped_falling(rows: pd.DataFrame, longer: pd.DataFrame, path: Path) -> str:
    """The excess loss of the same seed trained twice as long, beside the study's, as CSV and Markdown; for a
    linear head also the share of the gap to its floor that the doubling closed."""
    joined = longer.merge(rows, on=[*GROUP, "seed"], suffixes=("_long", ""))
    joined["change"] = joined["excess_train_long"] - joined["excess_train"]
    joined["gap_closed"] = -joined["change"] / (joined["excess_train"] - joined["floor"])
    columns = [*GROUP, "seed", "floor", "epochs", "excess_train", "epochs_long", "excess_train_long", "change"]
    joined = joined[[*columns, "gap_closed"]].sort_values(["classes", "head", "regime", "width"])
    joined.to_csv(path, index=False)
    lines = [
        "",
        "Trained twice as long (seed 0): the excess loss on training mixtures, and for a linear head the share of",
        "its distance to the floor that the doubling closed.",
        "",
        "| d | head | regime | width | floor | epochs | excess | epochs | excess | change | gap closed |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for _, r in joined.iterrows():
        bound = "–" if pd.isna(r["floor"]) else f"{r['floor']:.4f}"
        closed = "–" if pd.isna(r["gap_closed"]) else f"{r['gap_closed']:.0%}"
        lines.append(
            f"| {r['classes']} | {r['head']} | {r['regime']} | {r['width']} | {bound} | {r['epochs']} "
            f"| {r['excess_train']:.4f} | {r['epochs_long']} | {r['excess_train_long']:.4f} | {r['change']:+.4f} "
            f"| {closed} |"
        )
    return "\n".join(lines) + "\n"


def _band(axis, part, metric: str, label: str, **style):
    line = axis.plot(part["width"], part[f"{metric}_mean"], marker="o", markersize=3, label=label, **style)[0]
    axis.fill_between(part["width"], part[f"{metric}_min"], part[f"{metric}_max"], color=line.get_color(), alpha=0.2)
    return line


def spaced_labels(widths, first=(), ratio: float = 1.25) -> list[str]:
    """A label for each width on a log axis, left blank where it would touch a labelled neighbour (closer than
    ``ratio``); the widths in ``first`` (d - 1) are labelled before the others, then the ends, then the rest."""
    widths = sorted(widths)
    labelled: list = []
    for width in [*(w for w in first if w in widths), widths[0], widths[-1], *widths]:
        if all(max(width, w) / min(width, w) >= ratio for w in labelled):
            labelled.append(width)
    return [str(w) if w in labelled else "" for w in widths]


def _width_axis(axis, widths, first=()) -> None:
    import matplotlib.ticker

    axis.set(xscale="log", xlabel="bottleneck width (units)")
    axis.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    axis.set_xticks(widths, labels=spaced_labels(widths, first))


def plot(table: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    most = int(table["classes"].max())
    full, subsets = table[table["classes"] == most], table[table["classes"] < most]
    panels = 3 if not subsets.empty else 2
    figure, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4.3))
    left, right = axes[0], axes[-1]
    for (head, regime), part in full.groupby(["head", "regime"], sort=False):
        line = _band(left, part, "excess_train", f"{regime}, {head} head")
        _band(right, part, "rest_over_largest", f"{regime}, {head} head", color=line.get_color())
        if part["floor"].notna().all():
            left.plot(part["width"], part["floor"], linestyle=":", color=line.get_color(), label="floor, linear head")
    left.set_title(f"d = {most} classes: on mixtures of training images")
    if not subsets.empty:
        middle = axes[1]
        for classes, part in subsets.groupby("classes"):
            for (head, regime), cell in part.groupby(["head", "regime"], sort=False):
                line = _band(middle, cell, "excess_train", f"d = {classes}: {regime}, {head} head")
                if cell["floor"].notna().all():
                    middle.plot(cell["width"], cell["floor"], linestyle=":", color=line.get_color())
                middle.axvline(classes - 1, color=line.get_color(), linestyle="--", linewidth=1)
        middle.set_title("class subsets (dotted: floor; dashed: d - 1)")
        middle.set(yscale="log", ylabel="excess manifold mixup loss (nats)")
        _width_axis(middle, sorted(subsets["width"].unique()), [c - 1 for c in subsets["classes"].unique()])
        middle.legend(fontsize=7)
    for axis in (left, right):
        axis.axvline(most - 1, color="grey", linestyle="--", linewidth=1, label=f"d - 1 = {most - 1}")
        _width_axis(axis, sorted(full["width"].unique()), [most - 1])
        axis.legend(fontsize=7)
    left.set(yscale="log", ylabel="excess manifold mixup loss (nats)")
    right.set(ylabel="rest / largest singular value", title=f"d = {most}: class-conditional spectrum")
    figure.suptitle(
        "mean over seeds; band: lowest to highest seed; floor: the least any linear head can reach", fontsize=9
    )
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", type=Path, nargs="?")
    parser.add_argument("--check", type=Path, default=None, help="the same runs trained twice as long")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--replot", type=Path, default=None, help="a folder this script wrote: draw its figure again")
    args = parser.parse_args()
    if args.replot:
        return replot(args.replot)
    if not (args.runs and args.out):
        parser.error("give RUNS_DIR and --out (or --replot OUT)")
    args.out.mkdir(parents=True, exist_ok=True)

    rows = measure_all(args.runs)
    rows.to_csv(args.out / "theory_runs.csv", index=False)
    table = aggregate(rows)
    table.to_csv(args.out / "theory.csv", index=False)
    text = markdown(table)
    if args.check:
        text += stopped_falling(rows, measure_all(args.check), args.out / "theory_check.csv")
    (args.out / "theory.md").write_text(text)
    plot(table, args.out / "theory.png")
    print(text, end="")
    print(json.dumps({"wrote": [str(args.out / n) for n in ("theory.csv", "theory.md", "theory.png")]}))
    return 0


def replot(out: Path) -> int:
    """theory.png from theory_runs.csv, once the table made from those rows is checked to be theory.csv."""
    rows = pd.read_csv(out / "theory_runs.csv")
    table = aggregate(rows)
    committed = pd.read_csv(out / "theory.csv")
    try:
        pd.testing.assert_frame_equal(table.reset_index(drop=True), committed, check_dtype=False, rtol=1e-12)
    except AssertionError as error:
        first = str(error).strip().splitlines()[0]
        raise SystemExit(f"theory_study: {out}/theory_runs.csv no longer gives its theory.csv ({first}); nothing drawn")
    plot(table, out / "theory.png")
    print(json.dumps({"wrote": [str(out / "theory.png")], "from": str(out / "theory_runs.csv")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
