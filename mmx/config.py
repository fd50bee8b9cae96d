"""mmx's configuration: the typed schema of every config group, composing, and the checks that run
before any work starts.

Every group's YAML files are checked against a dataclass below (Hydra structured configs), so a
value of the wrong type is refused while the config is composed. The dataclasses also carry each
setting's allowed range (``rule``); :func:`check_config` enforces the ranges right after
composition. Both end in one sentence naming the key, the value and what is allowed.
"""

from __future__ import annotations

import difflib
import functools
import math
import re
from dataclasses import dataclass, field, fields, is_dataclass
from importlib import resources
from typing import Any, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf, open_dict

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
class MixupSchema:
    name: str = rule(MISSING, choices=("none", "input", "manifold"))
    _target_: str = MISSING
    alpha: float = 0.0  # > 0 when mixing: the mixer checks it (mmx.mixing.Mixer.check)
    points: List[int] = field(default_factory=list)
    points_per_step: int = rule(1, min=1, why="each step mixes at that many distinct points")


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
    mixup: Any = None
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
    "mixup": MixupSchema,
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


# --- composing -----------------------------------------------------------------------------------


def group_options(group: str) -> list[str]:
    """The options of a config group, read from the configs shipped with the package (nested ones as a/b/c)."""
    root = resources.files("mmx.configs").joinpath(group)

    def walk(folder, prefix=""):
        for entry in sorted(folder.iterdir(), key=lambda e: e.name):
            if (
                entry.is_dir()
                and not entry.name.startswith(("_", "."))
                and entry.name not in ("for_dataset", "for_model")
            ):
                yield from walk(entry, f"{prefix}{entry.name}/")
            elif entry.name.endswith(".yaml"):
                yield prefix + entry.name[:-5]

    return list(walk(root)) if root.is_dir() else []


def compose_train(overrides: list[str]) -> DictConfig:
    """``mmx train``'s config for these overrides, checked; every mistake becomes one :class:`UserError`."""
    from hydra import compose, initialize_config_module

    check_overrides(overrides)
    with initialize_config_module("mmx.configs", version_base="1.3"):
        try:
            cfg = compose("train", overrides=overrides, return_hydra_config=True)
        except Exception as error:  # Hydra's own: unknown options and keys, wrong types
            raise composition_error(error, overrides) from None
    experiment = cfg.hydra.runtime.choices.get("experiment")
    with open_dict(cfg):
        del cfg["hydra"]
    return finish(cfg, experiment)


def finish(cfg: DictConfig, experiment: str | None) -> DictConfig:
    """The composed config with its experiment label (the chosen option), resolved and checked."""
    cfg.experiment = experiment
    check_finite(cfg)  # before resolving: resolvers (milestones from lr_drops) fail on nan with no useful words
    try:
        OmegaConf.resolve(cfg)
    except Exception as error:
        raise UserError(f"the config cannot be resolved ({_first_line(error)}); check the values you set") from None
    check_config(cfg)
    return cfg


def check_overrides(overrides: list[str]) -> None:
    """What Hydra would accept silently: an unknown ``experiment=`` (its group is optional)."""
    for override in overrides:
        key, _, value = override.partition("=")
        if key.lstrip("+~") == "experiment" and value and value != "null":
            options = group_options("experiment")
            for name in value.strip("'\"").split(","):
                if name not in options:
                    raise UserError(
                        f"experiment={name} is not an experiment; {_nearest(name, options, 'experiment=')}"
                        f"`mmx --help` lists the paper recipes"
                    )


def composition_error(error: Exception, overrides: list[str]) -> UserError:
    """Hydra's multi-line composition errors as one sentence: the key, the value and what is allowed."""
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, ValidationError

    text = str(error)
    cause = error.__cause__
    missing = re.search(r"Could not find '([^']+)/([^'/]+)'", text) or re.search(r"Could not find '([^']+)'", text)
    if missing and missing.lastindex == 2:
        group, option = missing.group(1).split("/")[-1], missing.group(2)
        options = group_options(missing.group(1))
        return UserError(
            f"{group}={option} is not an option of the {group} group; "
            f"{_nearest(option, options, group + '=')}choose one of {', '.join(options)}"
        )
    if isinstance(cause, ValidationError):
        key = cause.full_key
        value = next((o.split("=", 1)[1] for o in overrides if o.split("=", 1)[0].lstrip("+") == key), "the value")
        return UserError(f"{key}={value} is not allowed: {_type_words(cause)}; set {key} to such a value")
    if isinstance(cause, (ConfigAttributeError, ConfigKeyError)) or "Could not override" in text:
        key = getattr(cause, "full_key", None) or re.search(r"Could not override '([^']+)'", text).group(1)
        return _unknown_key(key)
    return UserError(_first_line(error))


def _unknown_key(key: str) -> UserError:
    head, _, _ = key.partition(".")
    if "." not in key:
        known = sorted({*GROUPS, *(f.name for f in fields(TrainSchema))})
        return UserError(
            f"{key} is neither a config group nor a key of mmx train; {_nearest(key, known, '')}"
            f"`mmx train --help` lists them"
        )
    return UserError(
        f"{key} is not a key of mmx train's config; {_nearest(key, _all_keys(head), '')}"
        f"`mmx train --cfg job` shows every key"
    )


def _all_keys(group: str) -> list[str]:
    keys = []
    for name, schema in SCHEMAS.items():
        if name.split("/")[0] == group:
            keys += [f"{group}.{f.name}" for f in fields(schema) if not f.name.startswith("_")]
    return keys or [group]


