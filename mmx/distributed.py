"""One training over several processes (``torchrun``): which process this is, and the few
collective operations the trainer needs. Without torchrun everything here is a no-op."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Only the main process writes logs, metrics and checkpoints."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def from_environment() -> Ranks:
    """The ranks torchrun announces in RANK, WORLD_SIZE and LOCAL_RANK (a single process otherwise)."""
    return Ranks(
        int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))
    )


def start(ranks: Ranks, device: torch.device) -> None:
    """Join the process group: NCCL between GPUs, gloo between CPU processes.

    On GPUs the process's own device becomes the current one first: NCCL's object collectives
    (``broadcast_object_list``, ``all_gather_object``) run on the current device, so without it every
    rank would use GPU 0 and NCCL would stop with "Duplicate GPU detected".
    """
    if not ranks.active or dist.is_initialized():
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
    else:
        dist.init_process_group("gloo")


def sum_across(tensor: torch.Tensor, ranks: Ranks) -> torch.Tensor:
    if ranks.active:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def max_across(tensor: torch.Tensor, ranks: Ranks) -> torch.Tensor:
    if ranks.active:
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return tensor


def from_main(value, ranks: Ranks):
    """The main process's value of a picklable object, on every process."""
    if not ranks.active:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(value, ranks: Ranks) -> list:
    """Every process's picklable ``value``, in rank order, on every process."""
    if not ranks.active:
        return [value]
    out = [None] * ranks.world_size
    dist.all_gather_object(out, value)
    return out


def gather_rows(rows: torch.Tensor, total: int, ranks: Ranks) -> torch.Tensor:
    """Concatenate every process's contiguous shard of ``total`` rows, in rank order."""
    if not ranks.active:
        return rows
    shard = -(-total // ranks.world_size)
    padded = torch.zeros((shard, *rows.shape[1:]), dtype=rows.dtype, device=rows.device)
    padded[: len(rows)] = rows
    pieces = [torch.empty_like(padded) for _ in range(ranks.world_size)]
    dist.all_gather(pieces, padded)
    return torch.cat(pieces)[:total]


def shard_bounds(total: int, ranks: Ranks) -> tuple[int, int]:
    """This process's contiguous slice ``[start, stop)`` of ``total`` items."""
    shard = -(-total // ranks.world_size)
    return min(ranks.rank * shard, total), min((ranks.rank + 1) * shard, total)


def parameters_in_sync(model: torch.nn.Module, ranks: Ranks) -> bool:
    """True when every process holds bit-identical parameters (DDP's promise, checked)."""
    if not ranks.active:
        return True
    digest = torch.stack([p.detach().double().sum() for p in model.parameters()])
    gathered = [torch.empty_like(digest) for _ in range(ranks.world_size)]
    dist.all_gather(gathered, digest)
    return all(torch.equal(gathered[0], other) for other in gathered[1:])


def sync_buffers(model: torch.nn.Module, ranks: Ranks) -> None:
    """Copy the main process's buffers (BN running statistics) to every process.

    DDP broadcasts them before each training forward, but that forward then updates them from
    the local batch; evaluation and checkpoints must all see the same model.
    """
    if ranks.active:
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)


def stop(ranks: Ranks) -> None:
    """Leave the process group (the trainer calls it when a run ends, however it ends)."""
    if ranks.active and dist.is_initialized():
        dist.destroy_process_group()
