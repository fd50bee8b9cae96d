"""The training loop: open the run, maybe resume, and for each epoch train, evaluate and record.

What trains is a :class:`mmx.trainer.Trainer`; what is written where is :mod:`mmx.run_dir`'s. This
module only says in which order, and what a run that stops early leaves behind.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from mmx import distributed, gpu_slots
from mmx.code_version import code_version
from mmx.distributed import Ranks
from mmx.errors import RunDiverged, UserError
from mmx.metrics import epoch_row, log_words, test_metrics
from mmx.parts import device_name, resolve_device, show_progress
from mmx.run_dir import CONFIG, RunDir
from mmx.settings import changes_results, differences_in_words, hparams, with_added_settings
from mmx.stops import StepBoundary, Stopped, StopSignals, signal_name
from mmx.summary import INTERRUPTED, chosen_on, stopped_by, test_record
from mmx.trainer import Diverged, RunningEpoch, Trainer

log = logging.getLogger("mmx")


def train(cfg: DictConfig, run_dir: str | Path, resume: bool = False, job: str | None = None) -> dict:
    """Train (or continue) the run in ``run_dir`` and return its summary.

    Under torchrun every process calls this; the main process's ``run_dir`` is used, and only the
    main process writes. The folder is locked while the run trains in it. ``job`` names the cluster
    job (submitit's id) that trains it, kept in its checkpoints: a requeue of that job continues it.
    """
    ranks = distributed.from_environment()
    try:
        with gpu_slots.claim(cfg.trainer.device, ranks.world_size) as device:
            distributed.start(ranks, resolve_device(device, ranks))  # before the first collective below
            run = RunDir(distributed.from_main(str(run_dir), ranks) if ranks.active else run_dir)
            with run.locked() if ranks.is_main else contextlib.nullcontext(), StopSignals().listening() as signals:
                return Training(run, cfg, resume, ranks, device, signals, job).run()
    finally:
        distributed.stop(ranks)


class Training:
    """One run's loop from where it stands (the start, an epoch's end, or a step inside an epoch) to its end.

    Each recorded epoch (every ``trainer.eval_every``, and the last) writes best.pt, last.pt and summary.json, in
    that order. Inside an epoch, a checkpoint that falls due (``trainer.checkpoint_every``) or a stop signal writes
    last.pt with the epoch so far; after a signal the run stops there (:class:`mmx.stops.Stopped`).
    """

    def __init__(
        self,
        run: RunDir,
        cfg: DictConfig,
        resume: bool,
        ranks: Ranks,
        device: str,
        signals: StopSignals,
        job: str | None = None,
    ):
        state = run.load_checkpoint("last") if resume else None
        if state is not None:
            check_same_config(run, state, cfg)  # before any weights load
        self.run_dir, self.cfg, self.resume, self.ranks, self.signals = run, cfg, resume, ranks, signals
        self.trainer = trainer = Trainer(cfg, ranks, device, state)
        if state is not None:
            check_same_validation(run, state, trainer)
        self.main = ranks.is_main
        self.progress = show_progress(cfg.trainer.progress) and self.main
        self.recorded = state["epoch"] if state else 0  # the newest epoch scored and recorded
        self.partial = state.get("partial") if state else None  # the epoch a mid-epoch checkpoint was written in
        self.record = Record(cfg, trainer, state, job)
        self.block = list(state.get("unrecorded", [])) if self.partial else []  # trained since the last record
        self.boundary = StepBoundary(
            signals, cfg.trainer.checkpoint_every, ranks, cfg.trainer.finite_check_every, trainer.device
        )
        self.checkpoint = where(**self.partial) if self.partial else f"epoch {self.recorded}" if state else None
        self.committed = None  # the summary of the newest checkpoint on disk, once this process has written one

    def info(self, *args) -> None:
        if self.main:
            log.info(*args)

    def run(self) -> dict:
        run, cfg, record, trainer = self.run_dir, self.cfg, self.record, self.trainer
        kept = self.kept_metrics() if self.main else None  # or refused: before anything is said or written
        if self.resume:
            self.info("resuming %s from %s", run, where(**self.partial) if self.partial else f"epoch {self.recorded}")
        elif self.main:
            run.write_config(cfg)
        if self.recorded >= cfg.epochs:
            self.info("%s has already finished its %d epochs; nothing to do", run, cfg.epochs)
            if kept is not None:
                run.write_metrics(kept, trainer.validates)
            return finished_summary(run, record, self.recorded) if self.main else record.summary(self.recorded)

        self.metrics_log = (
            run.metrics_log(resume_epoch=self.recorded, validation=trainer.validates, kept=kept) if self.main else None
        )
        if self.main and not self.resume:
            self.metrics_log.write_hparams(hparams(cfg))
        first = self.partial["epoch"] if self.partial else self.recorded + 1
        epochs = tqdm(
            range(first, cfg.epochs + 1),
            initial=first - 1,
            total=cfg.epochs,
            desc="training",
            disable=not self.progress,
        )
        try:
            # logging_redirect_tqdm: log lines print above the progress bars, not through them
            with (
                logging_redirect_tqdm(),
                contextlib.closing(self.metrics_log) if self.main else contextlib.nullcontext(),
            ):
                for epoch in epochs:
                    self.epoch(epoch, epochs)
        except KeyboardInterrupt:
            committed = self.committed
            if self.main and committed is not None:  # Ctrl-C may land between last.pt and summary.json: they agree
                run.write_summary(committed if committed["finished"] else {**committed, "stopped": INTERRUPTED})
            raise
        except Diverged as error:
            kept = (
                f"the last good checkpoint is {run.checkpoint_path('last')} ({self.checkpoint})"
                if self.checkpoint
                else "no checkpoint was written before it"
            )
            if self.main:
                run.write_summary(record.summary(self.recorded, stopped=str(error)))
            fix = "lower optim.lr or try loss/precision settings that keep it finite"
            raise RunDiverged(f"{error}; {kept}; {fix}") from None
        summary = record.summary(cfg.epochs)
        if self.ranks.active:
            summary["parameters_in_sync"] = distributed.parameters_in_sync(trainer.network, self.ranks)
            if self.main and not summary["parameters_in_sync"]:
                log.warning("the processes ended with different parameters; this run's checkpoints hold rank 0's")
        if self.main:
            run.write_summary(summary)
        return summary

    def kept_metrics(self) -> list[dict] | None:
        """The rows of metrics.csv a resume keeps, when the file lacked some the checkpoint holds (rebuilt from it,
        with a warning); None when the file is whole (or the run is new). A resume never continues with a hole."""
        if not self.resume:
            return None
        every, epochs = self.cfg.trainer.eval_every, self.cfg.epochs
        expected = [e for e in range(1, self.recorded + 1) if e % every == 0 or e == epochs]
        rows, problem = self.run_dir.metrics_for_resume(self.recorded, self.record.rows, expected)
        if self.record.rows is None:  # a checkpoint of an older mmx: the next ones keep the rows the file holds
            self.record.rows = list(rows)
        if problem:
            log.warning("%s", problem)
            return rows
        return None

    def epoch(self, epoch: int, epochs: tqdm) -> None:
        """Train ``epoch`` (or its rest, after a mid-epoch checkpoint) and, when it is due, score and record it."""
        cfg, trainer, record, run = self.cfg, self.trainer, self.record, self.run_dir
        resumed = self.partial if self.partial and self.partial["epoch"] == epoch else None
        started = time.perf_counter() - (resumed["seconds"] if resumed else 0.0)
        lr = trainer.lr
        train = trainer.train_epoch(epoch, self.progress, after_step=self.after_step)
        self.block.append({**train, "seconds": time.perf_counter() - started})
        if epoch % cfg.trainer.eval_every and epoch != cfg.epochs:
            return  # trainer.eval_every: scored, recorded and checkpointed every N epochs and at the end
        train, epochs_in_block = merge_epochs(self.block), len(self.block)
        self.block = []
        scoring = time.perf_counter()
        test = trainer.evaluate()
        check_test_metrics(test, epoch)
        val = trainer.evaluate(split="val") if trainer.validates else None
        if val is not None:
            check_test_metrics(val, epoch, "validation")
        seconds = train["seconds"] + time.perf_counter() - scoring  # the block's training and this scoring
        row = epoch_row(epoch, lr, train, test, seconds / epochs_in_block, val)
        record.epoch(epoch, test, seconds, val, row)
        state = {**trainer.state_dict(), **record.progress(epoch)}  # a collective: every process takes part
        self.recorded, self.checkpoint = epoch, f"epoch {epoch}"  # nothing after this point can diverge
        if self.main:
            self.metrics_log.append(row, best=record.best)
            summary = record.summary(epoch)
            if record.improved:  # before last.pt, which a resume starts from: an epoch it holds is in best.pt
                run.save_checkpoint(state, "best")
            run.save_checkpoint(state, "last")
            self.committed = summary
            run.write_summary(summary)
            epochs.set_postfix(test_acc=f"{test['acc']:.2f}", nll=f"{test['nll']:.3f}")
            log.info(
                "epoch %d/%d  lr %.4g  train loss %.4f acc %.2f  %s  %.1fs  %.0f img/s",
                epoch,
                cfg.epochs,
                lr,
                row["train_loss"],
                row["train_acc"],
                log_words(test, val),
                row["epoch_seconds"],
                row["train_images_per_second"],
            )
        self.boundary.saved()
        signum, _ = self.boundary.agreed()  # a signal during scoring: the checkpoint just written holds the run
        if signum is not None and epoch != cfg.epochs:
            self.stop(signum, f"after epoch {epoch}")

    def after_step(self, running: RunningEpoch) -> None:
        """Called by the trainer after each step: a mid-epoch checkpoint when one is due or a signal asks to stop."""
        save, signum = self.boundary.after_step(running.done)
        if not save:
            return
        started = time.perf_counter()
        self.trainer.check_finite_so_far()  # last.pt only ever holds finite weights
        state = {**self.trainer.state_dict(), **self.record.progress(self.recorded), "unrecorded": self.block}
        self.checkpoint = where(running.epoch, running.done, running.steps)
        if self.main:
            self.run_dir.save_checkpoint(state, "last")
            self.committed = self.record.summary(self.recorded)
            log.info(
                "%s: checkpoint at %s written in %.2fs", self.run_dir, self.checkpoint, time.perf_counter() - started
            )
        self.boundary.saved()
        if signum is not None:
            self.stop(signum, f"at {self.checkpoint}")

    def stop(self, signum: int, at: str) -> None:
        """After the checkpoint of ``at``: say so in summary.json, hand the signal on (submitit requeues the job and
        exits), or stop with :class:`Stopped`."""
        if self.main:
            self.run_dir.write_summary(self.record.summary(self.recorded, stopped=stopped_by(signum, at)))
            log.info("%s: stopped by %s %s; its checkpoint holds that state", self.run_dir, signal_name(signum), at)
        self.signals.hand_over()
        raise Stopped(signum, f"{at}, after writing {self.run_dir.checkpoint_path('last')}")


def where(epoch: int, step: int, steps: int, **_) -> str:
    """A mid-epoch checkpoint's place in words: ``epoch 3, step 40 of 56`` (``**_``: the rest of its ``partial``)."""
    return f"epoch {epoch}, step {step} of {steps}"


