"""The launcher's environment in, this process's place in the build out: rank, world size and device
under `torchrun` (RANK, WORLD_SIZE, LOCAL_RANK), or a world of one without it.

A build splits by whole chunks, so every row is computed in the same batch whichever process runs
it; rank 0 plans and packs, the others wait at barriers. CUDA processes use the NCCL backend and
one GPU each (by LOCAL_RANK); CPU processes use gloo.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import timedelta

from ft_artifacts.errors import ArtifactError

logger = logging.getLogger(__name__)

# Ranks wait at barriers while others optimize or pack: allow long chunks (a paper-preset chunk of
# bert-large on a slow GPU takes minutes; the default 30 minutes would be too tight for atlases).
BARRIER_TIMEOUT = timedelta(hours=12)


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    def mine(self, index: int) -> bool:
        """Whether work item `index` (a chunk) belongs to this process: round robin by rank."""
        return index % self.size == self.rank

    def barrier(self) -> None:
        if self.size > 1:
            import torch.distributed as dist

            dist.barrier()

    def agree(self, value):
        """Rank 0's value, on every rank (e.g. an error message, so all ranks stop together)."""
        if self.size == 1:
            return value
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def world_from_env(device: str) -> tuple[World, str]:
    """Join the torchrun process group when WORLD_SIZE > 1; return (world, this process's device)."""
    size = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if size <= 1:
        return World(), device
    try:
        rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    except (KeyError, ValueError) as exc:
        raise ArtifactError("WORLD_SIZE is set but RANK or LOCAL_RANK is not: start distributed builds with "
                            "torchrun") from exc
    import torch
    import torch.distributed as dist

    if device.startswith("cuda"):
        if local_rank >= torch.cuda.device_count():
            raise ArtifactError(f"LOCAL_RANK {local_rank} has no GPU: this node has {torch.cuda.device_count()}; "
                                "start at most one process per GPU (--nproc-per-node)")
        device = f"cuda:{local_rank}"
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo", timeout=BARRIER_TIMEOUT)
    logger.info("rank %d of %d on %s", rank, size, device)
    return World(rank, size, local_rank), device


def leave(world: World) -> None:
    if world.size > 1:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
