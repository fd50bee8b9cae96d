"""A run's parts built from its config: pure construction, no training.

Training (:mod:`mmx.trainer`), ``mmx eval``, ``mmx bench``, the FLOP counter and the figures all
build their device, data, network, mixer, loss, optimiser and schedule here, so none of them
imports the training loop.
"""

from __future__ import annotations

import os
import sys
from typing import Callable

import hydra
import torch
from hydra.errors import InstantiationException
from omegaconf import DictConfig, OmegaConf

from mmx.data import Splits
from mmx.distributed import Ranks
from mmx.errors import UserError
from mmx.layout import check_cpu_kernels
from mmx.mixing import MixContext, MixingMethod, method_class
from mmx.models import StagedNetwork

PRECISIONS = ("fp32", "bf16", "fp16")
TF32 = {"auto": ("tf32", "none"), True: ("tf32", "tf32"), False: ("ieee", "ieee")}  # (convolutions, matmuls)


def instantiate(node: DictConfig, *, keep_name: bool = False, **kwargs):
    """``hydra.utils.instantiate`` of a config group; its ``name`` label is left out unless ``keep_name``.

    Groups marked ``_partial_`` (loss, optimiser, schedule) come back as factories awaiting their
    remaining arguments. A :class:`UserError` raised by a component keeps its one sentence.
    """
    fields = {k: v for k, v in OmegaConf.to_container(node, resolve=True).items() if keep_name or k != "name"}
    try:
        return hydra.utils.instantiate(fields, **kwargs)
    except InstantiationException as error:
        if isinstance(error.__cause__, UserError):
            raise error.__cause__ from None
        raise


def resolve_device(name: str, ranks: Ranks = Ranks()) -> torch.device:
    """``auto``: CUDA when present, else CPU. Under torchrun each process takes GPU ``LOCAL_RANK``."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"trainer.device={name} is not a device; use auto, cpu, cuda, cuda:N or cuda:free") from None
    if device.type not in ("cpu", "cuda"):
        raise UserError(f"trainer.device={name} is not supported; use auto, cpu, cuda, cuda:N or cuda:free")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"trainer.device={name} but no CUDA device is visible; use trainer.device=cpu or auto")
    if device.type == "cuda" and ranks.active:
        device = torch.device("cuda", ranks.local_rank)
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise UserError(
            f"trainer.device={name} but only {torch.cuda.device_count()} GPU(s) are visible; "
            f"choose one of cuda:0..cuda:{torch.cuda.device_count() - 1}"
        )
    return device


def check_environment(cfg: DictConfig) -> None:
    """What this machine can run of ``cfg``: its device, precision, CUDA graphs and CPU kernels, checked without
    data (the network is built on the meta device)."""
    if cfg.trainer.device == "cuda:free":
        return  # claimed when the run starts (mmx.gpu_slots)
    device = resolve_device(cfg.trainer.device)
    resolve_precision(cfg.trainer.precision, device)
    if cfg.trainer.cuda_graphs and device.type != "cuda":
        raise UserError(
            f"trainer.cuda_graphs=true needs a CUDA device, but this run is on {device.type}; drop it "
            f"(trainer.compile=true works on the CPU)"
        )
    channels_last = uses_channels_last(cfg.trainer.channels_last, device)
    if device.type == "cpu" and channels_last:
        with torch.device("meta"):
            network = create_model(cfg.model, cfg.dataset.num_classes, cfg.dataset.channels, cfg.dataset.image_size)
        check_cpu_kernels(network, device, channels_last)


def device_name(device: torch.device) -> str:
    """What a run's records call its device: the GPU's name, or the CPU and its thread count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"


def resolve_precision(setting: str, device: torch.device) -> str:
    """``auto``: bf16 on GPUs, fp32 on CPUs."""
    precision = ("bf16" if device.type == "cuda" else "fp32") if setting == "auto" else setting
    if precision == "fp16" and device.type != "cuda":
        raise UserError(
            f"trainer.precision=fp16 needs a CUDA device, but this run is on {device.type}; "
            f"use trainer.precision=fp32 (or bf16)"
        )
    return precision


def uses_channels_last(setting, device: torch.device) -> bool:
    """``auto``: channels_last on GPUs (tensor cores want NHWC), NCHW on CPUs."""
    return device.type == "cuda" if setting == "auto" else bool(setting)


def configure_backends(trainer: DictConfig, device: torch.device) -> None:
    """Process-wide numerics a run asks for, set both ways every time: the jobs of a multirun share one process."""
    if device.type == "cuda":
        torch.cuda.set_device(device)  # streams, graph captures and collectives default to the current device
    if trainer.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(bool(trainer.deterministic))
    torch.backends.cudnn.benchmark = not trainer.deterministic
    # trainer.tf32: how fp32 convolutions and matmuls run on Ampere and later GPUs. auto is PyTorch's
    # default (TF32 convolutions, IEEE matmuls); false is IEEE fp32 throughout, as the 2018 GPUs computed.
    torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision = TF32[trainer.tf32]


def load_data(dataset: DictConfig) -> Splits:
    """The dataset's splits as its loader returns them (on the CPU), cut to ``classes``, with ``val_size``
    training images held out for validation, and the rest cut to ``labels_per_class``, each if set."""
    data = instantiate(dataset.source)
    if dataset.get("classes") is not None:
        data = data.with_classes(list(dataset.classes))
    if dataset.get("val_size") is not None:
        data = data.with_validation(dataset.val_size, dataset.get("val_seed", 0))
    if dataset.labels_per_class is not None:
        data = data.with_labels_per_class(dataset.labels_per_class)
    return data


def create_model(model: DictConfig, num_classes: int, in_channels: int, image_size: int) -> StagedNetwork:
    """Any model config (``model=NAME``) as a network for data of this shape."""
    return instantiate(model, num_classes=num_classes, in_channels=in_channels, image_size=image_size)


def create_mixer(mixup: DictConfig, context: MixContext) -> MixingMethod:
    """The ``mixup`` group's mixing method, its settings checked against the network's mixing points (and their
    shapes, where the context has them) first."""
    method = method_class(mixup)
    method.check(mixup, context.num_points)
    if context.point_shapes:
        method.check_shapes(mixup, context.point_shapes)
    # The context reaches the class as it is, not merged into the config (OmegaConf would copy it into a DictConfig).
    return instantiate(mixup, keep_name=True, _partial_=True)(context=context)


def create_loss(loss: DictConfig) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    return instantiate(loss)


def create_optimizer(optim: DictConfig, parameters) -> torch.optim.Optimizer:
    return instantiate(optim)(parameters)


def create_schedule(schedule: DictConfig, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
    return instantiate(schedule)(optimizer)


def show_progress(setting) -> bool:
    """``trainer.progress`` (and ``mmx eval``'s ``progress``): ``auto`` shows tqdm bars only on a
    terminal, so that a redirected log stays plain text."""
    return sys.stderr.isatty() if setting == "auto" else bool(setting)
