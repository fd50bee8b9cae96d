"""The checks that run before any work starts: every number finite, every range of the schemas, and the checks
that span keys, each ending in one sentence that names the key, the value and what is allowed."""

from __future__ import annotations

import math
import re
from dataclasses import fields, is_dataclass

from omegaconf import DictConfig, ListConfig, OmegaConf

from mmx.errors import UserError
from mmx.stops import parse_checkpoint_every

DEVICE = re.compile(r"^(auto|cpu|cuda|cuda:\d+|cuda:free)$")


def check_config(cfg: DictConfig) -> None:
    """Every number finite, every range of the schemas, and the checks that span keys; no data or device needed."""
    check_finite(cfg)
    for path, node in _schema_nodes(cfg, ""):
        for spec in fields(OmegaConf.get_type(node)):
            if spec.name in node and spec.metadata:
                _check_rule(f"{path}{spec.name}", node[spec.name], spec.metadata)
    from mmx.mixing import coerce, method_class  # here and below: torch, imported once a run is checked, not at --help

    method = method_class(cfg.mixup)
    method.check(cfg.mixup)
    coerce(cfg.mixup, method)
    classes = cfg.dataset.get("classes")
    if classes is not None and (
        len(classes) < 2 or len(set(classes)) < len(classes) or max(classes) >= cfg.dataset.num_classes
    ):
        raise UserError(
            f"dataset.classes={list(classes)} must be at least 2 distinct labels of {cfg.dataset.name}'s "
            f"{cfg.dataset.num_classes} classes (0 to {cfg.dataset.num_classes - 1}); list the classes to keep, "
            f"or null for all"
        )
    if cfg.dataset.get("val_size") is not None:
        from mmx.data.holdout import check_size

        check_size(cfg.dataset.val_size, "dataset.val_size")  # its type and range; the count is checked on the data
    channels = cfg.dataset.channels
    for key in ("mean", "std"):
        if len(cfg.dataset[key]) != channels:
            raise UserError(
                f"dataset.{key}={list(cfg.dataset[key])} has {len(cfg.dataset[key])} value(s) but dataset.channels="
                f"{channels}; give one {key} per channel"
            )
    parse_checkpoint_every(cfg.trainer.get("checkpoint_every"))
    if not DEVICE.match(str(cfg.trainer.device)):
        raise UserError(
            f"trainer.device={cfg.trainer.device} is not a device; use auto, cpu, cuda, cuda:N or cuda:free"
        )
    if "milestones" in cfg.schedule and not cfg.smoke:  # a smoke run stops before any milestone
        milestones = list(cfg.schedule.milestones)
        if milestones != sorted(set(milestones)) or any(not 0 < m < cfg.epochs for m in milestones):
            raise UserError(
                f"schedule.milestones={milestones} must be strictly increasing epochs between 1 and "
                f"{cfg.epochs - 1} (epochs={cfg.epochs}); set schedule.milestones=[...] to fit, or leave "
                f"them to follow epochs (lr_drops)"
            )


def check_run(cfg: DictConfig, *, train_size: int, world_size: int = 1) -> None:
    """The checks that need the loaded data or the process count."""
    if cfg.batch_size > train_size:
        raise UserError(
            f"batch_size={cfg.batch_size} must be between 2 and the training set size ({train_size}); lower batch_size"
        )
    if cfg.batch_size % world_size:
        raise UserError(
            f"batch_size={cfg.batch_size} is the global batch and must split evenly over the "
            f"{world_size} processes; choose a multiple of {world_size}"
        )


def _schema_nodes(node: DictConfig, path: str):
    if is_dataclass(OmegaConf.get_type(node)):
        yield path, node
    for key in node:
        child = node._get_node(key)
        if isinstance(child, DictConfig) and not child._is_none() and not child._is_missing():
            yield from _schema_nodes(child, f"{path}{key}.")


def check_finite(cfg: DictConfig, prefix: str = "") -> None:
    """Every number of a config (in lists too) is finite: ``inf`` passes every lower bound, ``nan`` every comparison,
    and no setting of mmx means either (``mmx train``'s and ``mmx eval``'s configs)."""
    for key in cfg:
        node = cfg._get_node(key)
        if isinstance(node, DictConfig):
            if not node._is_none() and not node._is_missing():
                check_finite(node, f"{prefix}{key}.")
            continue
        if node._is_none() or node._is_missing() or node._is_interpolation():
            continue
        value = node if isinstance(node, ListConfig) else node._value()
        items = list(value) if isinstance(value, ListConfig) else [value]
        if any(isinstance(item, float) and not math.isfinite(item) for item in items):
            raise UserError(f"{prefix}{key}={_show(value)} is not allowed: it must be a finite number")


def positive_number(text: str) -> float:
    """An argparse type: a finite number above 0 (``--alpha``, ``--tflops``)."""
    import argparse

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not allowed: it must be a finite number above 0")
    return value


def _check_rule(key: str, value, limits: dict) -> None:
    values = list(value) if isinstance(value, (list, ListConfig)) else [value]
    why = f" ({limits['why']})" if limits.get("why") else ""
    for item in values:
        if item is None:
            continue
        if "choices" in limits and item not in limits["choices"]:
            allowed = ", ".join(str(c).lower() if isinstance(c, bool) else str(c) for c in limits["choices"])
            raise UserError(f"{key}={_show(value)} is not allowed: choose one of {allowed}")
        if "min" in limits and item < limits["min"]:
            raise UserError(f"{key}={_show(value)} is not allowed: it must be at least {limits['min']}{why}")
        if "max" in limits and item > limits["max"]:
            raise UserError(f"{key}={_show(value)} is not allowed: it must be at most {limits['max']}{why}")
        if "gt" in limits and not item > limits["gt"]:
            raise UserError(f"{key}={_show(value)} is not allowed: it must be greater than {limits['gt']}{why}")


def _show(value) -> str:
    if isinstance(value, ListConfig):
        return str(list(value))
    return str(value).lower() if isinstance(value, bool) else str(value)
