"""FLOPs of a configured model, counted by PyTorch on a shape-only (meta) copy: no memory, no data."""
from __future__ import annotations

import torch
from omegaconf import DictConfig
from torch.utils.flop_counter import FlopCounterMode

from mmx.train import build

# A training step costs about three forward passes (forward, and a backward of twice its cost).
TRAIN_STEP_FORWARDS = 3


def forward_flops(model_cfg: DictConfig, num_classes: int, image_shape: tuple[int, int, int]) -> int:
    """FLOPs of one image's forward pass through the model ``model_cfg`` describes."""
    with torch.device("meta"):
        model = build(model_cfg, num_classes=num_classes, in_channels=image_shape[0])
        image = torch.zeros(1, *image_shape)
    with FlopCounterMode(display=False) as counter:
        model(image)
    return counter.get_total_flops()
