"""The typed schema of every config group (Hydra structured configs), with each setting's allowed range, and the
resolvers the config files use.

Every group's YAML files name their schema (``/schema/<group>@_here_``), so a value of the wrong type is refused
while the config is composed; the ranges (``rule``) are enforced by :mod:`mmx.checks` right after.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

from mmx.errors import UserError

GROUPS = ("dataset", "model", "mixup", "loss", "optim", "schedule", "trainer", "recipe", "smoke", "experiment")
SEED_MAX = 2**32 - 1


def rule(default=MISSING, *, factory=None, why: str = "", **limits):
    """A schema field with its allowed values: ``min``/``max`` (inclusive), ``gt`` (exclusive), ``choices``.

    ``why`` says what the limit protects, for the error message. Lists are checked element by element.
    """
    metadata = {**limits, "why": why}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


# --- the schema of each group ------------------------------------------------------------------


@dataclass
class DatasetSchema:
    name: str = MISSING
    source: Any = MISSING
    download: Optional[bool] = None
    image_size: int = rule(min=1)  # pixels per side of the images the network sees
    channels: int = rule(min=1)
    num_classes: int = rule(min=2)
    train_images: int = rule(min=1)  # the release's training set (cost estimates)
    labels_per_class: Optional[int] = rule(None, min=1, why="it is the number of training images kept per class")
    classes: Optional[List[int]] = rule(None, min=0, why="they are class labels")
    val_size: Any = None  # N images, or a fraction in (0, 1), held out of the training set per class
    val_seed: int = rule(0, min=0, max=SEED_MAX)  # which images the validation split holds (not the run's seed)
    crop_padding: Optional[int] = rule(0, min=0)
    flip: Optional[bool] = None
    mean: List[float] = MISSING
    std: List[float] = rule(factory=list, gt=0, why="pixels are divided by it")
    resize: Optional[int] = rule(None, min=1)  # image folders: test images' shorter side before the centre crop
    workers: Optional[int] = rule(None, min=0)  # image folders: DataLoader worker processes
    ood: Optional[str] = None  # the dataset option `mmx eval` detects as out-of-distribution (null: noise)


@dataclass
class PreActResNetSchema:
    name: str = MISSING
    _target_: str = MISSING
    depth: int = rule(18, choices=(18, 34, 50, 101, 152))
    width: int = rule(64, min=1)
    stem: str = rule("auto", choices=("auto", "cifar", "imagenet"))
    stem_stride: Any = rule("auto", choices=("auto", 1, 2))


@dataclass
class WideResNetSchema:
    name: str = MISSING
    _target_: str = MISSING
    depth: int = rule(28, min=10, why="a WRN has depth 6n + 4")
    widen_factor: int = rule(10, min=1)
    dropout: float = rule(0.0, min=0.0, max=0.99)
    init: str = rule("default", choices=("default", "xavier"))
    stem_stride: Any = rule("auto", choices=("auto", 1, 2))


@dataclass
class BottleneckMLPSchema:
    name: str = MISSING
    _target_: str = MISSING
    width: int = rule(1024, min=1)
    bottleneck: int = rule(12, min=1)
    before: int = rule(3, min=1)
    after: int = rule(4, min=0)


@dataclass
class RecurrentSchema:
    name: str = MISSING
    _target_: str = MISSING
    cell: str = rule("gru", choices=("gru", "lstm"))
    hidden: int = rule(128, min=1)
    layers: int = rule(2, min=1)
    read: str = rule("rows", choices=("rows", "pixels"))
    readout: str = rule("last", choices=("last", "mean"))


@dataclass
class LossSchema:
    name: str = rule(MISSING, choices=("soft_ce", "bce"))
    _target_: str = MISSING
    _partial_: bool = True


@dataclass
class SGDSchema:
    name: str = MISSING
    _target_: str = MISSING
    _partial_: bool = True
    lr: float = rule(MISSING, gt=0.0, why="it is the step size")
    momentum: float = rule(0.9, min=0.0, max=0.999)
    nesterov: bool = True
    weight_decay: float = rule(1e-4, min=0.0)


@dataclass
class MultiStepSchema:
    name: str = MISSING
    _target_: str = MISSING
    _partial_: bool = True
    milestones: List[int] = rule(factory=list, min=1)
    gamma: float = rule(0.1, gt=0.0)


@dataclass
class CosineSchema:
    name: str = MISSING
    _target_: str = MISSING
    _partial_: bool = True
    T_max: int = rule(MISSING, min=1)
    eta_min: float = rule(0.0, min=0.0)


@dataclass
class TrainerSchema:
    device: str = "auto"
    precision: str = rule("auto", choices=("auto", "fp32", "bf16", "fp16"))
    tf32: Any = rule("auto", choices=("auto", True, False))
    channels_last: Any = rule("auto", choices=("auto", True, False))
    deterministic: bool = False
    eval_batch_size: int = rule(1000, min=1)
    max_steps_per_epoch: Optional[int] = rule(None, min=1)
    max_eval_batches: Optional[int] = rule(None, min=1)
    eval_every: int = rule(1, min=1, why="the test set is scored, and a checkpoint written, every that many epochs")
    steps_until_captured: bool = False
    finite_check_every: int = rule(50, min=1)
    checkpoint_every: Any = None  # N steps, or "N min": last.pt inside epochs too (checked by mmx.stops)
    progress: Any = rule("auto", choices=("auto", True, False))
    sync_bn: bool = False
    compile: bool = False
    compile_mode: str = rule(
        "default", choices=("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
    )
    compile_backend: str = "inductor"
    cuda_graphs: bool = False
    fused_sgd: Any = rule("auto", choices=("auto", True, False))


@dataclass
class TrainSchema:
    """The top level of ``mmx train``'s config; each group below has its own schema."""

    dataset: Any = None
    model: Any = None
    mixup: Any = None  # a mixing method's settings, checked by its class (mmx.mixing), which has no schema here
    loss: Any = None
    optim: Any = None
    schedule: Any = None
    trainer: Any = None
    experiment: Optional[str] = None
    data_root: str = "./data"
    seed: int = rule(0, min=0, max=SEED_MAX)
    epochs: int = rule(MISSING, min=1)
    lr_drops: List[float] = rule(factory=list, gt=0.0, max=1.0, why="they are fractions of the run")
    batch_size: int = rule(100, min=2, why="BatchNorm needs at least two images per batch")
    resume: Optional[str] = None
    smoke: bool = False


