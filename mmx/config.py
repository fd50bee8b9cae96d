"""Composing ``mmx train``'s config from its groups, and Hydra's composition errors as one sentence each.

The schemas are :mod:`mmx.schema`'s and the checks :mod:`mmx.checks`'s; a composed config is resolved and
checked before anything runs.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import fields
from importlib import resources

from hydra import compose, initialize_config_module
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, ValidationError

from mmx.checks import check_config, check_finite
from mmx.errors import UserError
from mmx.schema import GROUPS, SCHEMAS, TrainSchema


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


def shipped_option(group: str, option: str) -> DictConfig | None:
    """The YAML of a group's option as mmx ships it (configs/GROUP/OPTION.yaml), or None when mmx has no such option."""
    path = resources.files("mmx.configs").joinpath(group, f"{option}.yaml")
    return OmegaConf.load(path) if path.is_file() else None


def compose_train(overrides: list[str]) -> DictConfig:
    """``mmx train``'s config for these overrides, checked; every mistake becomes one :class:`UserError`."""
    check_overrides(overrides)
    with initialize_config_module("mmx.configs", version_base="1.3"):
        try:
            cfg = compose("train", overrides=overrides, return_hydra_config=True)
        except Exception as error:  # Hydra's own: unknown options and keys, wrong types
            raise composition_error(error, overrides) from None
    choices = dict(cfg.hydra.runtime.choices)
    with open_dict(cfg):
        del cfg["hydra"]
    return finish(cfg, choices)


def compose_dataset(name: str, overrides: list[str] = ()) -> DictConfig:
    """The ``dataset`` group's option ``name`` alone, resolved (what ``mmx eval`` loads as an OOD set); ``overrides``:
    Hydra's (``hydra.searchpath=[...]`` for datasets outside mmx)."""
    with initialize_config_module("mmx.configs", version_base="1.3"):
        try:
            cfg = compose("train", overrides=[*overrides, f"dataset={name}"])
        except Exception as error:
            raise composition_error(error, [f"dataset={name}"]) from None
    return OmegaConf.create(OmegaConf.to_container(cfg.dataset, resolve=True))


def finish(cfg: DictConfig, choices: dict) -> DictConfig:
    """The composed config with its experiment label (the option chosen in ``choices``, Hydra's runtime choices),
    resolved and checked."""
    cfg.experiment = choices.get("experiment")
    check_complete(cfg, choices)
    check_finite(cfg)  # before resolving: resolvers (milestones from lr_drops) fail on nan with no useful words
    try:
        OmegaConf.resolve(cfg)
    except Exception as error:
        raise UserError(f"the config cannot be resolved ({_first_line(error)}); check the values you set") from None
    check_config(cfg)
    return cfg


def check_complete(cfg: DictConfig, choices: dict) -> None:
    """Every setting has a value (Hydra's ``???`` is none). ``epochs`` and ``optim.lr`` come from the recipe: for
    recipe=default, from a file of the dataset's own, which a dataset added without one lacks."""
    missing = sorted(_missing(cfg))
    if not missing:
        return
    dataset, recipe = choices.get("dataset"), choices.get("recipe")
    recipe_file = f"{recipe}_{dataset}"
    have = "has" if len(missing) == 1 else "have"
    if set(missing) <= {"epochs", "optim.lr"} and recipe_file not in group_options("recipe/for_dataset"):
        raise UserError(
            f"{' and '.join(missing)} {have} no value: recipe={recipe} takes a dataset's length and learning rate from "
            f"recipe/for_dataset/{recipe}_{dataset}.yaml, which dataset={dataset} does not have; add it (epochs, "
            f"optim.lr and lr_drops, as configs/recipe/for_dataset/default_cifar10.yaml sets them), or set "
            f"epochs=N optim.lr=X"
        )
    raise UserError(f"{', '.join(missing)} {have} no value; set {missing[0]}=VALUE")


def _missing(node: DictConfig, prefix: str = "") -> list[str]:
    """The dotted keys whose value is Hydra's ``???`` (interpolations are not followed: they may point at one)."""
    found = []
    for key in node:
        child = node._get_node(key)
        if isinstance(child, DictConfig) and not child._is_none() and not child._is_missing():
            found += _missing(child, f"{prefix}{key}.")
        elif child._is_missing():
            found.append(f"{prefix}{key}")
    return found


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
    keys = _all_keys(head)
    if key in keys:  # e.g. model.width with model=gru: a key of other options of the group, not of the chosen one
        return UserError(
            f"{key} is not a key of the chosen {head} option, though other {head} options have it; "
            f"`mmx train --cfg job` shows the keys of the options chosen"
        )
    return UserError(
        f"{key} is not a key of mmx train's config; {_nearest(key, keys, '')}`mmx train --cfg job` shows every key"
    )


def _all_keys(group: str) -> list[str]:
    """The keys a group's options have: from its schemas, or (a group without one, such as mixup) its YAML files."""
    keys = []
    for name, schema in SCHEMAS.items():
        if name.split("/")[0] == group:
            keys += [f"{group}.{f.name}" for f in fields(schema) if not f.name.startswith("_")]
    for option in group_options(group) if not keys else []:
        settings = shipped_option(group, option)
        keys += [f"{group}.{key}" for key in settings if not str(key).startswith("_") and key != "defaults"]
    return sorted(set(keys)) or [group]


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
