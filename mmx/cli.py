"""``mmx``: the command line. ``mmx train ...`` is checked here, then handed to Hydra.

Before Hydra creates anything, every job's config is composed and checked (a sweep's too), and the
run's directory is claimed: created atomically under a name of its own (a suffix when two runs
start in the same second), or, when named by the user or resumed, locked for the run's lifetime.
A mistake therefore ends in one sentence, exit status 2, and no directory left behind.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from mmx.config import compose_train, finish, group_options, quote_paths
from mmx.errors import RunDiverged, UserError, WriteFailed
from mmx.run_dir import RunDir
from mmx.schema import GROUPS
from mmx.stops import Stopped
from mmx.summary import ending

log = logging.getLogger("mmx")

COMMANDS = {
    "reproduce": "mmx.reproduce:main",
    "tables": "mmx.report.commands:tables_main",
    "plot": "mmx.report.commands:plot_main",
    "bench": "mmx.bench:main",
    "eval": "mmx.evaluation.command:main",
    "spiral": "mmx.figures.spiral:main",
    "spectrum": "mmx.figures.spectrum:main",
}
HYDRA_FLAGS = (
    "--help",
    "-h",
    "--hydra-help",
    "--cfg",
    "-c",
    "--info",
    "-i",
    "--shell-completion",
    "-sc",
    "--resolve",
    "--package",
    "-p",
    "--version",
)
# Set while `resume=SWEEP_DIR` continues a sweep: each job resumes, or starts, in its folder. In the environment, so
# that jobs a launcher runs in other processes (submitit) see it too.
CONTINUING = "MMX_CONTINUING_SWEEP"
RANK = int(os.environ.get("RANK", 0))  # set by torchrun; only rank 0 writes a run directory


def hydra_subdir(resume: str | None, output_dir: str) -> str | None:
    """A resumed run keeps the .hydra/ of its first invocation, as does any job of a continued sweep that has one;
    other ranks write none."""
    kept = resume or (CONTINUING in os.environ and (Path(output_dir) / ".hydra").is_dir())
    return None if kept or RANK else ".hydra"


OmegaConf.register_new_resolver("mmx_hydra_subdir", hydra_subdir, replace=True)
# Other ranks log nowhere.
OmegaConf.register_new_resolver("mmx_log_file", lambda path: path if RANK == 0 else os.devnull, replace=True)
# Sweep subdirectories are named by their overrides; experiment names hold "/", which would nest them.
OmegaConf.register_new_resolver("mmx_slug", lambda text: str(text).replace("/", "-"), replace=True)

CREATED: list[Path] = []  # directories this invocation created: removed again if a mistake stops it early


def usage() -> str:
    groups = "\n".join(f"  {group:<10} {' | '.join(group_options(group))}" for group in GROUPS if group != "experiment")
    paper = [name for name in group_options("experiment") if name.startswith("paper/")]
    tables = sorted({name.split("/")[1] for name in paper})
    examples = "\n".join(
        f"  {t:<9} {sum(n.startswith(f'paper/{t}/') for n in paper)} cells, e.g. "
        f"{next(n for n in paper if n.startswith(f'paper/{t}/')).split('/')[-1]}"
        for t in tables
    )
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
{examples}
"""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    if argv[0] == "--version":
        from importlib.metadata import version

        print(f"mmx {version('mmx')}")
        return 0
    if argv[0] in ("-sc", "--shell-completion"):
        return complete(argv)
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
        remove_unused(CREATED)
        return 2


def complete(arguments: list[str]) -> int:
    """Tab completion. The shell asks ``mmx -sc query=bash`` with the line in ``COMP_LINE``: after
    ``mmx train`` Hydra completes groups, options and keys; before it, the command names. The
    install script (``mmx train -sc install=bash``) is Hydra's, registered for ``mmx``."""
    line = os.environ.get("COMP_LINE", "")
    words = line.split()
    installing = any(a.startswith(("install", "uninstall")) for a in arguments)
    if installing or len(words) >= 2 and words[1] == "train" and (len(words) > 2 or line.endswith(" ")):
        if not installing:
            os.environ["COMP_LINE"] = " ".join([words[0], *words[2:]]) + (" " if line.endswith(" ") else "")
        sys.argv = ["mmx", *arguments]
        train_command()
        return 0
    prefix = words[1] if len(words) == 2 and not line.endswith(" ") else ""
    print(" ".join(c for c in ["train", *COMMANDS] if c.startswith(prefix)))
    return 0