SCHEMAS = {
    "dataset": DatasetSchema,
    "model/preactresnet": PreActResNetSchema,
    "model/wide_resnet": WideResNetSchema,
    "model/bottleneck_mlp": BottleneckMLPSchema,
    "model/recurrent": RecurrentSchema,
    "loss": LossSchema,
    "optim/sgd": SGDSchema,
    "schedule/multistep": MultiStepSchema,
    "schedule/cosine": CosineSchema,
    "trainer": TrainerSchema,
}


def register_schemas() -> None:
    """Store the schemas where the group files name them (``/schema/<group>@_here_``)."""
    store = ConfigStore.instance()
    store.store(name="train_schema", node=TrainSchema)
    for path, schema in SCHEMAS.items():
        group, _, name = f"schema/{path}".rpartition("/")
        store.store(group=group, name=name, node=schema)


def milestones(epochs: int, fractions) -> list[int]:
    """The epochs at which a step schedule drops the lr: ``fractions`` of the run, rounded, distinct,
    inside the run (the paper's 1200 epochs with drops at 1/3 and 2/3 give [400, 800])."""
    at = {min(max(int(f * epochs + 0.5), 1), epochs - 1) for f in fractions} if epochs > 1 else set()
    return sorted(at)


def epochs_for_steps(steps: int, batch_size: int, labels_per_class, num_classes: int) -> int:
    """The epochs that make at least ``steps`` training steps on a class-balanced set of ``labels_per_class``
    images of each class (an epoch is the set's full batches), so that a sweep over the set's size trains each
    size for the same number of steps (experiment=lowlabel/digits)."""
    if labels_per_class is None:
        raise UserError(
            "this experiment sets its length from dataset.labels_per_class, which is null; set "
            "dataset.labels_per_class=N (or epochs=N)"
        )
    per_epoch = max(labels_per_class * num_classes // batch_size, 1)
    return -(-steps // per_epoch)


def every_nth(epochs: int, records: int) -> int:
    """``trainer.eval_every`` for about ``records`` scored epochs in a run of ``epochs``."""
    return max(epochs // records, 1)


register_schemas()
OmegaConf.register_new_resolver("mmx_milestones", milestones, replace=True)
OmegaConf.register_new_resolver("mmx_epochs_for_steps", epochs_for_steps, replace=True)
OmegaConf.register_new_resolver("mmx_every_nth", every_nth, replace=True)
