"""Which process of a distributed run this is, and the pure arithmetic of sharing batches among ranks.

No torch here (the data and train layers both use it): a rank, the world size and the local rank come
from the environment torchrun (PyTorch's elastic agent) gives each process it starts.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass

#: The variables torch.distributed's elastic agent (torchrun, elastic_launch) sets in every process it starts.
RANK, WORLD_SIZE, LOCAL_RANK = "RANK", "WORLD_SIZE", "LOCAL_RANK"


@dataclass(frozen=True)
class Rank:
    """One process of a run: its rank among ``world_size`` processes, and its index on this node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that tracks, checkpoints and writes artifacts."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


#: A run in one process.
SINGLE = Rank()


def rank_from_environment() -> Rank | None:
    """This process's rank when an elastic agent started it (RANK and WORLD_SIZE set), else None."""
    if RANK not in os.environ or WORLD_SIZE not in os.environ:
        return None
    return Rank(int(os.environ[RANK]), int(os.environ[WORLD_SIZE]), int(os.environ.get(LOCAL_RANK, "0")))


def split_bounds(size: int, world_size: int, rank: int) -> tuple[int, int]:
    """The ``[start, stop)`` of rank's contiguous part of ``size`` items: parts differ by at most one item,
    follow each other in rank order, and together cover every item exactly once."""
    return size * rank // world_size, size * (rank + 1) // world_size


def rank_seed(seed: int, rank: int) -> int:
    """A seed of ``rank``'s own random draws from a seed every rank shares: ``seed`` itself on rank 0 (so a
    run in one process draws as before), else a 64-bit seed NumPy's SeedSequence mixes from (seed, rank), so
    no two (seed, rank) pairs collide as ``seed + rank`` would (seed 1 rank 0 = seed 0 rank 1)."""
    if rank == 0:
        return seed
    from numpy.random import SeedSequence

    return int(SeedSequence((seed, rank)).generate_state(1, "uint64")[0])


def ignore_requeue_signal() -> None:
    """Ignore SIGUSR2, Slurm's warning before a requeue (``--signal USR2@90``), which Slurm sends to every
    process of the job step: the launching process acts on it, while its default action would kill a rank
    or a DataLoader worker, and a forked worker would run the handler it inherited (submitit's)."""
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)