def finished_summary(run: RunDir, record: Record, epochs_done: int) -> dict:
    """The summary of a run whose last checkpoint is its final epoch, written again if a kill between that
    checkpoint and its summary left summary.json behind (or missing)."""
    try:
        written, why = run.read_summary(), "a stop had left it behind"
    except UserError as damage:
        written, why = None, str(damage).split("; ")[0]
    if written is not None and written.get("epochs_done") == epochs_done and written.get("finished"):
        return written
    summary = record.summary(epochs_done)
    run.write_summary(summary)
    log.info("%s: summary.json rewritten from the final checkpoint (%s)", run, why)
    return summary


class Record:
    """What a run has done so far: the best and final epochs, the wall time, and the summary that says so."""

    def __init__(self, cfg: DictConfig, trainer: Trainer, state: dict | None, job: str | None = None):
        """``state``: the checkpoint a resume starts from (None for a new run); ``job``: the cluster job training it."""
        self.cfg, self.trainer, self.job = cfg, trainer, job
        self.validation = trainer.data.validation  # the best epoch is the one of lowest validation error, if any
        # metrics.csv's rows so far, kept in every checkpoint to rebuild a lost or cut file (None: a checkpoint of an
        # mmx before it kept them)
        self.rows = None if state and "metrics" not in state else list((state or {}).get("metrics", []))
        state = state or {}
        self.best, self.wall_seconds = state.get("best"), state.get("wall_seconds", 0.0)
        self.final = state.get("final")  # absent from checkpoints written before mmx stored it
        self.improved = False
        self.code = code_version()

    def epoch(self, epoch: int, test: dict, seconds: float, val: dict | None, row: dict) -> None:
        """Epoch ``epoch`` scored: ``test`` (and ``val``) metrics, its time, and its row of metrics.csv."""
        if self.rows is not None:
            self.rows.append(row)
        self.final = test_record(test, epoch, val)
        chosen = "val_error" if self.validation else "error"
        self.improved = self.best is None or self.final[chosen] < self.best[chosen]
        if self.improved:
            self.best = self.final
        self.wall_seconds += seconds

    def progress(self, epoch: int) -> dict:
        """The loop's part of a checkpoint, beside the trainer's state: where it is, and what made it."""
        return {
            "epoch": epoch,
            "best": self.best,
            "final": self.final,
            "wall_seconds": self.wall_seconds,
            "code": self.code,
            "model_args": model_args(self.cfg, self.trainer),
            "validation": self.validation.as_dict() if self.validation else None,
            "job": self.job,
            "config": OmegaConf.to_container(self.cfg, resolve=True),
            **({"metrics": list(self.rows)} if self.rows is not None else {}),
        }

    def summary(self, epochs_done: int, stopped: str | None = None) -> dict:
        cfg, trainer = self.cfg, self.trainer
        mixing = cfg.mixup.name != "none"
        return {
            "experiment": cfg.experiment,
            "dataset": cfg.dataset.name,
            "model": cfg.model.name,
            "mixup": cfg.mixup.name,
            "alpha": cfg.mixup.get("alpha") if mixing else None,  # a method's own settings may have neither
            "points": list(cfg.mixup.get("points") or []) if mixing else [],
            "loss": cfg.loss.name,
            "seed": cfg.seed,
            "epochs": cfg.epochs,
            "epochs_done": epochs_done,
            "smoke": cfg.smoke,
            "labels_per_class": cfg.dataset.labels_per_class,
            "finished": epochs_done == cfg.epochs and not stopped,
            "stopped": stopped,
            "final": self.final,
            "best": self.best,
            "best_chosen_on": chosen_on(self.validation is not None),
            "validation": self.validation.as_dict() if self.validation else None,
            "wall_seconds": self.wall_seconds,
            "device": device_name(trainer.device),
            "precision": trainer.precision,
            "world_size": trainer.ranks.world_size,
            "compile": cfg.trainer.compile,
            "cuda_graphs": cfg.trainer.cuda_graphs,
            "captured_programs": sorted(  # a method's programs as JSON: manifold mixup's point tuples as lists
                (list(p) if isinstance(p, tuple) else p for p in trainer.step.graphs if p is not None), key=str
            )
            if cfg.trainer.cuda_graphs
            else None,
            "model_args": model_args(cfg, trainer),
            "torch": torch.__version__,
            "code": self.code,
            "job": self.job,
        }


