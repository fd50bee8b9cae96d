"""Checks on a composed config that Hydra's schema cannot express, each failing with one sentence."""
from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from mmx.errors import UserError


def validate(cfg: DictConfig, *, mix_points: int, train_size: int, device_type: str, world_size: int = 1) -> None:
    """Reject values that would crash later or silently train something else."""
    mixup = cfg.mixup
    if mixup.name != "none" and not mixup.alpha > 0:
        raise UserError(f"mixup.alpha must be > 0 for mixup={mixup.name} (got {mixup.alpha}); "
                        f"the paper uses 1.0 for input and 2.0 for manifold mixup on CIFAR")
    if mixup.name != "none":
        bad = [k for k in mixup.layers if not 0 <= k < mix_points]
        if bad or not mixup.layers:
            raise UserError(f"mixup.layers={list(mixup.layers)} is not a non-empty subset of this model's mixing "
                            f"points 0..{mix_points - 1} (0 is the input); pick layers from that range")
    if cfg.epochs <= 0:
        raise UserError(f"epochs must be a positive integer (got {cfg.epochs})")
    if "milestones" in cfg.schedule:
        milestones = list(cfg.schedule.milestones)
        if milestones != sorted(set(milestones)) or any(not 0 < m < cfg.epochs for m in milestones):
            raise UserError(f"schedule.milestones={milestones} must be strictly increasing epochs between 1 and "
                            f"{cfg.epochs - 1} (epochs={cfg.epochs}); set schedule.milestones=[...] to fit")
    if not 0 < cfg.batch_size <= train_size:
        raise UserError(f"batch_size={cfg.batch_size} must be between 1 and the training set size ({train_size}); "
                        f"lower batch_size")
    if cfg.batch_size % world_size:
        raise UserError(f"batch_size={cfg.batch_size} is the global batch and must split evenly over the "
                        f"{world_size} processes; choose a multiple of {world_size}")
    if cfg.trainer.sync_bn and device_type != "cuda":
        raise UserError("trainer.sync_bn=true needs CUDA devices (SyncBatchNorm runs on GPUs only); "
                        "drop it or train on GPUs")
    if cfg.trainer.precision == "fp16" and device_type != "cuda":
        raise UserError(f"trainer.precision=fp16 needs a CUDA device, but this run is on {device_type}; "
                        f"use trainer.precision=fp32 (or bf16)")
    if cfg.trainer.precision not in ("auto", "fp32", "bf16", "fp16"):
        raise UserError(f"trainer.precision must be auto, fp32, bf16 or fp16 (got {cfg.trainer.precision})")
    if cfg.trainer.fused_sgd not in ("auto", True, False):
        raise UserError(f"trainer.fused_sgd must be auto, true or false (got {cfg.trainer.fused_sgd})")
    if cfg.trainer.fused_sgd is True and cfg.optim._target_ != "torch.optim.SGD":
        raise UserError(f"trainer.fused_sgd=true fuses torch.optim.SGD only, not {cfg.optim._target_}; "
                        f"use optim=sgd or drop trainer.fused_sgd")
    if cfg.trainer.cuda_graphs:
        _check_cuda_graphs(cfg, device_type, world_size)
    if cfg.loss not in ("soft_ce", "bce"):
        raise UserError(f"loss must be soft_ce or bce (got {cfg.loss})")


def _check_cuda_graphs(cfg: DictConfig, device_type: str, world_size: int) -> None:
    if cfg.trainer.compile and cfg.trainer.compile_mode in ("reduce-overhead", "max-autotune"):
        raise UserError(f"trainer.compile_mode={cfg.trainer.compile_mode} makes CUDA graphs of its own, which cannot "
                        f"nest in trainer.cuda_graphs; use trainer.compile_mode=default or drop trainer.cuda_graphs")
    if cfg.optim._target_ != "torch.optim.SGD":
        raise UserError(f"trainer.cuda_graphs=true replays torch.optim.SGD updates only, not {cfg.optim._target_}; "
                        f"use optim=sgd or drop trainer.cuda_graphs")
    if world_size > 1:
        raise UserError(f"trainer.cuda_graphs=true runs in one process, but this run has {world_size}; "
                        f"drop it under torchrun (trainer.compile=true works there)")
    if cfg.trainer.fused_sgd is False:
        raise UserError("trainer.cuda_graphs=true needs the fused SGD that reads its lr from a device tensor (a graph "
                        "would freeze a Python lr); drop trainer.fused_sgd=false")
    if cfg.trainer.precision == "fp16":
        raise UserError("trainer.cuda_graphs=true cannot replay fp16's loss scaling (it syncs with the host every "
                        "step); use trainer.precision=bf16 or fp32")
    if device_type != "cuda":
        raise UserError(f"trainer.cuda_graphs=true needs a CUDA device, but this run is on {device_type}; "
                        f"drop it (trainer.compile=true works on the CPU)")


def quote_paths(overrides: list[str], keys: tuple[str, ...]) -> list[str]:
    """``KEY=PATH`` as ``KEY='PATH'`` for the given keys, so that sweep directories (whose names hold
    ``=`` and ``,``, e.g. ``0_mixup=none,seed=0``) pass Hydra's override grammar as plain strings."""
    quoted = []
    for override in overrides:
        key, _, value = override.partition("=")
        if key in keys and value and value[0] not in "'\"" and "'" not in value:
            override = f"{key}='{value}'"
        quoted.append(override)
    return quoted


def differing_keys(saved: DictConfig, current: DictConfig, keys: list[str]) -> list[str]:
    """Leaf keys under any of ``keys`` whose values differ between two configs (dotted paths)."""
    differences = []
    for key in keys:
        a = OmegaConf.select(saved, key, default=None)
        b = OmegaConf.select(current, key, default=None)
        differences.extend(_leaf_differences(key, _plain(a), _plain(b)))
    return sorted(set(differences))


def _plain(node):
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


def _leaf_differences(prefix: str, a, b) -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            out.extend(_leaf_differences(f"{prefix}.{key}", a.get(key), b.get(key)))
        return out
    return [] if a == b else [prefix]
