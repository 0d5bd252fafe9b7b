"""Multi-process training helpers, shared by every trainer.

The same command runs single-process or under ``torchrun --nproc_per_node N``: torchrun sets
RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT and :func:`init_distributed` joins the
process group (NCCL on CUDA, gloo on CPU). Gradients are averaged over ranks after each backward
(as DistributedDataParallel does, done explicitly so GAN phases can freeze and unfreeze networks
freely), and every rank starts from rank 0's weights.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from datetime import timedelta
from typing import Iterable

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistributedContext:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device: torch.device | str | None = None, timeout: timedelta | None = None) -> DistributedContext:
    """Join torchrun's process group when launched by it; otherwise a single-process context.
    ``timeout`` bounds how long a collective waits for the slowest rank (torch's default if None)."""
    from backend.device import pick_device

    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(device) if device is not None else pick_device()
    if device.type == "cuda" and world_size > 1:
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo", init_method="env://",
                                rank=rank, world_size=world_size, **({"timeout": timeout} if timeout else {}))
    return DistributedContext(rank, world_size, local_rank, device)


def barrier(context: DistributedContext) -> None:
    if context.enabled:
        dist.barrier()


def cleanup(context: DistributedContext) -> None:
    """Leave the process group. On a normal exit every rank first waits for the others: rank 0 hosts the
    group's store, and a rank whose store vanishes while it still tears down gloo aborts (seen under load
    on 2 cores). Called while an exception propagates (from a ``finally``), it leaves at once, since the
    other ranks may never get there."""
    if context.enabled and dist.is_initialized():
        if sys.exc_info()[0] is None:
            dist.barrier()
        dist.destroy_process_group()


def broadcast_module(module: torch.nn.Module, context: DistributedContext) -> None:
    """Copy rank 0's parameters and buffers to every rank."""
    if not context.enabled:
        return
    with torch.no_grad():
        for tensor in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(tensor.data, src=0)


def average_gradients(parameters: Iterable[torch.nn.Parameter], context: DistributedContext) -> None:
    """Mean of each gradient over ranks, in one flattened all-reduce (missing gradients count as 0)."""
    if not context.enabled:
        return
    params = [p for p in parameters if p.requires_grad]
    if not params:
        return
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in params])
    dist.all_reduce(flat)
    flat /= context.world_size
    offset = 0
    for p in params:
        count = p.numel()
        p.grad = flat[offset:offset + count].view_as(p).clone()
        offset += count


def average_tensor(tensor: torch.Tensor, context: DistributedContext) -> torch.Tensor:
    """In-place mean over ranks (e.g. running statistics every rank updates from its own batch)."""
    if context.enabled:
        dist.all_reduce(tensor)
        tensor /= context.world_size
    return tensor


def replicas_identical(module: torch.nn.Module, context: DistributedContext) -> bool:
    """True when every rank holds exactly rank 0's parameters and buffers (checked at snapshots)."""
    if not context.enabled:
        return True
    with torch.no_grad():
        local = torch.cat([t.detach().float().flatten() for t in list(module.parameters()) + list(module.buffers())])
        reference = local.clone()
        dist.broadcast(reference, src=0)
        mismatch = torch.tensor([0.0 if torch.equal(local, reference) else 1.0], device=local.device)
        dist.all_reduce(mismatch)
    return mismatch.item() == 0.0
