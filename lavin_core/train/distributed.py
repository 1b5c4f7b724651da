"""torch.distributed for the trainer: one process, or many under ``torchrun``.

Process groups and collectives only; how a model is wrapped or sharded is
``lavin_core.train.parallelize``. Without ``torchrun`` (no ``WORLD_SIZE``) no process group is
created.
"""

from __future__ import annotations

import os
from typing import Any

import attrs
import torch
import torch.distributed as dist

from lavin_core.errors import LavinError

@attrs.frozen(kw_only=True)
class DistInfo:
    """Where this process sits: its rank among ``world_size`` and the device it computes on."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise LavinError(f"environment variable {name}={raw!r} must be an integer (set by torchrun)") from None


def setup(device: str = "auto") -> DistInfo:
    """Join the process group that ``torchrun`` describes (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``).

    ``device``: ``auto`` (CUDA when available), ``cpu`` or ``cuda``. The backend is NCCL on CUDA and
    gloo on the CPU. A single process (no ``WORLD_SIZE`` or ``WORLD_SIZE=1``) gets no process group.
    """
    world_size = _env_int("WORLD_SIZE", 1)
    rank, local_rank = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise LavinError('run.device = "cuda" but no CUDA device is visible; use "cpu" or "auto"')
        torch.cuda.set_device(local_rank)
        where = torch.device("cuda", local_rank)
    elif device == "cpu":
        where = torch.device("cpu")
    else:
        raise LavinError(f"unknown device {device!r}; use auto, cpu or cuda")
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if where.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, device_id=where if where.type == "cuda" else None)
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=where)


def teardown() -> None:
    """Leave the process group, if this process joined one."""
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.is_distributed:
        dist.barrier()


def mean_over_ranks(values: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """The element-wise mean of ``values`` over all ranks (``values`` itself on one process)."""
    if not info.is_distributed or values.numel() == 0:
        return values
    # NCCL reduces device tensors only; the result goes back where ``values`` was.
    summed = values.detach().to(info.device, copy=True)
    dist.all_reduce(summed, op=dist.ReduceOp.SUM)
    return (summed / info.world_size).to(values.device)


def broadcast_object(value: Any, info: DistInfo) -> Any:
    """Rank 0's ``value`` on every rank."""
    if not info.is_distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]
