"""Which share of a data job this process does, from the launcher's environment or the recipe.

``torchrun`` and the ``deepspeed`` launcher set RANK, WORLD_SIZE and LOCAL_RANK (training reads
the same variables); a job array without a launcher gives ``rank=`` and ``world_size=`` in the
recipe instead. Ranks of a launcher can meet at the end (a gloo barrier, so every rank returns
only once the job's output is complete); ranks of a job array never meet, so the last one to
finish completes the output.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Mapping

import torch
import torch.distributed as dist

from lcm.errors import UserError

WAIT_FOR_RANKS = timedelta(hours=24)
"""How long a rank that finished waits for the others at the end (they encode as much)."""


@dataclass(frozen=True)
class Ranks:
    rank: int
    world_size: int
    local_rank: int
    launched: bool
    """Started by a launcher with a rendezvous (MASTER_ADDR/MASTER_PORT): ranks can meet."""

    @property
    def label(self) -> str:
        return f"rank {self.rank} of {self.world_size}"


def resolve_ranks(rank: int | None, world_size: int | None,
                  env: Mapping[str, str] = os.environ) -> Ranks:
    """This process's rank: the recipe's keys (a job array), else the launcher's variables,
    else one process alone."""
    launcher_world = int(env.get("WORLD_SIZE", "1"))
    if rank is None and world_size is None:
        launched = launcher_world > 1 and "MASTER_ADDR" in env and "MASTER_PORT" in env
        return Ranks(int(env.get("RANK", "0")), launcher_world, int(env.get("LOCAL_RANK", "0")),
                     launched)
    if rank is None or world_size is None:
        raise UserError("rank and world_size go together (a job array gives both)")
    if not 0 <= rank < world_size:
        raise UserError(f"rank must be in [0, world_size), got rank={rank}, "
                        f"world_size={world_size}")
    if launcher_world > 1:
        raise UserError(f"rank=/world_size= are for a job array; this process was started by "
                        f"a launcher with WORLD_SIZE={launcher_world} (drop one of the two)")
    return Ranks(rank, world_size, int(env.get("LOCAL_RANK", "0")), False)


def use_local_device(ranks: Ranks) -> None:
    """Make ``cuda`` (and so a component's "auto" device) mean this rank's GPU, where there is
    one: ``cuda:LOCAL_RANK``."""
    if torch.cuda.is_available():
        torch.cuda.set_device(ranks.local_rank % torch.cuda.device_count())


def wait_for_all_ranks() -> None:
    """Block until every rank of the launcher's group arrives (gloo over the launcher's
    rendezvous; a group set up by an earlier step is reused and left as it was)."""
    created = not dist.is_initialized()
    if created:
        dist.init_process_group("gloo", timeout=WAIT_FOR_RANKS)
    try:
        dist.barrier()
    finally:
        if created:
            dist.destroy_process_group()
