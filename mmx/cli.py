"""``mmx``: the command line. ``mmx train ...`` hands its arguments to Hydra."""
from __future__ import annotations

import importlib
import logging
import os
import sys
import tempfile
from importlib import resources
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from mmx.config import differing_keys, quote_paths
from mmx.errors import UserError

log = logging.getLogger("mmx")

COMMANDS = {"reproduce": "mmx.reproduce:main", "tables": "mmx.report.commands:tables_main",
            "plot": "mmx.report.commands:plot_main", "bench": "mmx.bench:main",
            "eval": "mmx.evaluation.command:main", "spiral": "mmx.figures.spiral:main",
            "spectrum": "mmx.figures.spectrum:main"}
GROUPS = ("dataset", "model", "mixup", "optim", "schedule", "recipe")

RANK = int(os.environ.get("RANK", 0))  # set by torchrun; only rank 0 writes a run directory


def _run_dir(resume, fresh):
    """A resumed run writes into its own directory; torchrun's other ranks get a scratch one
    (train() replaces it by rank 0's)."""
    if resume:
        return resume
    return fresh if RANK == 0 else os.path.join(tempfile.gettempdir(), f"mmx-rank{RANK}-{os.getppid()}")


OmegaConf.register_new_resolver("mmx_run_dir", _run_dir, replace=True)
# A resumed run keeps the .hydra/ of its first invocation; other ranks write none.
OmegaConf.register_new_resolver("mmx_hydra_subdir", lambda resume: None if resume or RANK else ".hydra", replace=True)
OmegaConf.register_new_resolver("mmx_log_file", lambda path: path if RANK == 0 else os.devnull, replace=True)
# Sweep subdirectories are named by their overrides; experiment names hold "/", which would nest them.
OmegaConf.register_new_resolver("mmx_slug", lambda text: str(text).replace("/", "-"), replace=True)


def group_options() -> dict[str, list[str]]:
    """The options of each config group, read from the configs shipped with the package."""
    root = resources.files("mmx.configs")
    return {group: sorted(p.name[:-5] for p in root.joinpath(group).iterdir() if p.name.endswith(".yaml"))
            for group in GROUPS}


def usage() -> str:
    groups = "\n".join(f"  {group:<9} {' | '.join(options)}" for group, options in group_options().items())
    paper = resources.files("mmx.configs").joinpath("experiment/paper")
    tables = "\n".join(f"  {t.name:<9} {len(list(t.iterdir()))} cells, e.g. {sorted(t.iterdir(), key=str)[0].name[:-5]}"
                       for t in sorted(paper.iterdir(), key=str) if t.is_dir())
    return f"""usage: mmx <command> [options]

Manifold mixup experiments: train PreActResNets and WideResNets with no mixup, input mixup or
manifold mixup, logging accuracy, NLL and calibration to metrics.csv, TensorBoard and summary.json.

commands:
  train      train one run, or a sweep with -m (Hydra overrides: GROUP=OPTION, KEY=VALUE)
  reproduce  run every cell of a paper table x seeds as one multirun (`mmx reproduce --help`)
  tables     tabulate runs (mean ± std over seeds, paper's numbers beside) as CSV, Markdown, LaTeX
  plot       test error and NLL curves per epoch, and error against alpha, as PNG
  bench      training-step images/s: mmx's path against the public code's way (`mmx bench --help`)
  eval       a trained run's calibration, FGSM/PGD and deformation robustness, OOD detection (eval.json)
  spiral     the paper's Figure 1: decision boundaries and 2-D bottleneck representations on spirals
  spectrum   singular values of class-conditional hidden representations of trained runs

config groups (mmx train GROUP=OPTION):
{groups}

examples:
  mmx train                                   # embedded digits, preactresnet18, manifold mixup
  mmx train dataset=cifar10 model=preactresnet18 mixup=manifold
  mmx train -m mixup.alpha=0.5,1,2 seed=0,1,2
  mmx train resume=RUN_DIR
  mmx train experiment=paper/table1/cifar10_preactresnet18_manifold seed=3
  mmx reproduce table1 seeds=5 --dry-run      # estimated GPU-hours and the multirun command
  mmx eval run=RUN_DIR pgd.steps=10           # eval.json and reliability.png in RUN_DIR
  mmx train --help                            # every group, option and default value

paper recipes (mmx train experiment=paper/TABLE/CELL):
{tables}
"""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    command, rest = argv[0], argv[1:]
    if command != "train" and command not in COMMANDS:
        print(f"mmx: error: unknown command {command!r}; run `mmx --help` for the list of commands", file=sys.stderr)
        return 2
    try:
        if command == "train":
            return run_train(rest)
        # The other commands are imported only when used: `mmx train` should not pay for pandas or matplotlib.
        module, function = COMMANDS[command].split(":")
        return getattr(importlib.import_module(module), function)(rest)
    except UserError as error:
        print(f"mmx: error: {error}", file=sys.stderr)
        return 2


