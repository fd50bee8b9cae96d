"""The memory layout of the images a network sees: the one ``trainer.channels_last`` asks for, never an accident.

PyTorch chooses a convolution's kernels (NCHW or channels_last) from its input's strides. For images of one
channel the strides of both layouts pass ``is_contiguous`` for either format (the stride of a size-1
dimension does not count), so ``.contiguous()`` keeps whatever the last operation left: a gather done in
NHWC leaves strides (H*W, 1, W, 1), which PyTorch reads as channels_last. Every batch is therefore given the
exact strides of its layout (:func:`in_layout`).

Some CPU kernels are unsafe in channels_last: oneDNN's weight gradient of a strided 1x1 convolution with
fewer than 8 input channels corrupts the heap (one thread) or returns wrong gradients (several threads) on
AVX2 CPUs (uxlfoundation/oneDNN#6035; ``scripts/onednn_channels_last_crash.py`` reproduces it without mmx).
:func:`check_cpu_kernels` refuses such a network in one sentence.
"""

from __future__ import annotations

import torch
from torch import nn

from mmx.errors import UserError

# oneDNN's AVX2 1x1 convolutions block input channels by 8; below that their channels_last backward breaks.
SAFE_CHANNELS = 8


def memory_format(channels_last: bool) -> torch.memory_format:
    return torch.channels_last if channels_last else torch.contiguous_format


def strides(shape: torch.Size, channels_last: bool) -> tuple[int, ...]:
    """The strides of a dense NCHW batch of ``shape`` in that layout (what ``torch.empty`` would give it)."""
    n, c, h, w = shape
    return (c * h * w, 1, w * c, c) if channels_last else (c * h * w, h * w, w, 1)


def in_layout(images: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """``images`` (N, C, H, W) with exactly the strides of the layout: the tensor itself when it has them (no copy),
    else a copy. Differentiable, so attacks may take gradients through it."""
    if images.dim() != 4 or images.stride() == strides(images.shape, channels_last):
        return images
    return images.clone(memory_format=memory_format(channels_last))


def check_cpu_kernels(network: nn.Module, device: torch.device, channels_last: bool) -> None:
    """Refuse to train ``network`` where PyTorch's CPU kernels would corrupt memory or its gradients."""
    if device.type != "cpu" or not channels_last:
        return
    for name, module in network.named_modules():
        if (
            isinstance(module, nn.Conv2d)
            and module.kernel_size == (1, 1)
            and module.stride != (1, 1)
            and module.in_channels < SAFE_CHANNELS
        ):
            raise UserError(
                f"trainer.channels_last=true cannot train this network on the CPU: its strided 1x1 convolution "
                f"{name} has {module.in_channels} input channels, and oneDNN's channels_last backward with fewer "
                f"than {SAFE_CHANNELS} corrupts memory or the gradients on AVX2 CPUs (uxlfoundation/oneDNN#6035); "
                f"set trainer.channels_last=false, or widen the model (a PreActResNet's model.width="
                f"{SAFE_CHANNELS} or more)"
            )
