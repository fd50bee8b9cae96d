"""The training loop: one run directory, one config, resumable at every epoch boundary."""
from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import hydra
import torch
from hydra.errors import InstantiationException
from torch.nn.parallel import DistributedDataParallel
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from mmx import checkpoint, distributed, gpu_slots
from mmx.config import validate
from mmx.distributed import Ranks, gather_rows, shard_bounds, sum_across, sync_buffers
from mmx.data import ImageSplits, Normalizer, TrainBatches
from mmx.data.folders import FolderSplits, LoaderBatches
from mmx.errors import UserError
from mmx.losses import LOSSES
from mmx.metrics import classification_metrics
from mmx.mixing import Mixer
from mmx.models import StagedNetwork
from mmx.run_log import RunLog, write_json
from mmx.step import TrainStep, autocast, capturable_sgd

log = logging.getLogger("mmx")

SMOKE_STEPS = 2


def smoke_version(cfg: DictConfig) -> DictConfig:
    """Any recipe cut to two training steps and one test batch of a single epoch.

    With ``trainer.cuda_graphs`` the epoch instead runs until every mixing point has been captured
    and replayed once (see :func:`train_one_epoch`), so a smoke run checks the capture too.
    """
    cfg = cfg.copy()
    cfg.epochs = 1
    if "milestones" in cfg.schedule:
        cfg.schedule.milestones = []
    cfg.trainer.max_steps_per_epoch = None if cfg.trainer.cuda_graphs else SMOKE_STEPS
    cfg.trainer.max_eval_batches = 1
    return cfg


def build(node: DictConfig, **kwargs):
    """``hydra.utils.instantiate`` of a config group, leaving out its ``name`` label.

    Groups marked ``_partial_`` (optimiser, schedule) come back as factories awaiting their
    parameters or optimiser.
    """
    fields = {k: v for k, v in OmegaConf.to_container(node, resolve=True).items() if k != "name"}
    try:
        return hydra.utils.instantiate(fields, **kwargs)
    except InstantiationException as error:
        if isinstance(error.__cause__, UserError):  # e.g. missing data: keep its one sentence
            raise error.__cause__ from None
        raise


def resolve_device(name: str, ranks: Ranks) -> torch.device:
    """``auto``: CUDA when present, else CPU. Under torchrun each process takes GPU ``LOCAL_RANK``."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"trainer.device={name} but no CUDA device is visible; use trainer.device=cpu or auto")
    if device.type == "cuda" and ranks.active:
        device = torch.device("cuda", ranks.local_rank)
    return device


TF32 = {"auto": ("tf32", "none"), True: ("tf32", "tf32"), False: ("ieee", "ieee")}  # (convolutions, matmuls)


def set_tf32(mode) -> None:
    """``trainer.tf32``: how fp32 convolutions and matmuls run on Ampere and later GPUs (no effect on CPUs).

    ``auto`` is PyTorch's default (TF32 convolutions, IEEE matmuls); ``false`` is IEEE fp32
    throughout, as the GPUs of 2018 that made the paper's numbers computed.
    """
    if mode not in TF32:
        raise UserError(f"trainer.tf32 must be auto, true or false (got {mode})")
    torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision = TF32[mode]


@dataclass
class Setup:
    """Everything one run trains with, built from its config."""

    ranks: Ranks
    device: torch.device
    precision: str
    data: ImageSplits | FolderSplits
    network: StagedNetwork  # the network itself: checkpoints, evaluation, mixing points
    model: torch.nn.Module  # what trains: the network, or DDP around it under torchrun (see train())
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    batches: TrainBatches | LoaderBatches
    normalizer: Normalizer
    mixer: Mixer
    channels_last: bool
    step: TrainStep | None = None  # built by build_step() once the model is final (DDP-wrapped or not)


def setup(cfg: DictConfig, ranks: Ranks, device_name: str | None = None) -> Setup:
    """Build a run's parts; ``device_name`` replaces ``trainer.device`` (a GPU claimed for ``cuda:free``)."""
    device = resolve_device(device_name or cfg.trainer.device, ranks)
    if device.type == "cuda":
        # Streams, graph captures and collectives without an explicit device use the current one.
        torch.cuda.set_device(device)
    distributed.start(ranks, device)
    precision = cfg.trainer.precision
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" else "fp32"
    if cfg.trainer.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    # Set both ways: the jobs of a multirun share one process.
    torch.use_deterministic_algorithms(bool(cfg.trainer.deterministic))
    torch.backends.cudnn.benchmark = not cfg.trainer.deterministic
    set_tf32(cfg.trainer.tf32)

    data = build(cfg.dataset.source)
    if cfg.dataset.labels_per_class is not None:
        data = data.with_labels_per_class(cfg.dataset.labels_per_class)
    torch.manual_seed(cfg.seed)
    model = build(cfg.model, num_classes=data.num_classes, in_channels=data.channels)
    validate(cfg, mix_points=model.mix_points, train_size=data.train_size, device_type=device.type,
             world_size=ranks.world_size)

    channels_last = device.type == "cuda" if cfg.trainer.channels_last == "auto" else bool(cfg.trainer.channels_last)
    if ranks.active and cfg.trainer.sync_bn:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    network = model.to(device, memory_format=torch.channels_last if channels_last else torch.preserve_format)
    data = data.to(device)
    optimizer = build(cfg.optim)(network.parameters())
    scheduler = build(cfg.schedule)(optimizer)
    normalizer = Normalizer(cfg.dataset.mean, cfg.dataset.std, device)
    batches = data.train_batches(cfg.batch_size, normalizer, crop_padding=cfg.dataset.crop_padding,
                                 flip=cfg.dataset.flip, seed=cfg.seed * 1000 + 1, rank=ranks.rank,
                                 world_size=ranks.world_size)
    # Each process mixes within its own batch, with its own draws.
    mixer = Mixer(cfg.mixup.name, cfg.mixup.alpha, cfg.mixup.layers, device,
                  seed=cfg.seed * 1000 + 2 + 7919 * ranks.rank)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    return Setup(ranks, device, precision, data, network, network, optimizer, scheduler, scaler, batches, normalizer,
                 mixer, channels_last)


