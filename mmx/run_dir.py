"""A run directory: its layout, what writes each file, and what reads it back, in one place (the files' formats:
:mod:`mmx.metrics` for metrics.csv's columns, :mod:`mmx.summary` for summary.json, :mod:`mmx.files` for how
every file is written).

    RUN/
      config.yaml           the resolved config; written first, it marks the folder as a run
      summary.json          what was trained, with which code, and how it ended
      metrics.csv, tb/      one row per epoch (mmx.metrics.REGISTRY's columns), as CSV
                            and TensorBoard events
                            (per trainer.eval_every epochs: the training columns cover them all)
      checkpoints/last.pt   every recorded epoch, and inside epochs (trainer.checkpoint_every, a stop signal);
                            best.pt at each new lowest validation (or, without a validation split, test) error
      eval.json             mmx eval (and reliability.png); spectrum.json: mmx spectrum
      train.log, .hydra/    the console log, and Hydra's record of the invocation
      .lock                 held by the process that trains in the folder

Every file is replaced atomically (a temporary file of its own per writer, fsync, rename), so a
reader or a resume after a kill at any instant sees either the old file or the new one. Damaged
files are reported in one sentence naming the file.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import logging
import os
import shutil
import sys
import threading
from pathlib import Path
from typing import Iterator

from omegaconf import DictConfig, OmegaConf

from mmx.errors import UserError
from mmx.files import first_line, load_checkpoint, read_json, save_checkpoint, write_error, write_json, write_text
from mmx.metrics import epoch_metrics, metric_columns, test_metrics, val_metrics
from mmx.settings import differences_in_words, with_added_settings
from mmx.summary import summary_problem

CONFIG, SUMMARY, METRICS, EVAL = "config.yaml", "summary.json", "metrics.csv", "eval.json"
TENSORBOARD, CHECKPOINTS, LOCK = "tb", "checkpoints", ".lock"
SWEEP = "multirun.yaml"  # Hydra's record of a sweep, in the sweep's folder
CHECKPOINT_NAMES = ("best", "last")


class RunDir:
    """The files of one run; every read and write of them goes through here."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.config_path = self.path / CONFIG
        self.summary_path = self.path / SUMMARY
        self.metrics_path = self.path / METRICS
        self.eval_path = self.path / EVAL
        self.tensorboard_path = self.path / TENSORBOARD
        self.lock_path = self.path / LOCK

    def __str__(self) -> str:
        return str(self.path)

    def checkpoint_path(self, which: str) -> Path:
        return self.path / CHECKPOINTS / f"{which}.pt"

    def is_run(self) -> bool:
        return self.config_path.is_file()

    def is_sweep(self) -> bool:
        return (self.path / SWEEP).is_file()

    def sweep_overrides(self) -> list[str]:
        """The overrides the sweep in this folder was started with: the launcher's, then the task's (its jobs follow
        from them). Not those mmx adds to every sweep: its folder, the keys that name its jobs, the mode."""
        added = ("hydra.sweep.dir=", "hydra.job.config.override_dirname.exclude_keys=", "hydra.mode=")
        try:
            overrides = OmegaConf.load(self.path / SWEEP).hydra.overrides
            given = [*overrides.hydra, *overrides.task]
            return [str(override) for override in given if not str(override).startswith(added)]
        except Exception as error:
            raise UserError(
                f"{self.path / SWEEP} is damaged ({first_line(error)}); its sweep cannot be continued, but each "
                f"of its runs can be, with resume=RUN_DIR"
            ) from None

    def discard_first_epoch(self) -> None:
        """Forget the files of a start that never reached a checkpoint, before the run trains again from scratch.

        Refused when the folder has recorded epochs although last.pt is missing (deleted or lost): starting again
        would throw them away."""
        recorded = self.recorded_without_checkpoint()
        if recorded:
            raise UserError(
                f"cannot continue {self.path}: its {CHECKPOINTS}/last.pt is missing although it recorded {recorded}, "
                f"which starting again would discard; restore last.pt from a copy, or train in another folder"
            )
        shutil.rmtree(self.tensorboard_path, ignore_errors=True)
        for path in (self.summary_path, self.metrics_path):
            path.unlink(missing_ok=True)

    def recorded_without_checkpoint(self) -> str:
        """What this folder recorded of finished epochs although it has no last.pt, in words ("" when nothing, or when
        last.pt is there): a first epoch a kill cut short records none."""
        if self.checkpoint_path("last").is_file():
            return ""
        recorded = []
        if self.checkpoint_path("best").is_file():
            recorded.append(f"{CHECKPOINTS}/best.pt")
        rows = len(self.read_metrics())
        if rows:
            recorded.append(f"{rows} epoch(s) in {METRICS}")
        done = (self.read_summary() or {}).get("epochs_done")
        if done:
            recorded.append(f"{done} epoch(s) in {SUMMARY}")
        return " and ".join(recorded)

    # --- writers ---------------------------------------------------------------------------------

    def write_config(self, cfg: DictConfig) -> None:
        write_text(self.config_path, OmegaConf.to_yaml(cfg, resolve=True))

    def write_summary(self, summary: dict) -> None:
        write_json(self.summary_path, summary)

    def write_eval(self, result: dict) -> None:
        write_json(self.eval_path, result)

    def save_checkpoint(self, state: dict, which: str) -> None:
        save_checkpoint(state, self.checkpoint_path(which))

    def metrics_log(
        self, resume_epoch: int = 0, validation: bool = False, kept: list[dict] | None = None
    ) -> "MetricsLog":
        return MetricsLog(self, resume_epoch, validation, kept)

    def write_metrics(self, rows: list[dict], validation: bool) -> None:
        """metrics.csv with exactly these rows, replaced atomically (its columns: :meth:`metric_columns`)."""
        write_text(self.metrics_path, _csv_text(rows, self.metric_columns(validation), header=True))

    def metric_columns(self, validation: bool) -> list[str]:
        """metrics.csv's columns: the registry's (:mod:`mmx.metrics`), then any the file holds that this mmx does not
        know (a metric of a newer mmx, or one since removed), which are kept, never dropped."""
        known = metric_columns(validation)
        try:
            with open(self.metrics_path, newline="") as handle:
                header = next(csv.reader(handle), [])
        except (OSError, UnicodeDecodeError, csv.Error):
            header = []
        return known + [column for column in header if column and column not in known]

    # --- readers ---------------------------------------------------------------------------------

    def read_config(self) -> DictConfig:
        if not self.is_run():
            raise UserError(
                f"{self.path} is not an mmx run directory (no {CONFIG}); pass a directory that `mmx train` wrote"
            )
        try:
            cfg = OmegaConf.load(self.config_path)
        except Exception as error:
            raise UserError(
                f"{self.config_path} is damaged ({first_line(error)}); restore it from a copy or start the run again"
            ) from None
        if not isinstance(cfg, DictConfig) or "model" not in cfg or "dataset" not in cfg:
            raise UserError(
                f"{self.config_path} is damaged (it does not describe a run); restore it from a copy "
                f"or start the run again"
            )
        return with_added_settings(cfg)

    def read_summary(self) -> dict | None:
        """summary.json, or None before the first epoch has ended; one that is not what mmx writes is named as
        damaged (its fields that readers rely on are checked, so that no reader fails later on a wrong type)."""
        if not self.summary_path.exists():
            return None
        summary = read_json(self.summary_path)
        problem = summary_problem(summary)
        if problem:
            raise UserError(
                f"{self.summary_path} is damaged ({problem}); delete it to let `mmx train resume=` write it again, "
                f"or restore it from a copy"
            )
        return summary

    def read_eval(self) -> dict | None:
        return read_json(self.eval_path) if self.eval_path.exists() else None

    def read_metrics(self) -> list[dict]:
        """metrics.csv's rows as numbers (empty before the first epoch has ended); an empty cell is None (a metric
        added after the row was written).

        A last line without its newline is a row whose write a crash cut short (every row is written whole, newline
        last): it is left out, as an epoch that did not end; any other bad row means the file is damaged.
        """
        if not self.metrics_path.exists():
            return []
        try:
            with open(self.metrics_path, newline="") as handle:
                text = handle.read()
            whole = text[: text.rfind("\n") + 1]
            return [
                {k: None if v == "" and k != "epoch" else int(v) if k == "epoch" else float(v) for k, v in row.items()}
                for row in csv.DictReader(io.StringIO(whole))
            ]
        except (ValueError, TypeError, csv.Error, UnicodeDecodeError) as error:
            raise UserError(f"{self.metrics_path} is damaged ({first_line(error)})") from None

    def metrics_for_resume(
        self, epoch: int, recorded: list[dict] | None, expected: list[int]
    ) -> tuple[list[dict], str]:
        """The rows of metrics.csv a resume from ``epoch`` keeps, and what was wrong with the file ("" if nothing).

        ``recorded``: the rows up to ``epoch`` as the checkpoint keeps them (None in checkpoints of an mmx before it
        kept them); they replace a file that is missing, cut short or damaged. Without them, a file that lacks an
        epoch of ``expected`` is refused: a resume never continues a run with a hole in its history.
        """
        try:
            rows, damage = [row for row in self.read_metrics() if row["epoch"] <= epoch], ""
        except UserError as error:
            if recorded is None:
                raise
            rows, damage = [], str(error)
        present = {row["epoch"] for row in rows}
        wanted = [row["epoch"] for row in recorded] if recorded is not None else expected
        missing = [e for e in wanted if e not in present]
        if not missing and not damage:
            return rows, ""
        if recorded is None:
            raise UserError(
                f"cannot resume {self.path}: its {METRICS} lacks epoch(s) {_spans(missing)}, and its checkpoint (from "
                f"an mmx that kept no copy of the rows) cannot restore them; restore {METRICS} from a copy, or train "
                f"the run again in another folder"
            )
        problem = damage or (
            f"{self.metrics_path} lacked epoch(s) {_spans(missing)}"
            if self.metrics_path.exists()
            else f"{self.metrics_path} was missing"
        )
        return list(recorded), f"{problem}; rebuilt from {CHECKPOINTS}/last.pt's copy of the rows"

    def load_checkpoint(self, which: str = "last") -> dict:
        if which not in CHECKPOINT_NAMES:
            raise UserError(f"checkpoint={which} is not one of {', '.join(CHECKPOINT_NAMES)}; choose best or last")
        path = self.checkpoint_path(which)
        if not path.is_file():
            raise UserError(
                f"{self.path} has no {CHECKPOINTS}/{which}.pt (it stopped before its first epoch "
                f"ended); pass a run that finished at least one epoch"
            )
        return load_checkpoint(path)

    # --- resuming ------------------------------------------------------------------------------

    def check_resumable(self) -> None:
        """Fail before anything starts when this folder holds no run that can be continued. A run without last.pt
        (stopped before its first checkpoint) can: it starts again from its first epoch."""
        if not self.is_run():
            raise UserError(
                f"cannot resume {self.path}: it is not an mmx run directory (no {CONFIG}); pass the "
                f"directory a previous `mmx train` printed"
            )
        self.read_config()
        recorded = self.recorded_without_checkpoint()
        if recorded:
            raise UserError(
                f"cannot resume {self.path}: its {CHECKPOINTS}/last.pt is missing although it recorded {recorded}; "
                f"restore last.pt from a copy, or train in another folder"
            )

    def config_for_resume(self, current: DictConfig, overridden: list[str]) -> DictConfig:
        """The config the run was started with; the keys given again now must keep their values."""
        saved = self.read_config()
        differences = differences_in_words(saved, current, overridden)
        if differences:
            raise UserError(
                f"cannot resume {self.path}: its config differs in {differences}; drop those overrides to "
                f"continue it as it was started, or start a new run"
            )
        return saved

    def checkpoint_job(self) -> str | None:
        """The cluster job (submitit's id) that wrote ``last.pt``, if a submitit job did."""
        return self.load_checkpoint("last").get("job")

    def config_for_requeue(self, current: DictConfig, job: str) -> DictConfig:
        """The config a requeued job continues with: the run's own, which must equal the one composed now, key for key
        (a requeue reruns the same overrides, so a difference means the configs or the code changed meanwhile)."""
        saved = self.read_config()
        differences = differences_in_words(saved, current, sorted((set(saved) | set(current)) - {"resume"}))
        if differences:
            raise UserError(
                f"cannot continue {self.path} in requeued job {job}: its config differs in {differences} from the one "
                f"it was started with (the config files or mmx changed meanwhile); restore them, or continue it with "
                f"`mmx train resume={self.path}`"
            )
        return saved

    # --- a live run's claim on the folder -------------------------------------------------------

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the folder's lock while training in it; the system drops it when the process ends.

        A second process (a resume of a live run, or two runs sent to one folder) is refused in one
        sentence naming the holder; a lock left by a dead process does not block. Within one process
        the lock is re-entrant (the command line takes it before Hydra starts, the trainer again).
        """
        key = self.path.resolve()
        if key in _HELD:
            yield
            return
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            handle = open(self.lock_path, "a+")
        except OSError as error:  # a read-only folder, a full disk: nothing can be trained here
            raise write_error(error, self.lock_path) from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise UserError(
                f"{self.path} is in use by {holder}; wait for it to finish (or stop it) before "
                f"resuming, or train in another directory"
            ) from None
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(f"process {os.getpid()} on {os.uname().nodename}\n")
            handle.flush()
        except OSError as error:
            handle.close()
            raise write_error(error, self.lock_path) from None
        try:
            _HELD.add(key)
            yield
        finally:
            _HELD.discard(key)
            handle.close()


_HELD: set[Path] = set()  # folders whose lock this process holds


class MetricsLog:
    """Appends one row per epoch to metrics.csv and TensorBoard.

    On resume from epoch ``e`` both forget what came after ``e`` (rows written after the last
    checkpoint, before a kill), so no epoch is ever recorded twice; metrics.csv is rewritten
    atomically, so a kill during the rewrite loses nothing. A run with a validation split has the
    ``val_*`` columns too.
    """

    def __init__(self, run: RunDir, resume_epoch: int = 0, validation: bool = False, kept: list[dict] | None = None):
        """``kept``: the rows to keep (a resume's, rebuilt from its checkpoint); by default metrics.csv's own rows up to
        ``resume_epoch``."""
        from torch.utils.tensorboard import SummaryWriter

        self.path, self.tensorboard_path = run.metrics_path, run.tensorboard_path
        self.columns = run.metric_columns(validation)
        self.metrics = epoch_metrics(validation)
        if kept is None:
            kept = [row for row in run.read_metrics() if row["epoch"] <= resume_epoch]
        run.write_metrics(kept, validation)
        _quiet_tensorboard_writer_errors()
        with self._tensorboard_writes():
            self.tensorboard = SummaryWriter(
                log_dir=str(run.tensorboard_path), purge_step=resume_epoch + 1 if resume_epoch else None
            )

    def write_hparams(self, hparams: dict) -> None:
        """Register the run in TensorBoard's HParams tab: its settings, and the metrics (scalar tags) the
        tab shows beside them (their latest values: the final epoch's, and the best epoch's ``best/*``)."""
        from torch.utils.tensorboard.summary import hparams as hparams_summary

        metrics = {metric.tag: 0.0 for metric in self.metrics if metric.summary}
        metrics.update({f"best/{metric.summary}": 0.0 for metric in self.metrics if metric.summary})
        experiment, session_start, _ = hparams_summary(hparams, metrics)
        with self._tensorboard_writes():
            writer = self.tensorboard._get_file_writer()
            writer.add_summary(experiment)
            writer.add_summary(session_start)
            self.tensorboard.flush()

    def append(self, row: dict, best: dict | None = None) -> None:
        try:
            with open(self.path, "a", newline="") as handle:
                handle.write(_csv_text([row], self.columns))
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as error:
            raise write_error(error, self.path, appending=True) from None
        with self._tensorboard_writes():
            for metric in self.metrics:
                if metric.tag:
                    self.tensorboard.add_scalar(metric.tag, row[metric.column], global_step=row["epoch"])
            scored = {**test_metrics(), **val_metrics()}
            for name, value in (best or {}).items():
                if name in scored:
                    self.tensorboard.add_scalar(f"best/{name}", value, global_step=row["epoch"])
            self.tensorboard.flush()

    def close(self) -> None:
        with self._tensorboard_writes():
            self.tensorboard.close()

    @contextlib.contextmanager
    def _tensorboard_writes(self) -> Iterator[None]:
        """TensorBoard writes its event file from a thread of its own, and raises that thread's error at the next
        write or flush: named here like any other file's."""
        try:
            yield
        except OSError as error:
            events = Path(os.fsdecode(error.filename)) if error.filename else self.tensorboard_path / "events"
            raise write_error(error, events, appending=True) from None


def _quiet_tensorboard_writer_errors() -> None:
    """TensorBoard's writer thread re-raises its write errors, so Python prints them as a thread's traceback, then
    hands them to the next write in the main thread, where they become one sentence: print them only there."""
    previous = threading.excepthook
    if getattr(previous, "mmx", False):
        return

    def hook(args) -> None:
        if isinstance(args.exc_value, OSError) and type(args.thread).__name__ == "_AsyncWriterThread":
            return
        previous(args)

    hook.mmx = True
    threading.excepthook = hook


def _csv_text(rows: list[dict], columns: list[str], header: bool = False) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    if header:
        writer.writeheader()
    writer.writerows({k: row.get(k) for k in columns} for row in rows)  # a column a row lacks: an empty cell
    return buffer.getvalue()


class LogFile(logging.FileHandler):
    """train.log (``hydra.job_logging``): Hydra's file handler, except that a line it cannot write (a full disk, a
    folder made read-only) is reported once in one sentence, not as a traceback for every line that follows. The
    console keeps the whole log, and the run's next checkpoint or metrics row then stops it, as any failed write does.
    """

    failed = False

    def emit(self, record: logging.LogRecord) -> None:
        if not self.failed:
            super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:
        error = sys.exc_info()[1]
        if not isinstance(error, OSError):
            return super().handleError(record)
        self.failed = True
        sys.stderr.write(
            f"mmx: warning: {self.baseFilename} could not be written ({error.strerror or error}); the log goes to "
            f"the console only from here\n"
        )


def _spans(epochs: list[int]) -> str:
    """Epochs as ranges: ``1-3, 6``."""
    spans, start = [], None
    for i, epoch in enumerate(epochs):
        if start is None:
            start = epoch
        if i + 1 == len(epochs) or epochs[i + 1] != epoch + 1:
            spans.append(str(start) if start == epoch else f"{start}-{epoch}")
            start = None
    return ", ".join(spans)
