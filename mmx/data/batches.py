"""Minibatches drawn from tensors that already sit on the training device."""

from __future__ import annotations

from typing import Iterator

import torch

from mmx.data.augment import normalize, random_crop_flip
from mmx.layout import in_layout


class Normalizer:
    """uint8 images to the network's input: per-channel mean/std normalised float32, in the layout the network
    trains in (``channels_last``) with that layout's own strides (:mod:`mmx.layout`). Constants kept on the device.
    """

    def __init__(self, mean, std, device: torch.device, channels_last: bool = False):
        self.mean = torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.channels_last = channels_last

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        # the layout is set on the uint8 images (a quarter of the bytes of floats); elementwise maths keeps it
        floats = normalize(in_layout(images, self.channels_last), self.mean, self.std)
        return in_layout(floats, self.channels_last)  # a check that costs nothing when it holds


def process_slice(step: int, batch_size: int, rank: int, world_size: int) -> slice:
    """This process's part of global batch ``step`` in an epoch's order (torchrun: every process draws
    the same order and takes its own ``batch_size // world_size`` images of each global batch)."""
    local = batch_size // world_size
    start = step * batch_size + rank * local
    return slice(start, start + local)


class TrainBatches:
    """One epoch = a fresh permutation cut into full batches (the remainder is dropped).

    Dropping the remainder keeps every step the same shape (what graph capture needs); a fresh
    permutation per epoch means every image is still seen. All randomness comes from generators
    on the data's device, whose states a checkpoint saves, so a resumed run draws the same batches.

    Under torchrun every process draws the same permutation and takes its own slice of each global
    batch of ``batch_size``; crops and flips then come from a generator of its own.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        normalizer: Normalizer,
        crop_padding: int,
        flip: bool,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
    ):
        self.images, self.labels = images, labels
        self.batch_size = batch_size
        self.rank, self.world_size = rank, world_size
        self.normalizer = normalizer
        self.crop_padding, self.flip = crop_padding, flip
        self.order_generator = torch.Generator(images.device).manual_seed(seed)
        self.augment_generator = (
            self.order_generator
            if world_size == 1
            else torch.Generator(images.device).manual_seed(seed + 7919 * (rank + 1))
        )
        self.order: torch.Tensor | None = None  # the current epoch's permutation
        self._resume_at: tuple[torch.Tensor, int] | None = None  # (order, step) of an epoch a checkpoint stopped in

    def __len__(self) -> int:
        return len(self.images) // self.batch_size

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self._resume_at is not None:  # the rest of the epoch a mid-epoch checkpoint was written in
            order, start = self._resume_at
            self._resume_at = None
        else:
            order, start = (
                torch.randperm(len(self.images), device=self.images.device, generator=self.order_generator),
                0,
            )
        self.order = order
        for step in range(start, len(self)):
            index = order[process_slice(step, self.batch_size, self.rank, self.world_size)]
            images = random_crop_flip(self.images[index], self.crop_padding, self.flip, self.augment_generator)
            yield self.normalizer(images), self.labels[index]

    def state_dict(self, position: int | None = None) -> dict:
        """The generators' states; inside an epoch (``position``: the steps it has done) also the epoch's order,
        so that a resume continues the epoch where it stopped, with the same draws."""
        state = {"order": self.order_generator.get_state(), "augment": self.augment_generator.get_state()}
        if position is not None:
            state.update(epoch_order=self.order.cpu(), position=position)
        return state

    def load_state_dict(self, state: dict) -> None:
        self.order_generator.set_state(state["order"])
        self.augment_generator.set_state(state["augment"])
        if "position" in state:
            self._resume_at = (state["epoch_order"].to(self.images.device), int(state["position"]))


def eval_batches(
    images: torch.Tensor, labels: torch.Tensor, batch_size: int, normalizer: Normalizer
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The test set in order, unaugmented, every image once."""
    for start in range(0, len(images), batch_size):
        yield normalizer(images[start : start + batch_size]), labels[start : start + batch_size]