def run_train(arguments: list[str]) -> int:
    """``mmx train ARGS``: every job checked and its directory claimed, then Hydra runs it."""
    completion = next((i for i, a in enumerate(arguments) if a.startswith(("-sc", "--shell-completion"))), None)
    if completion is not None:
        return complete(arguments[completion:])
    if any(a in HYDRA_FLAGS or a.startswith("--cfg=") for a in arguments):
        sys.argv = ["mmx train", *arguments]  # help and config printing: Hydra's own
        train_command()
        return 0
    multirun = any(a in ("-m", "--multirun") for a in arguments)
    parsed, task = parse_overrides([a for a in arguments if a not in ("-m", "--multirun")])
    resume = next((o.value() for o in task if o.get_key_element() == "resume"), None)
    explicit = {o.get_key_element(): o.value() for o in parsed if o.get_key_element().startswith("hydra.")}
    continued = RunDir(resume) if resume and RunDir(resume).is_sweep() else None
    if continued:
        given = [o.input_line for o in parsed if o.get_key_element() != "resume"]
        if given or multirun:
            raise UserError(
                f"resume={resume} continues a sweep with the settings it was started with; drop "
                f"{' '.join(given) or '-m'} (to change them, start a new sweep)"
            )
        arguments, multirun, resume = ["-m", *continued.sweep_overrides()], True, None
        parsed, task = parse_overrides(arguments[1:])

    from mmx.parts import check_environment  # torch: only once a run is really asked for

    # configs of one's own (a dataset, a mixing method) found through hydra.searchpath: the checks compose with them
    search = [o.input_line for o in parsed if o.get_key_element() == "hydra.searchpath"]
    jobs = expand(task) if multirun else [[o.input_line for o in task]]
    for job in jobs:
        if resume:
            RunDir(resume).check_resumable()
        check_environment(compose_train([*search, *(o for o in job if not o.startswith("resume="))]))

    if RANK:  # torchrun's other processes: a scratch folder, removed after; train() takes rank 0's directory
        scratch = tempfile.mkdtemp(prefix=f"mmx-rank{RANK}-")
        try:
            return hand_to_hydra(arguments, [f"hydra.run.dir={scratch}"])
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    if multirun:
        sweep = continued or claim_sweep(explicit.get("hydra.sweep.dir"))
        if continued:
            os.environ[CONTINUING] = str(continued.path)
        swept = sorted({o.get_key_element() for o in task if o.is_sweep_override()})
        kept = [o.get_key_element() for o in task if o.get_key_element() not in swept]
        extra = [f"hydra.sweep.dir={sweep.path}", f"hydra.job.config.override_dirname.exclude_keys=[{','.join(kept)}]"]
        try:
            with sweep.locked():
                code = hand_to_hydra(arguments, extra)
        finally:
            os.environ.pop(CONTINUING, None)
        diverged = [p.parent.name for p in sorted(sweep.path.glob("*/summary.json")) if diverged_run(p.parent)]
        if code == 0 and diverged:
            names = ", ".join(diverged)
            print(
                f"mmx: error: {len(diverged)} of the {len(jobs)} jobs in {sweep.path} diverged ({names}); the others "
                f"ran, and each diverged run's summary.json says where it stopped",
                file=sys.stderr,
            )
            return 2
        return code
    run = RunDir(resume) if resume else claim_run(explicit.get("hydra.run.dir"), [*search, *jobs[0]])
    with run.locked():
        return hand_to_hydra(arguments, [f"hydra.run.dir='{run.path}'"])


def parse_overrides(arguments: list[str]) -> tuple[list, list]:
    """Hydra's parse of the command line's overrides: all of them, and the task's (those not of ``hydra``)."""
    parsed = OverridesParser.create().parse_overrides(quote_paths(arguments, ("resume", "hydra.run.dir")))
    return parsed, [o for o in parsed if not o.get_key_element().startswith("hydra")]


def expand(task_overrides) -> list[list[str]]:
    """Every job of a sweep, as the list of overrides Hydra's basic sweeper will give it."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    return [job for batch in BasicSweeper.split_arguments(task_overrides, None) for job in batch]


def resolve(path: str) -> str:
    """A directory given on the command line, with Hydra's ``${now:...}`` (and any other interpolation) resolved."""
    import hydra.core.utils  # noqa: F401 - registers the `now` resolver

    return str(OmegaConf.create({"path": path}).path) if "${" in path else path


