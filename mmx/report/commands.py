"""``mmx tables`` and ``mmx plot``: argument parsing and what they print."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from mmx.errors import UserError
from mmx.files import check_writable


def _runs(parser: argparse.ArgumentParser, argv: list[str]):
    parser.add_argument("runs", nargs="*", default=["runs"], help="folders to scan for run directories")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    from mmx.report.runs import collect

    try:
        runs = collect([Path(p) for p in args.runs])
    except FileNotFoundError as error:
        raise UserError(f"{error.args[0]} does not exist; pass the folders that hold your runs") from None
    if runs.empty:
        raise UserError(f"no runs under {', '.join(args.runs)}; train some with `mmx train` first")
    return args, runs


def tables_main(argv: list[str]) -> int:
    from mmx.report.eval_tables import write_eval_tables
    from mmx.report.tables import brief, write_tables

    def options(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--brief", action="store_true", help="print one line per run on the console instead of writing files"
        )

    return _command(
        argv,
        "mmx tables",
        "Tabulate runs: mean ± std over seeds per cell, the paper's numbers beside ours, as CSV, Markdown and LaTeX.",
        "results",
        lambda runs, out, args: write_tables(runs, out) + write_eval_tables(runs, out),
        options,
        console=lambda runs, args: brief(runs) if args.brief else None,
    )


def plot_main(argv: list[str]) -> int:
    from mmx.report.plots import write_plots

    def options(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--against",
            action="append",
            default=[],
            metavar="KEY",
            help="also plot the final test error and NLL against this swept setting (e.g. "
            "dataset.labels_per_class, K, mixup.points), one line per combination of the others; repeatable",
        )

    return _command(
        argv,
        "mmx plot",
        "Figures of runs: test error and NLL per epoch (median and range over seeds), error against alpha, "
        "and, with --against, final error and NLL against any swept setting, as PNG.",
        "results/figures",
        lambda runs, out, args: write_plots(runs, out, args.against),
        options,
    )


def _command(argv: list[str], prog: str, description: str, default_out: str, write, options=None, console=None) -> int:
    """Parse ``RUN_DIRS... --out OUT`` (and the ``options`` a command adds), collect the runs,
    ``write(runs, out, args)``, and show what was written; or print ``console(runs, args)`` instead when it gives text
    (``mmx tables --brief``)."""
    parser = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--out", default=default_out, help="where to write")
    if options:
        options(parser)
    args, runs = _runs(parser, argv)
    text = console(runs, args) if console else None
    if text is not None:
        print(text)
        return 0
    check_writable(Path(args.out), "--out")
    for path in write(runs, Path(args.out), args):
        print(f"== {path}\n{path.read_text()}" if path.suffix == ".md" else f"wrote {path}")
    return 0
