"""When training pauses inside an epoch: a stop signal, or a mid-epoch checkpoint that is due.

Slurm, Kubernetes, systemd and ``timeout`` stop a process with SIGTERM; submitit has Slurm send
SIGUSR2 (``SUBMITIT_PREEMPT_SIGNAL``) before a job's time limit and at preemption. The handlers here
only note the signal. The training loop asks :class:`StepBoundary` after every step, so the stop
lands on a step boundary, where the state is whole: it writes a checkpoint of that exact state and
then stops (:class:`Stopped`), or first hands the signal to the handler that was installed before
mmx's (submitit's, which requeues the job and exits).

``trainer.checkpoint_every`` (N steps, or ``"N min"``) writes such checkpoints without a signal, so
that a kill loses at most that much work even when an epoch is long.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING, Iterator

from mmx.errors import UserError

if TYPE_CHECKING:  # torch is imported when training starts, not when a config is checked
    import torch

    from mmx.distributed import Ranks

log = logging.getLogger("mmx")
PREEMPT_SIGNAL_ENV = "SUBMITIT_PREEMPT_SIGNAL"  # submitit's name for the signal it has Slurm send ("USR2")
MINUTES = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*min\s*$")


class Stopped(Exception):
    """A stop signal ended training on a step boundary, after a checkpoint of that step; the message says where."""

    def __init__(self, signum: int, where: str):
        super().__init__(f"stopped by {signal_name(signum)} {where}")
        self.signum, self.where = signum, where

    @property
    def exit_status(self) -> int:
        """The shell's convention for a process a signal ended: 128 + the signal's number (143 for SIGTERM)."""
        return 128 + self.signum


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


def preemption_signal() -> signal.Signals:
    """The signal submitit asks Slurm to send before the time limit (``SUBMITIT_PREEMPT_SIGNAL``, USR2 by default)."""
    name = os.environ.get(PREEMPT_SIGNAL_ENV, "USR2").upper().removeprefix("SIG")
    try:
        return signal.Signals[f"SIG{name}"]
    except KeyError:
        raise UserError(
            f"{PREEMPT_SIGNAL_ENV}={os.environ[PREEMPT_SIGNAL_ENV]} is not a signal; set it to a signal's name "
            f"such as USR2 (what submitit uses by default), or unset it"
        ) from None


class StopSignals:
    """SIGTERM and the preemption signal, noted while training (:meth:`listening`) and acted on at a step boundary."""

    def __init__(self):
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    @contextlib.contextmanager
    def listening(self) -> Iterator["StopSignals"]:
        """Note the signals while the block runs, then put the handlers that were there back.

        Only the main thread can install handlers (``mmx.train`` called from another thread listens to none).
        """
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        for signum in dict.fromkeys((signal.SIGTERM, preemption_signal())):
            self._previous[signum] = signal.signal(signum, self._note)
        try:
            yield self
        finally:
            for signum, handler in self._previous.items():
                signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
            self._previous.clear()

    def _note(self, signum: int, frame) -> None:
        if self.received is None:  # the first one decides; a second changes nothing
            self.received = signum

    def hand_over(self) -> None:
        """Once the checkpoint is written: call the handler that was installed before mmx's for the signal received,
        if it is Python code. Under submitit that is its preemption handler: it requeues the job and exits."""
        previous = self._previous.get(self.received)
        if callable(previous) and previous is not signal.default_int_handler:
            try:
                previous(self.received, None)
            except subprocess.CalledProcessError as error:
                # submitit's `scontrol requeue` fails when Slurm requeued the job itself (preemption with
                # GraceTime=0): exit as a requeued job does, leaving no result, and the job's next start continues
                if list(error.cmd[:2]) != ["scontrol", "requeue"]:
                    raise
                from mmx.slurm import requeued_by_slurm

                if not requeued_by_slurm(error.cmd[2]):
                    raise
                log.info("job %s: Slurm requeued it itself; its next start continues the run", error.cmd[2])
                sys.exit(-1)


def parse_checkpoint_every(value) -> tuple[int | None, float | None]:
    """``trainer.checkpoint_every`` as (steps, seconds): null, a number of steps, or minutes such as ``"30min"``."""
    if value is None:
        return None, None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value, None
    match = MINUTES.match(str(value)) if isinstance(value, str) else None
    if match and float(match.group(1)) > 0:
        return None, float(match.group(1)) * 60
    raise UserError(
        f"trainer.checkpoint_every={value} is not allowed: give a number of steps (e.g. 500) or of minutes "
        f"(e.g. 30min), or null for checkpoints at the ends of epochs only"
    )


class StepBoundary:
    """After each training step: whether to write a mid-epoch checkpoint now, and which signal (if any) stops the run.

    In one process the answer costs a clock read, no host sync. Under torchrun every process must stop, and
    write its part of the checkpoint, at the same step: the signal and the clock are agreed on (one tiny
    all-reduce) every ``agree_every`` steps (``trainer.finite_check_every``, when the loss check syncs anyway);
    a checkpoint every N steps needs no agreement.
    """

    def __init__(
        self,
        signals: StopSignals,
        checkpoint_every,
        ranks: "Ranks",
        agree_every: int,
        device: "torch.device | None" = None,
        clock=time.monotonic,
    ):
        self.signals, self.ranks, self.agree_every, self.clock = signals, ranks, agree_every, clock
        self.device = device  # where the agreement's all-reduce runs (NCCL reduces GPU tensors only)
        self.every_steps, self.every_seconds = parse_checkpoint_every(checkpoint_every)
        self.saved()

    def saved(self) -> None:
        """A checkpoint was just written: the intervals count from here."""
        self.steps_since, self.saved_at = 0, self.clock()

    def after_step(self, step: int) -> tuple[bool, int | None]:
        """(write a checkpoint now, the signal to stop with after it) once step ``step`` of an epoch is done."""
        self.steps_since += 1
        by_steps = self.every_steps is not None and self.steps_since >= self.every_steps
        if self.ranks.active and step % self.agree_every:
            return by_steps, None
        signum, by_time = self.agreed()
        return by_steps or by_time or signum is not None, signum

    def agreed(self) -> tuple[int | None, bool]:
        """(the signal received, whether a checkpoint is due by time): under torchrun, by any process."""
        signum = self.signals.received or 0
        by_time = self.every_seconds is not None and self.clock() - self.saved_at >= self.every_seconds
        if self.ranks.active:
            import torch

            from mmx.distributed import max_across

            flags = max_across(torch.tensor([float(signum), float(by_time)], device=self.device), self.ranks)
            signum, by_time = int(flags[0]), bool(flags[1])
        return signum or None, by_time
