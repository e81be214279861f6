"""Process-group set-up that works the same alone on a CPU and under the ``deepspeed`` launcher.

The launcher (one GPU or many nodes) sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and
MASTER_PORT; a plain ``lcm run`` gets single-process defaults here, because without them
DeepSpeed falls back to MPI discovery and fails.
"""
from __future__ import annotations

import importlib
import os
import socket
from dataclasses import dataclass

import torch

from lcm.errors import UserError
from lcm.ui.chatter import native_output_to_log


@dataclass(frozen=True)
class DistributedContext:
    rank: int
    world_size: int
    local_rank: int
    device: str  # "cpu" or "cuda:N"
    backend: str

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def free_port() -> int:
    """A TCP port nobody listens on now (for the single-process rendezvous)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _set_single_process_defaults() -> None:
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        return
    defaults = {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1"}
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("MASTER_PORT", str(free_port()))


def init_distributed(backend: str = "auto") -> DistributedContext:
    """Join (or create) the process group; call before anything imports deepspeed.

    On a machine without CUDA, DeepSpeed's CPU accelerator is chosen and its shared-memory
    all-reduce op is not built: building it compiles C++ for a minute, and gloo does the same
    job at this scale without it.
    """
    cuda = torch.cuda.is_available()
    if not cuda:
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    if backend == "auto":
        backend = "nccl" if cuda else "gloo"
    if backend == "nccl" and not cuda:
        raise UserError("distributed.backend nccl needs CUDA GPUs; use gloo (or auto) on a CPU")
    _set_single_process_defaults()

    # lazy: DeepSpeed must not load before init_distributed sets DS_ACCELERATOR
    import deepspeed

    if not cuda:
        # `import deepspeed.comm.torch` would bind the name to the torch package it re-exports.
        importlib.import_module("deepspeed.comm.torch").build_shm_op = lambda: None
    with native_output_to_log():  # gloo's "[Gloo] Rank 0 is connected ..." comes from C++
        deepspeed.init_distributed(dist_backend=backend)
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = "cpu"
    if cuda:
        torch.cuda.set_device(local_rank)
        device = f"cuda:{local_rank}"
    return DistributedContext(rank, world_size, local_rank, device, backend)


def set_cpu_threads(requested: int, data_workers: int) -> int:
    """Give torch ``requested`` threads, or (0) ``automatic_threads``; an explicit
    OMP_NUM_THREADS wins over the automatic choice."""
    if requested <= 0:
        if "OMP_NUM_THREADS" in os.environ:
            return torch.get_num_threads()
        ranks_here = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("LOCAL_SIZE", "1")))
        requested = automatic_threads(os.cpu_count() or 1, ranks_here, data_workers,
                                      os.getloadavg()[0])
    torch.set_num_threads(requested)
    return requested


def automatic_threads(cores: int, ranks_here: int, data_workers: int, load: float) -> int:
    """This rank's share of the cores that are free (``load``: the 1-minute load average, the
    processes already running), minus its data workers, at least 1. Threads on cores that
    other processes use make small models many times slower (measured: 23x on 2 busy cores)."""
    free = max(1, cores - round(load))
    return max(1, min(cores // ranks_here, free // ranks_here) - data_workers)


def barrier() -> None:
    # lazy: DeepSpeed must not load before init_distributed sets DS_ACCELERATOR
    import deepspeed.comm as dist

    dist.barrier()


def all_reduce_sum(values: list[float], device: str) -> list[float]:
    """Sum a few numbers over all ranks (for logging: loss and concept counts)."""
    # lazy: DeepSpeed must not load before init_distributed sets DS_ACCELERATOR
    import deepspeed.comm as dist

    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()
