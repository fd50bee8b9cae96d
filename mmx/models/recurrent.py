"""Recurrent networks over images read as sequences, with a mixing point between every two layers.

An image of C x H x W becomes a sequence: its rows (H steps of C * W values; 8 steps of 8 on digits, 32
of 96 on CIFAR) or its pixels (H * W steps of C values). Mixing point 0 is that input sequence (mixing
it is mixing the images), point k the output sequence of recurrent layer k: the hidden states of two
sequences are mixed at every time step with one lam. A linear head reads the last layer's final
state or its mean over time. The paper asks whether mixing generalises to RNNs; this is mmx's answer
to try it.
"""

from __future__ import annotations

import torch
from torch import nn

from mmx.models.staged import StagedNetwork

CELLS = {"gru": nn.GRU, "lstm": nn.LSTM}


class ImageSequence(nn.Module):
    """``(batch, C, H, W)`` images as ``(batch, steps, features)`` sequences of rows or of pixels."""

    def __init__(self, read: str):
        super().__init__()
        if read not in ("rows", "pixels"):
            raise ValueError(f"read must be 'rows' or 'pixels' (got {read!r})")
        self.read = read

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = images.shape
        if self.read == "rows":  # step t: row t of every channel
            return images.permute(0, 2, 1, 3).reshape(batch, height, channels * width)
        return images.permute(0, 2, 3, 1).reshape(batch, height * width, channels)  # row-major pixel order


class RecurrentLayer(nn.Module):
    """One GRU or LSTM layer, returning only its output sequence (the next mixing point's state)."""

    def __init__(self, cell: str, inputs: int, hidden: int):
        super().__init__()
        self.rnn = CELLS[cell](inputs, hidden, batch_first=True)

    def forward(self, sequence: torch.Tensor) -> torch.Tensor:
        return self.rnn(sequence)[0]


class SequenceHead(nn.Module):
    """A linear classifier on the last time step's state, or on the mean state over time."""

    def __init__(self, hidden: int, num_classes: int, readout: str):
        super().__init__()
        if readout not in ("last", "mean"):
            raise ValueError(f"readout must be 'last' or 'mean' (got {readout!r})")
        self.readout = readout
        self.linear = nn.Linear(hidden, num_classes)

    def forward(self, sequence: torch.Tensor) -> torch.Tensor:
        state = sequence[:, -1] if self.readout == "last" else sequence.mean(dim=1)
        return self.linear(state)


class RecurrentNetwork(StagedNetwork):
    """``layers`` stacked GRU (or LSTM) layers of ``hidden`` units over an image read as a sequence.

    Stages: read the image and run layer 1; layers 2..L; the head. Mixing points: 0 the input, k in
    1..L the output sequence of layer k.
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        image_size: int = 8,
        cell: str = "gru",
        hidden: int = 128,
        layers: int = 2,
        read: str = "rows",
        readout: str = "last",
    ):
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)} (got {cell!r})")
        if layers < 1 or hidden < 1:
            raise ValueError(f"RecurrentNetwork needs layers >= 1 and hidden >= 1 (got {layers}, {hidden})")
        features = in_channels * image_size if read == "rows" else in_channels
        first = nn.Sequential(ImageSequence(read), RecurrentLayer(cell, features, hidden))
        rest = [RecurrentLayer(cell, hidden, hidden) for _ in range(layers - 1)]
        super().__init__([first, *rest, SequenceHead(hidden, num_classes, readout)])
