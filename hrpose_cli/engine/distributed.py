"""torchrun's process group for training: who this process is, the runtime it drives, barriers and broadcasts."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from hrpose_cli.engine.runtime import Runtime
from hrpose_cli.engine.train_config import TrainConfig
from hrpose_cli.errors import HrposeError


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup(config: TrainConfig) -> tuple[DistInfo, Runtime]:
    """Process group from torchrun's RANK/WORLD_SIZE/LOCAL_RANK (NCCL on CUDA, gloo on the CPU) and the runtime."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(), Runtime.create(config.device)
    info = DistInfo(
        rank=int(os.environ.get("RANK", "0")),
        world=world,
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
        local_world=int(os.environ.get("LOCAL_WORLD_SIZE", str(world))),
    )
    spec = (config.device or "auto").lower()
    use_cuda = spec != "cpu" and (spec != "auto" or torch.cuda.is_available())
    if use_cuda:
        if not torch.cuda.is_available():
            raise HrposeError(f"--device {config.device}: CUDA is not available on this machine (use --device cpu)")
        torch.cuda.set_device(info.local_rank)
        device = f"cuda:{info.local_rank}"  # under torchrun each process drives the GPU of its LOCAL_RANK
    else:
        device = "cpu"
    runtime = Runtime.create(device)
    if not dist.is_initialized():
        kwargs = {"device_id": runtime.device} if use_cuda else {}
        dist.init_process_group("nccl" if use_cuda else "gloo", **kwargs)
    return info, runtime


def barrier(info: DistInfo, runtime: Runtime) -> None:
    if info.enabled:
        if runtime.device.type == "cuda":
            dist.barrier(device_ids=[runtime.device.index])
        else:
            dist.barrier()


def broadcast_path(info: DistInfo, path: Path | None) -> Path:
    if not info.enabled:
        return path
    box = [str(path) if path is not None else None]
    dist.broadcast_object_list(box, src=0)
    return Path(box[0])