def run_train(overrides: list[str]) -> int:
    """``mmx train OVERRIDES``: Hydra parses the overrides (and -m, --help, --cfg ...)."""
    _check_resume_target(overrides)
    sys.argv = ["mmx train", *quote_paths(overrides, ("resume",))]
    train_command()
    return 0


def _check_resume_target(overrides: list[str]) -> None:
    """Fail before Hydra creates anything when ``resume=`` names no resumable run."""
    for override in overrides:
        if override.startswith("resume="):
            run_dir = Path(override.split("=", 1)[1].strip("'\""))
            if not (run_dir / "config.yaml").is_file():
                raise UserError(f"cannot resume {run_dir}: it is not an mmx run directory (no config.yaml); "
                                f"pass the directory a previous `mmx train` printed")
            if not (run_dir / "checkpoints" / "last.pt").is_file():
                raise UserError(f"cannot resume {run_dir}: it has no checkpoints/last.pt (it stopped before its "
                                f"first epoch ended); start it again without resume=")


@hydra.main(config_path="pkg://mmx.configs", config_name="train", version_base="1.3")
def train_command(cfg: DictConfig) -> None:
    from mmx.train import train  # heavy imports (torch) after Hydra has parsed --help and friends

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        resume = bool(cfg.resume)
        if resume:
            cfg = _saved_config(cfg, run_dir)
        elif RANK == 0 and (run_dir / "checkpoints" / "last.pt").exists():
            raise UserError(f"{run_dir} already holds a run; continue it with resume={run_dir} or choose another "
                            f"hydra.run.dir")
        summary = train(cfg, run_dir, resume=resume)
    except UserError as error:
        print(f"mmx: error: {error}", file=sys.stderr)
        sys.exit(2)
    final, best = summary["final"], summary["best"]
    if final:
        log.info("done: final test acc %.2f%% (NLL %.4f, ECE %.4f); best %.2f%% at epoch %d; %s",
                 final["acc"], final["nll"], final["ece"], best["acc"], best["epoch"], run_dir)


def _saved_config(cfg: DictConfig, run_dir: Path) -> DictConfig:
    """The config a run was started with; overrides given now must agree with it."""
    saved = OmegaConf.load(run_dir / "config.yaml")
    parsed = OverridesParser.create().parse_overrides(list(HydraConfig.get().overrides.task))
    keys = [o.key_or_group for o in parsed if o.key_or_group != "resume" and not o.key_or_group.startswith("hydra")]
    differences = differing_keys(saved, cfg, keys)
    if differences:
        shown = ", ".join(f"{k} ({OmegaConf.select(saved, k)} -> {OmegaConf.select(cfg, k)})" for k in differences[:6])
        more = f" and {len(differences) - 6} more" if len(differences) > 6 else ""
        raise UserError(f"cannot resume {run_dir}: its config differs in {shown}{more}; drop those overrides to "
                        f"continue it as it was started, or start a new run")
    return saved
