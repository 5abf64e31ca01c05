"""Distributed data parallel (DDP): the process group as torchrun describes it, or a single process."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


@dataclass
class Dist:
    """The process group as torchrun describes it (RANK, WORLD_SIZE, LOCAL_RANK), or a single process."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @classmethod
    def from_env(cls, device: torch.device) -> Dist:
        """Join the process group if launched by torchrun (gloo on CPU, nccl on CUDA)."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        if not dist.is_initialized():
            backend = "nccl" if device.type == "cuda" else "gloo"
            if device.type == "cuda":
                torch.cuda.set_device(local)
            dist.init_process_group(backend=backend)
        return cls(rank=rank, world_size=world, local_rank=local)

    def device(self, device: torch.device) -> torch.device:
        """Each rank takes its own GPU; CPU ranks share the CPU."""
        if device.type == "cuda" and self.enabled:
            return torch.device("cuda", self.local_rank)
        return device

    def prepare(self, module: nn.Module, device: torch.device, broadcast_buffers: bool = True) -> nn.Module:
        """Move to device; under DDP wrap in DDP (converting BatchNorm to SyncBatchNorm on CUDA).

        ``broadcast_buffers=False`` for a module that runs several forwards before one backward (the
        discriminator: reals, then fakes): DDP's copy of rank 0's buffers at each forward writes into
        BatchNorm running statistics that autograd saved for the backward (CPU BatchNorm in torch < 2.13
        keeps them), which fails the backward on every rank but 0.
        """
        module = module.to(device)
        if not self.enabled:
            return module
        if device.type == "cuda":  # SyncBatchNorm only runs on GPUs; CPU ranks keep per-rank statistics
            module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
        ids = [device.index] if device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(module, device_ids=ids, broadcast_buffers=broadcast_buffers)

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's python object, on every rank."""
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj: Any) -> list[Any] | None:
        """Every rank's python object, as a list on rank 0 (None elsewhere); ``[obj]`` in a single process."""
        if not self.enabled:
            return [obj]
        box = [None] * self.world_size if self.is_main else None
        dist.gather_object(obj, box, dst=0)
        return box

    def all_true(self, flag: bool) -> bool:
        """True on every rank iff true on every rank (used for stop/skip decisions)."""
        if not self.enabled:
            return flag
        t = torch.tensor([1 if flag else 0])
        dist.all_reduce(t, op=dist.ReduceOp.MIN)
        return bool(t.item())

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()
