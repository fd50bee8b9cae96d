"""mmx from Python: build any model by name, and get a trained run's network back without its data.

import mmx
run = mmx.load_run("runs/2026-11-26/14-42-52_digits_preactresnet18_manifold")
logits = run.network(run.normalize(images))        # images: uint8 or [0, 1] floats, NCHW
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from mmx.errors import UserError
from mmx.layout import in_layout
from mmx.models import StagedNetwork
from mmx.run_dir import RunDir


def model_config(name: str, **settings) -> DictConfig:
    """The ``model=NAME`` config group's option, with ``settings`` replacing its values."""
    path = resources.files("mmx.configs").joinpath("model", f"{name}.yaml")
    if not path.is_file():
        options = sorted(
            p.name[:-5] for p in resources.files("mmx.configs").joinpath("model").iterdir() if p.name.endswith(".yaml")
        )
        raise UserError(f"model {name!r} does not exist; choose one of {', '.join(options)}")
    cfg = OmegaConf.load(path)
    cfg.pop("defaults", None)  # its schema; the values below are what the network is built from
    return OmegaConf.merge(cfg, settings)


def create_model(name: str, num_classes: int, in_channels: int = 3, image_size: int = 32, **settings) -> StagedNetwork:
    """A fresh network from its config name, e.g. ``create_model("wrn28_10", 100)`` or
    ``create_model("preactresnet18", 10, in_channels=1, image_size=8, width=16)``."""
    from mmx.parts import create_model as create

    return create(model_config(name, **settings), num_classes, in_channels, image_size)


@dataclass
class LoadedRun:
    """A trained run's network (in eval mode) and config, and what its images need before the network."""

    run_dir: Path
    cfg: DictConfig
    network: StagedNetwork
    checkpoint: str
    epoch: int
    num_classes: int
    in_channels: int
    image_size: int
    mean: torch.Tensor
    std: torch.Tensor

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images (or floats in [0, 1]) to the network's input, as in training (in NCHW, the layout the
        loaded network is in)."""
        pixels = images.float() / 255 if images.dtype == torch.uint8 else images
        return in_layout((pixels.to(self.mean.device) - self.mean) / self.std, channels_last=False)

    @torch.inference_mode()
    def classify(self, images: torch.Tensor) -> torch.Tensor:
        """Predicted class of each image."""
        return self.network(self.normalize(images)).argmax(dim=1)


def load_run(run_dir: str | Path, checkpoint: str = "best", device: str | torch.device = "cpu") -> LoadedRun:
    """The network of ``run_dir`` with the weights of its ``best`` (or ``last``) checkpoint, on ``device``.

    Reads only the run's files (weights_only checkpoints): the network's arguments are recorded in
    every checkpoint, so no dataset is loaded.
    """
    run = RunDir(run_dir)
    cfg = run.read_config()
    state = run.load_checkpoint(checkpoint)
    if "model_args" not in state:
        raise UserError(
            f"{run.path} was written by an mmx older than its run records (no model_args in "
            f"{checkpoint}.pt); evaluate it with `mmx eval`, which rebuilds it from its data"
        )
    args = state["model_args"]
    from mmx.parts import create_model as create

    network = create(OmegaConf.create(args["model"]), args["num_classes"], args["in_channels"], args["image_size"])
    network.load_state_dict(state["model"])
    device = torch.device(device)
    shape = (1, -1, 1, 1)
    return LoadedRun(
        run.path,
        cfg,
        network.to(device).eval(),
        checkpoint,
        int(state["epoch"]),
        args["num_classes"],
        args["in_channels"],
        args["image_size"],
        torch.tensor(args["mean"], device=device).view(shape),
        torch.tensor(args["std"], device=device).view(shape),
    )
