"""The launcher's environment in, this process's place in the build out: rank, world size and device
under `torchrun` (RANK, WORLD_SIZE, LOCAL_RANK), or a world of one without it.

A build splits by whole chunks, so every row is computed in the same batch whichever process runs
it; rank 0 plans and packs, the others wait at barriers. CUDA processes use the NCCL backend and
one GPU each (by LOCAL_RANK); CPU processes use gloo.

A rank that fails (a refused folder, an unsupported lock, out of memory) posts its message in the
job's key-value store (`World.fail`); every other rank polls that store at its barriers and, at most
once a second, between optimizer steps (`World.check`), and stops with that message (`RankError`).
Barriers poll the store too, instead of blocking in a collective for up to BARRIER_TIMEOUT, so no
rank is left waiting for one that has stopped. The failing rank waits up to ACK_WAIT seconds for the
others to have seen its message before it exits (torchrun then stops whatever still runs).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from datetime import timedelta

from ft_artifacts.errors import ArtifactError

logger = logging.getLogger(__name__)

# Ranks wait at barriers while others optimize or pack: allow long chunks (a paper-preset chunk of
# bert-large on a slow GPU takes minutes; the default 30 minutes would be too tight for atlases).
BARRIER_TIMEOUT = timedelta(hours=12)
ACK_WAIT = 30.0  # seconds a failing rank waits for the others to have read its message
POLL = 0.05  # seconds between looks at the store while waiting at a barrier
CHECK_EVERY = 1.0  # seconds between looks at the store while optimizing
_ERROR, _ACKS = "ft_artifacts/error", "ft_artifacts/error_seen"


class RankError(ArtifactError):
    """Another rank of this torchrun job failed; the message is that rank's."""


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    _state: dict = field(default_factory=dict, compare=False, repr=False)  # barrier count, next check

    @property
    def main(self) -> bool:
        return self.rank == 0

    def mine(self, index: int) -> bool:
        """Whether work item `index` (a chunk) belongs to this process: round robin by rank."""
        return index % self.size == self.rank

    def _store(self):
        import torch.distributed.distributed_c10d as c10d

        return c10d._get_default_store()

    def barrier(self) -> None:
        """Wait until every rank is here; raise RankError as soon as one has failed instead."""
        if self.size == 1:
            return
        store = self._store()
        number = self._state["barriers"] = self._state.get("barriers", 0) + 1
        key = f"ft_artifacts/barrier/{number}"
        store.add(key, 1)
        deadline = time.monotonic() + BARRIER_TIMEOUT.total_seconds()
        while int(store.add(key, 0)) < self.size:
            self.check(force=True)
            if time.monotonic() > deadline:
                raise ArtifactError(f"rank {self.rank}: the other ranks did not reach barrier {number} within "
                                    f"{BARRIER_TIMEOUT}; see their logs")
            time.sleep(POLL)

    def check(self, force: bool = False) -> None:
        """Raise RankError with the failing rank's message if another rank has failed (throttled to
        once per CHECK_EVERY seconds unless `force`)."""
        if self.size == 1:
            return
        now = time.monotonic()
        if not force and now < self._state.get("next_check", 0.0):
            return
        self._state["next_check"] = now + CHECK_EVERY
        store = self._store()
        if store.check([_ERROR]):
            message = store.get(_ERROR).decode("utf-8", "replace")
            store.add(_ACKS, 1)
            raise RankError(message)

    def fail(self, message: str) -> None:
        """Tell every other rank that this one failed with `message`, and give them ACK_WAIT seconds
        to read it. The first failure wins; a rank failing after it just counts as having read it."""
        if self.size == 1:
            return
        try:
            store = self._store()
            posted = f"rank {self.rank}: {message}"
            first = store.compare_set(_ERROR, "", posted).decode("utf-8", "replace") == posted
            if not first:
                store.add(_ACKS, 1)
                return
            deadline = time.monotonic() + ACK_WAIT
            while int(store.add(_ACKS, 0)) < self.size - 1 and time.monotonic() < deadline:
                time.sleep(POLL)
        except Exception as exc:  # noqa: BLE001 - the store may be gone with the job; the error itself still rises
            logger.warning("rank %d could not tell the other ranks that it failed: %s", self.rank, exc)


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