def claim_run(explicit: str | None, overrides: list[str]) -> RunDir:
    """A fresh run's directory: the one named by ``hydra.run.dir`` (refused if it holds a run), or
    ``runs/DATE/TIME_DATASET_MODEL_MIXUP`` created atomically, with a suffix if another run has it."""
    if explicit:
        run = RunDir(resolve(explicit))
        if run.is_run() or run.checkpoint_path("last").exists():
            raise UserError(
                f"{run.path} already holds a run; continue it with resume={run.path} or choose another hydra.run.dir"
            )
        if not run.path.exists():
            run.path.mkdir(parents=True)
            CREATED.append(run.path)
        return run
    cfg = compose_train(overrides)
    stamp = time.strftime("%Y-%m-%d/%H-%M-%S")
    return RunDir(create_unique(Path("runs") / f"{stamp}_{cfg.dataset.name}_{cfg.model.name}_{cfg.mixup.name}"))


def claim_sweep(explicit: str | None) -> RunDir:
    """A sweep's folder: the one named by ``hydra.sweep.dir`` if it holds no runs yet, or a fresh
    ``runs/multirun/DATE/TIME`` created atomically."""
    if explicit:
        path = Path(resolve(explicit))
        if holds_runs(path):
            raise UserError(
                f"{path} already holds the runs of a sweep; continue it with resume={path}, or choose another "
                f"hydra.sweep.dir"
            )
        if not path.exists():
            path.mkdir(parents=True)
            CREATED.append(path)
        return RunDir(path)
    return RunDir(create_unique(Path("runs") / "multirun" / time.strftime("%Y-%m-%d/%H-%M-%S")))


def create_unique(path: Path) -> Path:
    """Create ``path`` (or ``path-2``, ``path-3``, ...) atomically: two processes never get the same one."""
    missing = [p for p in reversed(path.parents) if not p.exists()]
    path.parent.mkdir(parents=True, exist_ok=True)
    CREATED.extend(missing)  # removed again (when empty) if a mistake stops this invocation
    candidate, n = path, 1
    while True:
        try:
            candidate.mkdir()
            CREATED.append(candidate)
            return candidate
        except FileExistsError:
            n += 1
            candidate = path.with_name(f"{path.name}-{n}")


def remove_unused(paths: list[Path]) -> None:
    """Delete directories this invocation created that hold no run (a mistake stopped it before its first epoch)."""
    for path in reversed(paths):
        if path.exists() and not holds_runs(path):
            shutil.rmtree(path, ignore_errors=True)
    paths.clear()


def holds_runs(path: Path) -> bool:
    """Whether ``path`` or a folder below it is a run (Hydra's own .hydra/config.yaml does not count)."""
    return path.exists() and any(p.parent.name != ".hydra" for p in path.rglob("config.yaml"))


def hand_to_hydra(arguments: list[str], extra: list[str]) -> int:
    given = [a for a in arguments if not a.startswith(("hydra.run.dir=", "hydra.sweep.dir="))]
    flags = [a for a in given if a in ("-m", "--multirun")]  # before the overrides, where Hydra's parser wants them
    overrides = [a for a in given if a not in flags]
    if "hydra/launcher=submitit_slurm" in overrides:  # Hydra's launcher with what real Slurm needs (mmx/slurm.py)
        with contextlib.suppress(ImportError):  # no launchers extra: Hydra says so when it looks for the launcher
            from mmx.slurm import checked_sweeps

            checked_sweeps()
    sys.argv = ["mmx train", *flags, *quote_paths(overrides, ("resume",)), *extra]
    try:
        train_command()
    except SystemExit as stop:
        if stop.code not in (0, None):
            remove_unused(CREATED)
            return int(stop.code) if isinstance(stop.code, int) else 1
    return 0


def diverged_run(path: Path) -> bool:
    return ending(RunDir(path).read_summary()) == "diverged"


def resumes_in_continued_sweep(run: RunDir) -> bool:
    """A job of a sweep being continued: resume it from its last.pt (finished ones then do nothing), or, with none,
    train it from the start; a job that diverged before is left as it is."""
    summary = run.read_summary()
    if ending(summary) == "diverged":
        raise RunDiverged(f"it had diverged ({summary['stopped']}); it is left as it was")
    if run.checkpoint_path("last").is_file():
        return True
    run.discard_first_epoch()
    return False