def uses_fused_sgd(cfg: DictConfig) -> bool:
    """``trainer.fused_sgd``: ``auto`` is on exactly when CUDA graphs need it."""
    return bool(cfg.trainer.cuda_graphs) if cfg.trainer.fused_sgd == "auto" else bool(cfg.trainer.fused_sgd)


def build_step(s: Setup, cfg: DictConfig) -> TrainStep:
    """The training step the trainer settings ask for (eager, compiled and/or CUDA-graph replayed)."""
    trainer = cfg.trainer
    if uses_fused_sgd(cfg):
        capturable_sgd(s.optimizer, s.device)  # after any restore: a checkpoint's param_groups replace ours
    s.step = TrainStep(s.model, s.optimizer, s.scaler, LOSSES[cfg.loss], s.data.num_classes, s.device, s.precision,
                       compile=trainer.compile, compile_mode=trainer.compile_mode,
                       compile_backend=trainer.compile_backend, cuda_graphs=trainer.cuda_graphs,
                       programs=max(1, len(s.mixer.layers)))
    return s.step


def train_one_epoch(s: Setup, progress: bool, epoch: int, max_steps: int | None = None,
                    until: Callable[[], bool] | None = None) -> dict:
    """One pass over the training set; statistics stay on the device until the epoch ends.

    ``until``: a host-side condition checked after each step that ends the epoch early (smoke runs).
    """
    s.model.train()
    steps = len(s.batches) if max_steps is None else min(max_steps, len(s.batches))
    step_losses = torch.zeros(steps, device=s.device)
    correct = torch.zeros((), device=s.device)
    start = time.perf_counter()
    done = 0
    for images, labels in tqdm(itertools.islice(s.batches, steps), total=steps, desc=f"epoch {epoch}",
                               leave=False, disable=not progress):
        if s.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        loss, step_correct = s.step(images, labels, s.mixer.draw(len(images)))
        step_losses[done] = loss
        correct += step_correct
        done += 1
        if until is not None and until():
            break
    step_losses = step_losses[:done]
    sum_across(step_losses, s.ranks)
    sum_across(correct, s.ranks)
    losses = step_losses.cpu() / s.ranks.world_size  # the epoch's one host sync
    seconds = time.perf_counter() - start
    finite = torch.isfinite(losses)
    if not finite.all():
        bad_step = int((~finite).nonzero()[0]) + 1
        raise Diverged(epoch, f"the training loss became {float(losses[bad_step - 1])} at epoch {epoch}, step {bad_step}")
    if not all_finite(s.network):  # a finite loss can still be followed by an update that overflows
        raise Diverged(epoch, f"the weights became non-finite in epoch {epoch} although its losses were finite "
                              f"(an update of its last steps overflowed)")
    return {"train_loss": float(losses.mean()), "train_acc": float(correct) / (done * s.batches.batch_size) * 100,
            "train_seconds": seconds, "train_images_per_second": done * s.batches.batch_size / seconds,
            "step_losses": losses.tolist()}


