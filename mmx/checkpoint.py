"""Checkpoints that survive a kill at any instant and load without unpickling code."""
from __future__ import annotations

import os
from pathlib import Path

import torch


def save_atomic(state: dict, path: Path) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over ``path``.

    A reader (or a resume after SIGKILL) sees either the old complete file or the new one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as handle:
        torch.save(state, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def load(path: Path) -> dict:
    """Tensors, numbers, strings and containers only (``weights_only=True``), onto the CPU.

    ``load_state_dict`` then copies each piece to its module's device; generator states must be
    CPU byte tensors whatever device they drive.
    """
    return torch.load(path, map_location="cpu", weights_only=True)


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
