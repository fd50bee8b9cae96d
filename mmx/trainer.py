"""What trains one run: its parts, assembled once in the order correctness needs.

The loop (:mod:`mmx.train`) asks a :class:`Trainer` to train an epoch, to evaluate and for its
state; it never reaches inside or patches it.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from omegaconf import DictConfig
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from mmx import distributed
from mmx.checks import check_run
from mmx.data import Normalizer
from mmx.distributed import Ranks, gather_rows, shard_bounds, sum_across, sync_buffers
from mmx.errors import UserError
from mmx.layout import check_cpu_kernels, memory_format
from mmx.metrics import classification_metrics
from mmx.mixing import MixContext
from mmx.parts import (
    configure_backends,
    create_loss,
    create_mixer,
    create_model,
    create_optimizer,
    create_schedule,
    load_data,
    resolve_device,
    resolve_precision,
    uses_channels_last,
)
from mmx.step import TrainStep, autocast, capturable_sgd


class Diverged(Exception):
    """Training produced non-finite numbers in ``epoch``; the message says which and where."""

    def __init__(self, epoch: int, what: str):
        super().__init__(what)
        self.epoch = epoch


@dataclass
class RunningEpoch:
    """An epoch in progress: its per-step losses and correct count (on the device), how far it is, and its time."""

    epoch: int
    steps: int
    step_losses: torch.Tensor
    correct: torch.Tensor
    done: int = 0  # steps trained
    checked: int = 0  # steps whose losses have been checked for finiteness
    started: float = field(default_factory=time.perf_counter)  # earlier by the time trained before a stop

    @property
    def seconds(self) -> float:
        """Training time so far (before a stop, too)."""
        return time.perf_counter() - self.started


class Trainer:
    """One run's network, data, optimiser, schedule, mixer and training step.

    Built in this order: the parts from the config; then the checkpoint ``state`` when resuming
    (it replaces the optimiser's parameter groups, so it must come first); then the fused, tensor-lr
    SGD that CUDA graphs replay; then DistributedDataParallel under torchrun; then the step.
    ``network`` is the bare network (checkpoints, evaluation, mixing points); ``model`` is what
    trains: the network, or DDP around it.
    """

    def __init__(self, cfg: DictConfig, ranks: Ranks = Ranks(), device: str | None = None, state: dict | None = None):
        self.cfg, self.ranks = cfg, ranks
        self.running: RunningEpoch | None = None  # the epoch being trained, while train_epoch runs
        self.resumed: tuple[dict, dict] | None = None  # (where, statistics so far) of a mid-epoch checkpoint
        self.device = resolve_device(device or cfg.trainer.device, ranks)
        configure_backends(cfg.trainer, self.device)
        distributed.start(ranks, self.device)
        self.precision = resolve_precision(cfg.trainer.precision, self.device)
        data = load_data(cfg.dataset)
        torch.manual_seed(cfg.seed)  # the network's initial weights
        network = create_model(cfg.model, data.num_classes, data.channels, data.image_size)
        check_run(cfg, train_size=data.train_size, world_size=ranks.world_size)
        self.channels_last = uses_channels_last(cfg.trainer.channels_last, self.device)
        check_cpu_kernels(network, self.device, self.channels_last)
        if cfg.trainer.sync_bn and ranks.active:
            if self.device.type != "cuda":
                raise UserError(
                    "trainer.sync_bn=true needs CUDA devices (SyncBatchNorm runs on GPUs only); "
                    "drop it or train on GPUs"
                )
            network = torch.nn.SyncBatchNorm.convert_sync_batchnorm(network)
        self.network = network.to(self.device, memory_format=memory_format(self.channels_last))
        self.data = data.to(self.device)
        self.optimizer = create_optimizer(cfg.optim, self.network.parameters())
        self.scheduler = create_schedule(cfg.schedule, self.optimizer)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        self.normalizer = Normalizer(cfg.dataset.mean, cfg.dataset.std, self.device, self.channels_last)
        self.batches = self.data.train_batches(
            cfg.batch_size,
            self.normalizer,
            crop_padding=cfg.dataset.crop_padding,
            flip=cfg.dataset.flip,
            seed=cfg.seed * 1000 + 1,
            rank=ranks.rank,
            world_size=ranks.world_size,
        )
        # Each process mixes within its own slice of the batch, with draws of its own.
        self.mixer = create_mixer(
            cfg.mixup,
            MixContext(
                num_points=self.network.num_points,
                num_classes=data.num_classes,
                channels=data.channels,
                image_size=data.image_size,
                device=self.device,
                seed=cfg.seed * 1000 + 2 + 7919 * ranks.rank,
                point_shapes=self.network.point_shapes(data.channels, data.image_size),
            ),
        )
        if state is not None:
            self.load_state_dict(state)
        if uses_fused_sgd(cfg.trainer):
            capturable_sgd(self.optimizer, self.device)
        self.model = self.network
        if ranks.active:  # gradients averaged across processes; parameters and buffers start from rank 0's
            self.model = DistributedDataParallel(
                self.network, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        trainer = cfg.trainer
        self.step = TrainStep(
            self.model,
            self.optimizer,
            self.scaler,
            create_loss(cfg.loss),
            self.data.num_classes,
            self.device,
            self.precision,
            compile=trainer.compile,
            compile_mode=trainer.compile_mode,
            compile_backend=trainer.compile_backend,
            cuda_graphs=trainer.cuda_graphs,
            method=self.mixer,
        )

    @property
    def lr(self) -> float:
        """The learning rate of the coming epoch (a device tensor under CUDA graphs: read once an epoch)."""
        return float(self.optimizer.param_groups[0]["lr"])

    def train_epoch(
        self, epoch: int, progress: bool = False, max_steps: int | None = None, after_step: Callable | None = None
    ) -> dict:
        """One pass over the training set (or the rest of one a mid-epoch checkpoint stopped in), then one step of
        the schedule.

        Statistics stay on the device; the host reads them every ``trainer.finite_check_every``
        steps (to stop a diverged run within that many steps, not after a whole epoch) and at the
        end. Stops with :class:`Diverged` when a loss, or the weights after the last update, are
        not finite.
        ``max_steps`` (default ``trainer.max_steps_per_epoch``) cuts the epoch; with
        ``trainer.steps_until_captured`` (smoke runs) a cut epoch under CUDA graphs goes on until
        every mixing point has been captured and replayed.
        ``after_step(running)`` is called after every step with the :class:`RunningEpoch`; while it runs,
        :meth:`state_dict` holds the epoch so far, and a resume from that state finishes the epoch
        as if it had never stopped.
        """
        self.model.train()
        max_steps = self.cfg.trainer.max_steps_per_epoch if max_steps is None else max_steps
        until_captured = self.cfg.trainer.steps_until_captured and self.cfg.trainer.cuda_graphs
        steps = len(self.batches) if max_steps is None or until_captured else min(max_steps, len(self.batches))
        running = self.running = self._resumed_epoch(epoch, steps) or RunningEpoch(
            epoch, steps, torch.zeros(steps, device=self.device), torch.zeros((), device=self.device)
        )
        check_every = self.cfg.trainer.finite_check_every
        for images, labels in tqdm(
            itertools.islice(self.batches, steps - running.done),
            initial=running.done,
            total=steps,
            desc=f"epoch {epoch}",
            leave=False,
            disable=not progress,
        ):
            loss, step_correct = self.step(images, labels, self.mixer.draw(len(images)))
            running.step_losses[running.done] = loss
            running.correct += step_correct
            running.done += 1
            if running.done - running.checked == check_every:  # a host sync every check_every steps, never per step
                self._check_losses(running.step_losses[: running.done], epoch, first=running.checked)
                running.checked = running.done
            if until_captured and running.done >= (max_steps or 0) and self.step.captured(self.mixer.programs):
                break
            if after_step is not None:
                after_step(running)
        self.running = None
        done, correct = running.done, running.correct
        step_losses = running.step_losses[:done]
        sum_across(step_losses, self.ranks)
        sum_across(correct, self.ranks)
        losses = step_losses.cpu() / self.ranks.world_size  # the epoch's one host sync
        seconds = running.seconds
        finite = torch.isfinite(losses)
        if not finite.all():
            bad = int((~finite).nonzero()[0]) + 1
            raise Diverged(epoch, f"the training loss became {float(losses[bad - 1])} at epoch {epoch}, step {bad}")
        if not all_finite(self.network):  # a finite loss can still be followed by an update that overflows
            raise Diverged(
                epoch,
                f"the weights became non-finite in epoch {epoch} although its losses were finite "
                f"(an update of its last steps overflowed)",
            )
        self.scheduler.step()
        images = done * self.batches.batch_size
        return {
            "train_loss": float(losses.mean()),
            "train_acc": float(correct) / images * 100,
            "train_seconds": seconds,
            "train_images_per_second": images / seconds,
            "images": images,
            "step_losses": losses.tolist(),
        }

    def _resumed_epoch(self, epoch: int, steps: int) -> "RunningEpoch | None":
        """The epoch a mid-epoch checkpoint was written in, as it stood then (once: the first epoch trained)."""
        resumed, self.resumed = self.resumed, None
        if resumed is None:
            return None
        partial, so_far = resumed
        if (partial["epoch"], partial["steps"]) != (epoch, steps):
            raise RuntimeError(
                f"the checkpoint stopped inside epoch {partial['epoch']} of {partial['steps']} steps, but the loop "
                f"went on with epoch {epoch} of {steps} steps"
            )
        losses = torch.zeros(steps, device=self.device)
        losses[: partial["step"]] = so_far["step_losses"].to(self.device)
        return RunningEpoch(
            epoch,
            steps,
            losses,
            so_far["correct"].to(self.device),
            partial["step"],
            partial["checked"],
            time.perf_counter() - partial["seconds"],
        )

    def check_finite_so_far(self) -> None:
        """Before a mid-epoch checkpoint: the losses since the last check, and the weights, are finite (or
        :class:`Diverged`). A collective under torchrun."""
        running = self.running
        if running.done > running.checked:
            self._check_losses(running.step_losses[: running.done], running.epoch, first=running.checked)
            running.checked = running.done
        if not all_finite(self.network):
            raise Diverged(
                running.epoch,
                f"the weights became non-finite in epoch {running.epoch} by step {running.done} although its "
                f"losses were finite (an update overflowed)",
            )

    def _check_losses(self, losses: torch.Tensor, epoch: int, first: int) -> None:
        """Stop if a loss since step ``first`` is not finite. One host sync; every process agrees (a collective)."""
        window = losses[first:]
        flag = (~torch.isfinite(window)).any().to(torch.float32)
        sum_across(flag, self.ranks)
        if flag.item():
            values = window.cpu()
            bad = (~torch.isfinite(values)).nonzero().flatten()
            if len(bad):
                step = first + int(bad[0]) + 1
                raise Diverged(epoch, f"the training loss became {float(values[bad[0]])} at epoch {epoch}, step {step}")
            raise Diverged(
                epoch,
                f"the training loss became non-finite on another process at epoch {epoch}, "
                f"between steps {first + 1} and {first + len(values)}",
            )

    @property
    def validates(self) -> bool:
        """Whether the run has a validation split (``dataset.val_size``): it then chooses its best epoch on it."""
        return self.data.validation is not None

    @torch.inference_mode()
    def evaluate(self, max_batches: int | None = None, split: str = "test") -> dict:
        """Accuracy, error, top-5, NLL and ECE on the test set, or on the validation split (``split="val"``),
        logits gathered on the device.

        Under torchrun each process scores a contiguous shard and the logits are gathered.
        """
        max_batches = self.cfg.trainer.max_eval_batches if max_batches is None else max_batches
        batch_size = self.cfg.trainer.eval_batch_size
        size, batches = (
            (self.data.val_size, self.data.val_batches)
            if split == "val"
            else (self.data.test_size, self.data.test_batches)
        )
        sync_buffers(self.network, self.ranks)
        self.network.eval()
        count = size if max_batches is None else min(size, max_batches * batch_size)
        first, last = shard_bounds(count, self.ranks)
        logits = [torch.zeros(0, self.data.num_classes, device=self.device)]
        labels = [torch.zeros(0, dtype=torch.long, device=self.device)]
        for images, batch_labels in batches(first, last, batch_size, self.normalizer):
            with autocast(self.device, self.precision):
                logits.append(self.network(images).float())
            labels.append(batch_labels)
        return classification_metrics(
            gather_rows(torch.cat(logits), count, self.ranks), gather_rows(torch.cat(labels), count, self.ranks)
        )

    def state_dict(self) -> dict:
        """Everything a resume needs to continue exactly: weights, optimiser, schedule, scaler, generators.

        The data and mixing generators differ between processes, so every process's are kept (a
        collective: every process must call it).
        """
        running = self.running
        own = {"data": self.batches.state_dict(running.done if running else None), "mixer": self.mixer.state_dict()}
        if running:  # this process's statistics of the epoch so far
            own["epoch_so_far"] = {
                "step_losses": running.step_losses[: running.done].cpu(),
                "correct": running.correct.cpu(),
            }
        state = {
            "world_size": self.ranks.world_size,
            "model": self.network.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "process_rng": distributed.gather_objects(own, self.ranks),
            "global_rng": global_rng_state(),
        }
        if running:
            state["partial"] = {
                "epoch": running.epoch,
                "step": running.done,
                "steps": running.steps,
                "checked": running.checked,
                "seconds": running.seconds,
            }
        return state

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict` (before the first step: the constructor does it when given ``state``)."""
        if state["world_size"] != self.ranks.world_size:
            raise UserError(
                f"this run was trained by {state['world_size']} process(es) and is resumed by "
                f"{self.ranks.world_size}; resume it with --nproc_per_node={state['world_size']} (in total)"
            )
        try:
            self.network.load_state_dict(state["model"])
        except RuntimeError as error:  # size mismatches, missing or unexpected keys
            detail = next((line.strip() for line in str(error).splitlines()[1:] if line.strip()), str(error))
            raise UserError(
                f"the checkpoint's weights do not fit the network this config builds ({detail}); resume with the "
                f"config the run was trained with"
            ) from None
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        own = state["process_rng"][self.ranks.rank]
        self.batches.load_state_dict(own["data"])
        self.mixer.load_state_dict(own["mixer"])
        restore_global_rng_state(state["global_rng"])
        if "partial" in state:  # written inside an epoch: the next train_epoch goes on from there
            self.resumed = (state["partial"], own["epoch_so_far"])


def uses_fused_sgd(trainer: DictConfig) -> bool:
    """``trainer.fused_sgd``: ``auto`` is on exactly when CUDA graphs need it."""
    return bool(trainer.cuda_graphs) if trainer.fused_sgd == "auto" else bool(trainer.fused_sgd)


def all_finite(module: torch.nn.Module) -> bool:
    """Whether every floating parameter and buffer is finite: one fused reduction, one host sync.

    The largest magnitude of each tensor (``foreach`` inf-norm) is NaN or inf exactly when the
    tensor holds one, and cannot overflow as a sum of squares would.
    """
    tensors = [t for t in itertools.chain(module.parameters(), module.buffers()) if t.is_floating_point()]
    return bool(torch.isfinite(torch.stack(torch._foreach_norm(tensors, float("inf")))).all())


def global_rng_state() -> dict:
    """The process-wide generators (used by e.g. dropout), to restore on resume."""
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_global_rng_state(state: dict) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