@torch.inference_mode()
def evaluate(s: Setup, batch_size: int, max_batches: int | None = None) -> dict:
    """Accuracy, error, NLL and ECE on the test set (logits gathered on the device).

    Under torchrun each process scores a contiguous shard and the logits are gathered.
    """
    sync_buffers(s.network, s.ranks)
    s.network.eval()
    count = s.data.test_size if max_batches is None else min(s.data.test_size, max_batches * batch_size)
    first, last = shard_bounds(count, s.ranks)
    logits = [torch.zeros(0, s.data.num_classes, device=s.device)]
    labels = [torch.zeros(0, dtype=torch.long, device=s.device)]
    for images, batch_labels in s.data.test_batches(first, last, batch_size, s.normalizer):
        if s.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast(s.device, s.precision):
            logits.append(s.network(images).float())
        labels.append(batch_labels)
    return classification_metrics(gather_rows(torch.cat(logits), count, s.ranks),
                                  gather_rows(torch.cat(labels), count, s.ranks))


class Diverged(Exception):
    """Training produced non-finite numbers in ``epoch``; the message says which and where."""

    def __init__(self, epoch: int, what: str):
        super().__init__(what)
        self.epoch = epoch


def all_finite(module: torch.nn.Module) -> bool:
    """Whether every floating parameter and buffer is finite: one fused reduction, one host sync.

    The largest magnitude of each tensor (``foreach`` inf-norm) is NaN or inf exactly when the
    tensor holds one, and cannot overflow as a sum of squares would.
    """
    tensors = [t for t in itertools.chain(module.parameters(), module.buffers()) if t.is_floating_point()]
    return bool(torch.isfinite(torch.stack(torch._foreach_norm(tensors, float("inf")))).all())


def train(cfg: DictConfig, run_dir: Path, resume: bool = False) -> dict:
    """Train (or continue) the run in ``run_dir`` and return its summary.

    Under torchrun every process calls this; the main process's ``run_dir`` is used, and only
    the main process writes.
    """
    ranks = distributed.from_environment()
    try:
        with gpu_slots.claim(cfg.trainer.device, ranks.world_size) as device_name:
            return _train(cfg, run_dir, resume, ranks, device_name)
    finally:
        distributed.stop(ranks)


def _train(cfg: DictConfig, run_dir: Path, resume: bool, ranks: Ranks, device_name: str) -> dict:
    if cfg.smoke:
        cfg = smoke_version(cfg)
    s = setup(cfg, ranks, device_name)
    run_dir = Path(distributed.from_main(str(run_dir), ranks))
    ckpt_dir = run_dir / "checkpoints"
    main = ranks.is_main
    info = log.info if main else (lambda *args: None)
    start_epoch, best, wall_seconds = 0, None, 0.0
    if resume:
        start_epoch, best, wall_seconds = restore(s, checkpoint.load(ckpt_dir / "last.pt"))
        info("resuming %s from epoch %d", run_dir, start_epoch)
    elif main:
        OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
    if ranks.active:  # gradients averaged across processes; parameters and buffers start from rank 0's
        s.model = DistributedDataParallel(s.network, device_ids=[s.device.index] if s.device.type == "cuda" else None)
    build_step(s, cfg)

    if start_epoch >= cfg.epochs:
        info("%s has already finished its %d epochs; nothing to do", run_dir, cfg.epochs)
        return json.loads((run_dir / "summary.json").read_text())
    # A smoke run with CUDA graphs trains until every mixing point has been captured and replayed.
    smoke_until = (lambda: s.step.captured([None] if not s.mixer.active else s.mixer.layers)) \
        if cfg.smoke and cfg.trainer.cuda_graphs else None
    run_log = RunLog(run_dir, resume_epoch=start_epoch) if main else None
    summary = None
    progress = cfg.trainer.progress and main
    epochs = tqdm(range(start_epoch + 1, cfg.epochs + 1), initial=start_epoch, total=cfg.epochs,
                  desc="training", disable=not progress)
    # logging_redirect_tqdm: log lines print above the progress bars, not through them
    with logging_redirect_tqdm(), contextlib.closing(run_log) if run_log else contextlib.nullcontext():
        for epoch in epochs:
            started = time.perf_counter()
            lr = float(s.optimizer.param_groups[0]["lr"])  # a device tensor under cuda_graphs: read once an epoch
            try:
                train_stats = train_one_epoch(s, progress, epoch, cfg.trainer.max_steps_per_epoch, until=smoke_until)
            except Diverged as error:
                kept = (f"the last good checkpoint is {ckpt_dir / 'last.pt'} (epoch {epoch - 1})" if epoch > 1
                        else "no checkpoint was written before it")
                raise UserError(f"{error}; {kept}; lower optim.lr or try loss/precision settings that keep it finite") from None
            s.scheduler.step()
            test = evaluate(s, cfg.trainer.eval_batch_size, cfg.trainer.max_eval_batches)
            epoch_seconds = time.perf_counter() - started
            wall_seconds += epoch_seconds
            final = {**{k: test[k] for k in ("acc", "error", "top5", "nll", "ece")}, "epoch": epoch}
            improved = best is None or final["error"] < best["error"]
            if improved:
                best = final
            state = training_state(s, epoch, best, wall_seconds)  # collective: every process takes part
            summary = _summary(cfg, s, best=best, final=final, epochs_done=epoch, wall_seconds=wall_seconds)
            if not main:
                continue
            row = {"epoch": epoch, "lr": lr, "train_loss": train_stats["train_loss"], "train_acc": train_stats["train_acc"],
                   "test_acc": test["acc"], "test_error": test["error"], "test_nll": test["nll"], "test_ece": test["ece"],
                   "epoch_seconds": epoch_seconds, "train_images_per_second": train_stats["train_images_per_second"],
                   "test_top5": test["top5"]}
            run_log.append(row)
            checkpoint.save_atomic(state, ckpt_dir / "last.pt")
            if improved:
                checkpoint.save_atomic(state, ckpt_dir / "best.pt")
            write_json(run_dir / "summary.json", summary)
            epochs.set_postfix(test_acc=f"{test['acc']:.2f}", nll=f"{test['nll']:.3f}")
            info("epoch %d/%d  lr %.4g  train loss %.4f acc %.2f  test acc %.2f nll %.4f ece %.4f  %.1fs  %.0f img/s",
                 epoch, cfg.epochs, lr, row["train_loss"], row["train_acc"], test["acc"], test["nll"], test["ece"],
                 epoch_seconds, row["train_images_per_second"])
    if ranks.active:
        summary["parameters_in_sync"] = distributed.parameters_in_sync(s.network, ranks)
        if main:
            write_json(run_dir / "summary.json", summary)
            if not summary["parameters_in_sync"]:
                log.warning("the processes ended with different parameters; this run's checkpoints hold rank 0's")
    return summary


