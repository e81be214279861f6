"""Does ``torch.compile`` pay for cached generation on the CPU?

The mse head's cached generation after a 128-concept prompt (as ``bench_generation``), its
trunk's forward compiled (inductor, ``dynamic=True``: the cache grows every step) against the
same model eager, in the same run; the compile time is reported beside, since it is paid once
per process before the first concept.
"""
from __future__ import annotations

import time

import torch

from benchmarks.bench_generation import CONTEXT, DOCUMENTS, SPACE, build, generation_rate, rates
from benchmarks.common import Result


def run(quick: bool = False) -> list[Result]:
    if quick:
        return []  # compiling takes minutes: no smoke-sized version
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    prompts = [torch.randn(CONTEXT, SPACE.dim, generator=gen) for _ in range(DOCUMENTS)]
    eager, compiled = build("mse"), build("mse")
    compiled.trunk.forward = torch.compile(compiled.trunk.forward, dynamic=True)
    generation_rate(eager, prompts, 2, 1)
    start = time.perf_counter()
    generation_rate(compiled, prompts, 2, 1)
    compile_seconds = time.perf_counter() - start
    got = rates({"compiled": (compiled, prompts, 16, False), "eager": (eager, prompts, 16, False)},
                repeats=3)
    return [Result("generation", f"mse: torch.compile(dynamic=True) of the trunk (compiling: "
                   f"{compile_seconds:.0f} s once)", "concepts/s", got["compiled"], "eager",
                   got["eager"])]
