"""A run's settings as data: what can change its numbers, what older runs lacked, how two configs differ, and
what TensorBoard's HParams tab lists. Read by resume checks, result cells and the tables."""

from __future__ import annotations

import functools

from hydra import compose
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf

from mmx.config import compose_train

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
    "dataset.ood",  # what mmx eval scores against, read after training
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
    if GlobalHydra.instance().is_initialized():  # inside a Hydra job: compose with its search path
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


def with_added_settings(cfg: DictConfig) -> DictConfig:
    """A saved config with the settings added since it was written (:data:`ADDED_SETTINGS`) at the values that do
    what the run did, so that resume, eval and tables read every run alike."""
    for key, value in ADDED_SETTINGS.items():
        group, _, name = key.rpartition(".")
        node = OmegaConf.select(cfg, group) if group else cfg
        if isinstance(node, DictConfig) and name not in node:
            node[name] = value
    return cfg