def merge_epochs(epochs: list[dict]) -> dict:
    """The training statistics of consecutive epochs as one row's (``trainer.eval_every``): the loss over all
    their steps, the accuracy over all their images, their summed time."""
    if len(epochs) == 1:
        return epochs[0]
    steps = [loss for epoch in epochs for loss in epoch["step_losses"]]
    images = sum(epoch["images"] for epoch in epochs)
    train_seconds = sum(epoch["train_seconds"] for epoch in epochs)
    return {
        "train_loss": sum(steps) / len(steps),
        "train_acc": sum(epoch["train_acc"] * epoch["images"] for epoch in epochs) / images,
        "train_seconds": train_seconds,
        "train_images_per_second": images / train_seconds,
        "images": images,
        "step_losses": steps,
        "seconds": sum(epoch["seconds"] for epoch in epochs),
    }


def model_args(cfg: DictConfig, trainer: Trainer) -> dict:
    """What rebuilds the network without its data (``mmx.load_run``): its config and the data's shape."""
    data = trainer.data
    return {
        "model": OmegaConf.to_container(cfg.model, resolve=True),
        "num_classes": data.num_classes,
        "in_channels": data.channels,
        "image_size": data.image_size,
        "mean": list(cfg.dataset.mean),
        "std": list(cfg.dataset.std),
    }


