"""Data parallelism across processes started by torchrun (gloo on CPU, nccl on GPU).

Gradients are averaged with one all-reduce per phase over a flattened buffer, the way
StyleGAN2-ADA does it (Karras et al. 2020), instead of wrapping modules in
DistributedDataParallel: tasks run several modules per phase (a GAN's G loss runs D), which
DDP's per-module reducer does not model. The arithmetic is the same as DDP's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
import torch.nn as nn

from pixloom.errors import InvalidValue


@dataclass
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # True when this process created the process group

    @property
    def is_main(self) -> bool:
        """Rank 0 writes checkpoints, logs and samples."""
        return self.rank == 0


def init_world(device_type: str) -> World:
    """Join the torchrun process group when WORLD_SIZE > 1, else a one-process world."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    owns = False
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, init_method="env://", rank=rank, world_size=size)
        owns = True
    return World(rank=rank, size=size, local_rank=local_rank, owns_group=owns)


def check_batch_split(world: World, batch_size: int, grad_accum: int) -> None:
    """Refuse a global batch that does not split evenly over ranks and micro-batches."""
    if batch_size % (world.size * grad_accum):
        raise InvalidValue(
            "batch_size",
            batch_size,
            f"a multiple of world size x grad_accum = {world.size} x {grad_accum}",
        )


def shutdown(world: World) -> None:
    """Leave the process group if this process created it."""
    if world.owns_group and dist.is_initialized():
        dist.barrier()  # no rank tears down its connections while a peer still uses them
        dist.destroy_process_group()


def broadcast_modules(modules: dict[str, nn.Module], world: World) -> None:
    """Copy rank 0's parameters and buffers to every rank."""
    if world.size == 1:
        return
    for module in modules.values():
        for tensor in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(tensor.data, src=0)


def all_true(flag: bool, world: World, device: torch.device) -> bool:
    """True only when `flag` holds on every rank."""
    if world.size == 1:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return bool(value.item() > 0)


def any_true(flag: bool, world: World, device: torch.device) -> bool:
    """True when `flag` holds on some rank."""
    return not all_true(not flag, world, device)


def average_gradients(parameters: list[nn.Parameter], world: World) -> None:
    """Average .grad over ranks (missing grads count as zeros)."""
    if world.size == 1 or not parameters:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in parameters]
    flat = torch.cat([g.reshape(-1) for g in grads])  # (sum of numels,)
    dist.all_reduce(flat)
    flat /= world.size
    offset = 0
    for param, grad in zip(parameters, grads):
        param.grad = flat[offset : offset + grad.numel()].view_as(grad).clone()
        offset += grad.numel()


def gather_objects(obj: Any, world: World) -> list[Any]:
    """Every rank's `obj`, in rank order."""
    if world.size == 1:
        return [obj]
    gathered: list[Any] = [None] * world.size
    dist.all_gather_object(gathered, obj)
    return gathered
