"""FLOPs of a configured model, counted by PyTorch on a shape-only (meta) copy: no memory, no data."""

from __future__ import annotations

import torch
from omegaconf import DictConfig
from torch.utils.flop_counter import FlopCounterMode

from mmx.parts import create_model

# A training step costs about three forward passes (forward, and a backward of twice its cost).
TRAIN_STEP_FORWARDS = 3


def forward_flops(model_cfg: DictConfig, num_classes: int, image_shape: tuple[int, int, int]) -> int:
    """FLOPs of one image's forward pass through the model ``model_cfg`` describes."""
    channels, height, width = image_shape
    with torch.device("meta"):
        model = create_model(model_cfg, num_classes, channels, max(height, width))
        image = torch.zeros(1, *image_shape)
    with FlopCounterMode(display=False) as counter:
        model(image)
    return counter.get_total_flops()
