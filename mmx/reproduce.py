"""``mmx reproduce TABLE``: every cell of a paper table times every seed, as one Hydra multirun."""

from __future__ import annotations

import argparse
import shlex
from importlib import resources

from mmx.checks import positive_number
from mmx.config import compose_train
from mmx.errors import UserError
from mmx.flops import TRAIN_STEP_FORWARDS, forward_flops
from mmx.mixing import method_class

# Training images per dataset, to estimate cost without loading the data.
DEFAULT_TFLOPS = 30.0


def paper_tables() -> list[str]:
    return sorted(
        p.name
        for p in resources.files("mmx.configs").joinpath("experiment/paper").iterdir()
        if p.is_dir() and not p.name.startswith("_")
    )


def recipes(table: str) -> list[str]:
    folder = resources.files("mmx.configs").joinpath(f"experiment/paper/{table}")
    if table not in paper_tables():
        raise UserError(f"no paper table {table!r}; choose one of {', '.join(paper_tables())}")
    return sorted(f"paper/{table}/{p.name[:-5]}" for p in folder.iterdir() if p.name.endswith(".yaml"))


def estimate(experiments: list[str], overrides: list[str], seeds: int, tflops: float) -> str:
    """One line per recipe with its GPU-hours at ``tflops`` sustained, and the total."""
    lines = [f"{'recipe':<58} {'epochs':>6} {'GFLOP/img':>9} {'GPU-h/seed':>10}"]
    total = 0.0
    for experiment in experiments:
        cfg = compose_train([f"experiment={experiment}", *overrides])
        data = cfg.dataset  # the release's facts: no data is loaded for an estimate
        images = data.train_images
        if data.labels_per_class:  # an upper bound: classes smaller than the cap keep fewer
            images = min(images, data.labels_per_class * data.num_classes)
        flops = forward_flops(cfg.model, data.num_classes, (data.channels, data.image_size, data.image_size))
        passes = method_class(cfg.mixup).forward_passes  # regmixup: each image twice through the network
        hours = cfg.epochs * images * TRAIN_STEP_FORWARDS * passes * flops / (tflops * 1e12) / 3600
        total += hours * seeds
        lines.append(f"{experiment:<58} {cfg.epochs:>6} {flops / 1e9:>9.3f} {hours:>10.1f}")
    lines.append(
        f"total for {len(experiments)} recipes x {seeds} seeds: about {total:,.0f} GPU-hours, assuming "
        f"{tflops:g} TFLOP/s sustained per GPU (roughly an eager bf16 PreActResNet18 step at batch 100 on "
        f"an H100; pass --tflops with your measured rate)"
    )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="mmx reproduce",
        description="Run every cell of a paper table for every seed as one Hydra multirun "
        "(e.g. `mmx reproduce table1 seeds=5`). Extra KEY=VALUE overrides apply to every run, "
        "e.g. recipe=public_code, smoke=on, hydra/launcher=... .",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("table", help=f"one of: {', '.join(paper_tables())}")
    parser.add_argument("overrides", nargs="*", help="seeds=N (default 5) and Hydra overrides")
    parser.add_argument(
        "--tflops",
        type=positive_number,
        default=DEFAULT_TFLOPS,
        help="sustained training TFLOP/s per GPU for the estimate",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the estimate and the command, run nothing")
    args = parser.parse_args(argv)

    seeds = 5
    overrides = []
    for override in args.overrides:
        if override.startswith("seeds="):
            value = override.split("=", 1)[1]
            if not value.isdigit() or int(value) < 1:
                raise UserError(f"seeds={value} is not allowed: it must be a whole number of at least 1")
            seeds = int(value)
        else:
            overrides.append(override)
    experiments = recipes(args.table)
    print(estimate(experiments, overrides, seeds, args.tflops), flush=True)
    command = ["-m", f"experiment={','.join(experiments)}", f"seed={','.join(map(str, range(seeds)))}", *overrides]
    if not any(o.startswith("hydra.sweep.dir=") for o in overrides):
        command.append(f"hydra.sweep.dir=runs/reproduce/{args.table}/${{now:%Y-%m-%d_%H-%M-%S}}")
    print("mmx train " + " ".join(shlex.quote(part) for part in command), flush=True)  # pasteable into a shell
    if args.dry_run:
        return 0
    from mmx.cli import run_train

    return run_train(command)