def training_state(s: Setup, epoch: int, best: dict, wall_seconds: float) -> dict:
    """Everything a resume needs to continue exactly: weights, optimiser, schedule, scaler, generators.

    The data and mixing generators differ between processes, so every process's are kept.
    """
    own = {"data": s.batches.state_dict(), "mixer": s.mixer.state_dict()}
    return {
        "epoch": epoch, "best": best, "wall_seconds": wall_seconds, "world_size": s.ranks.world_size,
        "model": s.network.state_dict(), "optimizer": s.optimizer.state_dict(),
        "scheduler": s.scheduler.state_dict(), "scaler": s.scaler.state_dict(),
        "process_rng": distributed.gather_objects(own, s.ranks), "global_rng": checkpoint.global_rng_state(),
    }


def restore(s: Setup, state: dict) -> tuple[int, dict, float]:
    """Load a :func:`training_state` into ``s``; returns (epoch, best, wall_seconds)."""
    if state["world_size"] != s.ranks.world_size:
        raise UserError(f"this run was trained by {state['world_size']} process(es) and is resumed by "
                        f"{s.ranks.world_size}; resume it with --nproc_per_node={state['world_size']} (in total)")
    s.network.load_state_dict(state["model"])
    s.optimizer.load_state_dict(state["optimizer"])
    s.scheduler.load_state_dict(state["scheduler"])
    s.scaler.load_state_dict(state["scaler"])
    own = state["process_rng"][s.ranks.rank]
    s.batches.load_state_dict(own["data"])
    s.mixer.load_state_dict(own["mixer"])
    checkpoint.restore_global_rng_state(state["global_rng"])
    return state["epoch"], state["best"], state["wall_seconds"]


def _summary(cfg: DictConfig, s: Setup, *, best, final, epochs_done: int, wall_seconds: float) -> dict:
    return {
        "experiment": cfg.experiment, "dataset": cfg.dataset.name, "model": cfg.model.name, "mixup": cfg.mixup.name,
        "alpha": cfg.mixup.alpha if cfg.mixup.name != "none" else None,
        "layers": list(cfg.mixup.layers) if cfg.mixup.name != "none" else [],
        "loss": cfg.loss, "seed": cfg.seed, "epochs": cfg.epochs, "epochs_done": epochs_done, "smoke": cfg.smoke,
        "labels_per_class": cfg.dataset.labels_per_class,
        "finished": epochs_done == cfg.epochs, "final": final, "best": best,
        "wall_seconds": wall_seconds, "device": _device_name(s.device), "precision": s.precision,
        "world_size": s.ranks.world_size, "compile": cfg.trainer.compile, "cuda_graphs": cfg.trainer.cuda_graphs,
        "captured_points": sorted(p for p in s.step.graphs if p is not None) if cfg.trainer.cuda_graphs else None,
        "torch": torch.__version__,
    }


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"
