"""A finished (or running) run loaded back for evaluation: its config, data and checkpointed network."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from mmx import checkpoint
from mmx.data import ImageSplits, Normalizer
from mmx.errors import UserError
from mmx.models import StagedNetwork
from mmx.train import build, resolve_device
from mmx.distributed import Ranks

CHECKPOINTS = ("best", "last")


@dataclass
class TrainedRun:
    """The network in eval mode on ``device``, its test split as uint8, and its normalisation.

    ``logits(pixels)`` takes images in pixel units (floats in [0, 1], before normalisation), the
    space in which attacks and deformations are defined.
    """

    run_dir: Path
    cfg: DictConfig
    network: StagedNetwork
    data: ImageSplits
    normalizer: Normalizer
    device: torch.device
    epoch: int
    checkpoint: str

    def logits(self, pixels: torch.Tensor, at_point=None) -> torch.Tensor:
        return self.network((pixels - self.normalizer.mean) / self.normalizer.std, at_point=at_point).float()

    def test_pixels(self, max_images: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        count = self.data.test_size if max_images is None else min(max_images, self.data.test_size)
        return self.data.test_images[:count].float() / 255, self.data.test_labels[:count]


def load(run_dir: str | Path, which: str = "best", device: str = "auto") -> TrainedRun:
    run_dir = Path(run_dir)
    if which not in CHECKPOINTS:
        raise UserError(f"checkpoint={which} is not one of {', '.join(CHECKPOINTS)}; choose best or last")
    path = run_dir / "checkpoints" / f"{which}.pt"
    if not (run_dir / "config.yaml").is_file() or not path.is_file():
        raise UserError(f"{run_dir} has no config.yaml or checkpoints/{which}.pt; pass the directory of a run "
                        f"that finished at least one epoch")
    cfg = OmegaConf.load(run_dir / "config.yaml")
    data = build(cfg.dataset.source)
    if not isinstance(data, ImageSplits):
        raise UserError(f"mmx eval works on datasets held in memory, not on streamed folders ({cfg.dataset.name}); "
                        f"evaluate a digits, CIFAR, SVHN or Tiny-ImageNet run")
    network = build(cfg.model, num_classes=data.num_classes, in_channels=data.channels)
    state = checkpoint.load(path)
    network.load_state_dict(state["model"])
    target = resolve_device(device, Ranks())
    network = network.to(target).eval()
    normalizer = Normalizer(cfg.dataset.mean, cfg.dataset.std, target)
    return TrainedRun(run_dir, cfg, network, data.to(target), normalizer, target, int(state["epoch"]), which)
