"""torchrun / DDP helpers: process-group setup and the feature all-gather for the loss."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job. world_size == 1 means single-process."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """Rank 0 logs, saves checkpoints and calls the user's callback."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError as e:
        raise ValueError(f"environment variable {name}={value!r} is not an integer") from e


def init_distributed(device: str | torch.device | None = None) -> DistInfo:
    """Join the torchrun job described by RANK/WORLD_SIZE/LOCAL_RANK (nccl on CUDA, else gloo).

    Idempotent: if a process group already exists (e.g. a test spawned the processes), it is used.
    Without WORLD_SIZE > 1 this returns a single-process DistInfo and starts nothing.
    `device` overrides the default device (cuda:LOCAL_RANK when CUDA is available, else cpu).
    """
    if dist.is_available() and dist.is_initialized():
        rank, world_size = dist.get_rank(), dist.get_world_size()
        local_rank = _env_int("LOCAL_RANK", rank)
    else:
        world_size = _env_int("WORLD_SIZE", 1)
        rank, local_rank = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    if not 0 <= rank < world_size:
        raise ValueError(f"RANK={rank} is outside WORLD_SIZE={world_size}")
    if device is not None:
        dev = torch.device(device)
        if dev.type == "cuda" and dev.index is None and world_size > 1:
            dev = torch.device("cuda", local_rank % torch.cuda.device_count())  # one GPU per rank
    elif torch.cuda.is_available():
        dev = torch.device("cuda", local_rank % torch.cuda.device_count())
    else:
        dev = torch.device("cpu")
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world_size > 1 and not dist.is_initialized():
        if "MASTER_ADDR" not in os.environ or "MASTER_PORT" not in os.environ:
            raise ValueError("WORLD_SIZE > 1 but MASTER_ADDR/MASTER_PORT are not set; launch with torchrun")
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo", rank=rank, world_size=world_size)
    return DistInfo(rank=rank, local_rank=local_rank, world_size=world_size, device=dev)


def gather_features(
    image_features: torch.Tensor, text_features: torch.Tensor, info: DistInfo
) -> tuple[torch.Tensor, torch.Tensor]:
    """All-gather both feature shards into global-batch tensors (rank order).

    The collective is the plain, non-autograd all_gather; this rank's own shard is put back in its
    slot so gradients flow into the local features only (spec 3.6; open_clip's
    gather_with_grad=False). Every rank then computes the same global loss, and DDP's gradient
    average makes each parameter's gradient 1/world_size of the single-process gradient, except
    for parameters used outside the towers (the logit scale), which get the full gradient.
    Identity when world_size == 1.
    """
    if info.world_size == 1:
        return image_features, text_features
    if image_features.shape[0] != text_features.shape[0]:
        raise ValueError(
            f"image and text shards differ in length: {image_features.shape[0]} vs {text_features.shape[0]}"
        )
    out = []
    for local in (image_features, text_features):
        shards = [torch.empty_like(local) for _ in range(info.world_size)]
        dist.all_gather(shards, local.detach().contiguous())
        shards[info.rank] = local
        out.append(torch.cat(shards, dim=0))
    return out[0], out[1]


def broadcast_module(module: torch.nn.Module, info: DistInfo) -> None:
    """Copy rank 0's parameters and buffers to every rank (DDP only syncs the module it wraps)."""
    if info.world_size == 1:
        return
    with torch.no_grad():
        for tensor in module.state_dict().values():
            dist.broadcast(tensor, src=0)


def all_agree(flag: bool, info: DistInfo) -> bool:
    """Rank 0's value of `flag`, on every rank (so all ranks stop at the same step)."""
    if info.world_size == 1:
        return flag
    t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=info.device)
    dist.broadcast(t, src=0)
    return bool(t.item())


def barrier(info: DistInfo) -> None:
    """Wait for every rank (no-op when single-process)."""
    if info.world_size > 1:
        dist.barrier()


def shutdown_distributed() -> None:
    """Leave the process group at the end of a torchrun job; a no-op when none was started."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