def check_test_metrics(metrics: dict, epoch: int, split: str = "test") -> None:
    """A network whose outputs overflow has diverged even if its weights are finite."""
    bad = [name for name in test_metrics() if not math.isfinite(metrics[name])]
    if bad:
        raise Diverged(
            epoch,
            f"the {split} {' and '.join(bad)} became non-finite at epoch {epoch} (the network's outputs overflow)",
        )


def check_same_config(run: RunDir, state: dict, cfg: DictConfig) -> None:
    """config.yaml must still describe the run its last.pt holds: edited afterwards, it would resume other settings on
    the old weights (or fail to load them). Every setting that can change results is compared with the config the
    checkpoint keeps; checkpoints of an mmx before they kept one are compared on the model alone."""
    if "config" in state:
        saved = with_added_settings(OmegaConf.create(state["config"]))
        differences = differences_in_words(saved, cfg, sorted(set(saved) | set(cfg)), only=changes_results)
    elif "model_args" in state:
        saved = OmegaConf.create({"model": state["model_args"]["model"]})
        differences = differences_in_words(saved, cfg, ["model"])
    else:
        return  # the oldest checkpoints: the weights' shapes are still checked as they load
    if differences:
        raise UserError(
            f"cannot resume {run}: its {CONFIG} differs from the config its checkpoints/last.pt was trained with in "
            f"{differences} ({CONFIG} was changed after the run started); restore those values, or start a new run"
        )


def check_same_validation(run: RunDir, state: dict, trainer: Trainer) -> None:
    """A resumed run holds out the images it was trained beside: the checkpoint's record of its validation split
    must be the split drawn now (a changed dataset or loader would otherwise move images between the splits)."""
    saved, now = state.get("validation"), trainer.data.validation
    now = now.as_dict() if now else None
    if saved != now:
        raise UserError(
            f"cannot resume {run}: its validation split was {_split_words(saved)} but the data now gives "
            f"{_split_words(now)} (the dataset's files or its loader changed); restore the data it was trained on, "
            f"or start a new run"
        )


def _split_words(record: dict | None) -> str:
    if record is None:
        return "none"
    return f"{record['images']} images (seed {record['seed']}, sha256 {record['sha256'][:12]})"