def continue_with(hydra_cfg, run: RunDir) -> str:
    """The command that continues a stopped run: its sweep's, in a sweep; ``resume=`` also where no checkpoint had been
    written yet (it starts the run again in its folder), unless the folder never became a run."""
    if hydra_cfg.mode == RunMode.MULTIRUN:
        return f"continue the sweep with `mmx train resume={Path(hydra_cfg.sweep.dir).absolute()}`"
    if run.checkpoint_path("last").exists():
        return f"continue with `mmx train resume={run.path}`"
    if run.is_run():
        return f"start it again from epoch 1 with `mmx train resume={run.path}` (no checkpoint had been written)"
    return f"train it again (no checkpoint had been written; delete {run.path} or choose another folder)"


def submitit_job(hydra_cfg) -> str | None:
    """The id of the submitit job this process runs (Hydra's submitit launcher), which a requeue keeps; else None."""
    target = str(OmegaConf.select(hydra_cfg, "launcher._target_", default=""))
    return str(hydra_cfg.job.id) if target.startswith("hydra_plugins.hydra_submitit_launcher.") else None


@hydra.main(config_path="pkg://mmx.configs", config_name="train", version_base="1.3")
def train_command(cfg: DictConfig) -> None:
    from mmx.train import train  # heavy imports (torch) after Hydra has parsed --help and friends

    hydra_cfg = HydraConfig.get()
    run = RunDir(hydra_cfg.runtime.output_dir)
    try:
        cfg = finish(cfg, dict(hydra_cfg.runtime.choices))
        job = submitit_job(hydra_cfg)
        resume = bool(cfg.resume) or (CONTINUING in os.environ and resumes_in_continued_sweep(run))
        if not resume and run.checkpoint_path("last").exists():  # never train afresh over a run's checkpoints
            if job is None or run.checkpoint_job() != job:
                raise UserError(f"{run.path} already holds a run; continue it with resume={run.path}")
            cfg = run.config_for_requeue(cfg, job)  # the same job, requeued by submitit: it continues its own run
            resume = True
            log.info("%s: job %s was requeued; it continues its run", run.path, job)
        elif resume:
            keys = [o.split("=", 1)[0].lstrip("+~") for o in hydra_cfg.overrides.task]
            # every process reads the run's own config (torchrun's other ranks run in a scratch folder)
            resumed = RunDir(cfg.resume or run.path)
            cfg = resumed.config_for_resume(cfg, [k for k in keys if k != "resume" and not k.startswith("hydra")])
            if not resumed.checkpoint_path("last").is_file():  # stopped before its first checkpoint
                resume = False
                if not RANK:
                    resumed.discard_first_epoch()
                    log.info("%s had no checkpoint yet; it starts again from epoch 1 with its saved config", resumed)
        summary = train(cfg, run.path, resume=resume, job=job)
    except RunDiverged as error:
        if hydra_cfg.mode != RunMode.MULTIRUN:
            print(f"mmx: error: {error}", file=sys.stderr)
            sys.exit(2)
        print(f"mmx: error in {run.path}: {error}; the sweep goes on with its other jobs", file=sys.stderr)
        return
    except WriteFailed as error:
        print(f"mmx: error: {error.problem}; {error.fix}, then {continue_with(hydra_cfg, run)}", file=sys.stderr)
        sys.exit(2)
    except UserError as error:
        print(f"mmx: error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        last = run.checkpoint_path("last")
        where = f"the last checkpoint is {last}" if last.exists() else "no epoch had finished, so no checkpoint exists"
        print(f"mmx: interrupted; {where}; {continue_with(hydra_cfg, run)}", file=sys.stderr)
        sys.exit(130)
    except Stopped as stop:
        if not RANK:  # every process stopped at the same step; the main one wrote the checkpoint and says so
            print(f"mmx: {stop}; {continue_with(hydra_cfg, run)}", file=sys.stderr)
        sys.exit(stop.exit_status)
    final, best = summary["final"], summary["best"]
    if final and not RANK:  # one line per run, not one per process
        log.info(
            "done: final test acc %.2f%% (NLL %.4f, ECE %.4f); best %.2f%% at epoch %d (chosen on %s); %s",
            final["acc"],
            final["nll"],
            final["ece"],
            best["acc"],
            best["epoch"],
            summary["best_chosen_on"],
            run.path,
        )