def _type_words(cause) -> str:
    message = _first_line(cause)
    expected = re.search(r"converted to (\w+)", message)
    if expected:
        return f"it must be {_article(expected.group(1).lower())}"
    if "is not a valid bool" in message or "Invalid value" in message and "bool" in message.lower():
        return "it must be true or false"
    if "of type" in message and "List" in message or "ListConfig" in message:
        return "it must be a list such as [0, 1, 2]"
    return message.replace("'", "")


def _article(word: str) -> str:
    return {"integer": "an integer", "float": "a number", "boolean": "true or false", "str": "a string"}.get(
        word, f"a {word}"
    )


def _nearest(name: str, options: list[str], prefix: str) -> str:
    close = difflib.get_close_matches(name, options, n=3, cutoff=0.5)
    return f"did you mean {' or '.join(prefix + c for c in close)}? " if close else ""


def _first_line(error: Exception) -> str:
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    return lines[0].strip() if lines else type(error).__name__


# --- checks ----------------------------------------------------------------------------------------

DEVICE = re.compile(r"^(auto|cpu|cuda|cuda:\d+|cuda:free)$")


def check_config(cfg: DictConfig) -> None:
    """Every number finite, every range of the schemas, and the checks that span keys; no data or device needed."""
    check_finite(cfg)
    for path, node in _schema_nodes(cfg, ""):
        for spec in fields(OmegaConf.get_type(node)):
            if spec.name in node and spec.metadata:
                _check_rule(f"{path}{spec.name}", node[spec.name], spec.metadata)
    from mmx.mixing import Mixer

    Mixer.check(cfg.mixup.name, cfg.mixup.alpha, cfg.mixup.points, points_per_step=cfg.mixup.points_per_step)
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
    from mmx.stops import parse_checkpoint_every

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


# Settings added after runs had been made, with the value that does what those runs did: a run whose config
# lacks one of them ran with that value (its cell, its resume).
ADDED_SETTINGS = {
    "mixup.points_per_step": 1,
    "trainer.eval_every": 1,
    "dataset.classes": None,
    "dataset.val_size": None,
    "dataset.val_seed": 0,
    "trainer.checkpoint_every": None,
}

# Settings that cannot change a run's numbers (beyond float rounding of equivalent computations).
NOT_RESULTS = (
    "seed",
    "resume",
    "experiment",
    "smoke",
    "data_root",
    "lr_drops",  # its effect is schedule.milestones, which is kept
    "dataset.source.root",
    "dataset.download",
    "dataset.workers",
    "trainer.device",
    "trainer.progress",
    "trainer.precision",  # replaced by the precision the run trained in ("auto" means different things)
    "trainer.eval_batch_size",
    "trainer.finite_check_every",
    "trainer.checkpoint_every",  # a checkpoint changes no state: a resume from it continues bit for bit
    "trainer.deterministic",
    "trainer.compile",
    "trainer.compile_mode",
    "trainer.compile_backend",
    "trainer.cuda_graphs",
    "trainer.fused_sgd",
    "trainer.channels_last",
    "trainer.steps_until_captured",
)


def changes_results(key: str) -> bool:
    """Whether the setting ``key`` (dotted) can change a run's numbers: it is not in ``NOT_RESULTS`` or below one."""
    return not any(key == n or key.startswith(n + ".") for n in NOT_RESULTS)


def flatten(node, prefix: str = "") -> dict:
    """A config as ``{dotted key: value}``; lists become their text, so that they compare and print."""
    if isinstance(node, DictConfig):
        node = OmegaConf.to_container(node, resolve=True)
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    if isinstance(node, list):
        return {prefix[:-1]: ",".join(map(str, node))}
    return {prefix[:-1]: node}


HPARAMS = ("dataset.name", "model.name", "mixup.name", "mixup.alpha", "mixup.points", "optim.lr", "epochs", "seed")


@functools.lru_cache(maxsize=1)
def default_settings() -> dict:
    """``mmx train``'s defaults, flattened; composed once per process (a second each, every run of a sweep)."""
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():  # inside a Hydra job: compose with its search path
        from hydra import compose

        return flatten(compose("train"))
    return flatten(compose_train([]))


def hparams(cfg: DictConfig) -> dict:
    """What TensorBoard's HParams tab lists for a run: dataset, model, regime, alpha, points, lr, epochs and
    seed, and every other setting that can change results and differs from ``mmx train``'s defaults."""
    defaults = default_settings()
    current = flatten(cfg)
    keys = [k for k in HPARAMS if k in current]
    keys += sorted(
        k
        for k, v in current.items()
        if k not in keys and defaults.get(k) != v and changes_results(k) and not k.endswith("_target_")
    )
    return {k: current[k] if isinstance(current[k], (bool, int, float, str)) else str(current[k]) for k in keys}


# --- overrides of saved runs --------------------------------------------------------------------


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


def differences_in_words(saved: DictConfig, current: DictConfig, keys: list[str], only=None) -> str:
    """The leaf keys under ``keys`` whose values differ (those ``only(key)`` admits, if given), in words:
    ``optim.lr (0.1 -> 0.05)``, six at most; "" if none."""
    differences = [k for k in differing_keys(saved, current, keys) if only is None or only(k)]
    shown = ", ".join(f"{k} ({OmegaConf.select(saved, k)} -> {OmegaConf.select(current, k)})" for k in differences[:6])
    return shown + (f" and {len(differences) - 6} more" if len(differences) > 6 else "")


def _plain(node):
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


def _leaf_differences(prefix: str, a, b) -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            out.extend(_leaf_differences(f"{prefix}.{key}", a.get(key), b.get(key)))
        return out
    return [] if a == b else [prefix]
