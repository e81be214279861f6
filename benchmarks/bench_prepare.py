"""``prepare`` on one and two processes, and what resuming an interrupted run saves.

Measured, in the same run, on the first documents of the shipped Wikipedia summaries (minilm
on the CPU, pieces of 25 documents): ``lcm run`` on one process, and the same recipe under
``torchrun`` on two, every process with one thread (process scaling, as one process per GPU;
threads on cores other processes use would slow a process down instead), in sentences per
second of wall clock (from launch to exit, start-up and model load included, as a user waits). Then a run interrupted half-way (a job array's rank 0 of 2 alone leaves
half the shards, as a kill would) and the plain rerun that resumes it, against the full run
from scratch: the ratio is the share of the time a resumed run still takes.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import Result
from lcm.data.shards import Manifest

CORPUS = Path(__file__).resolve().parents[1] / "data" / "wiki_summaries.jsonl"
LCM = [sys.executable, "-m", "lcm.cli"]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone"]


def write_recipe(directory: Path, output: Path, documents: int) -> Path:
    recipe = directory / f"{output.name}.yaml"
    recipe.write_text(
        f"task: prepare\ninput: {CORPUS}\noutput: {output}\nlimit: {documents}\n"
        "encoder: {name: minilm, device: cpu}\ndocs_per_shard: 25\nbatch_size: 128\n")
    return recipe


def timed(command: list[str]) -> float:
    """Wall seconds of ``command`` (one thread per process), which must succeed."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.strip()[-500:]}")
    return seconds


def run(quick: bool = False) -> list[Result]:
    documents = 80 if quick else 300
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        one, two, resumed = (write_recipe(work, work / name, documents)
                             for name in ("one", "two", "resumed"))
        one_s = timed([*LCM, "run", str(one)])
        two_s = timed([*TORCHRUN, "--nproc-per-node=2", "-m", "lcm.cli", "run", str(two)])
        timed([*LCM, "run", str(resumed), "rank=0", "world_size=2"])  # "killed" half-way
        resumed_s = timed([*LCM, "run", str(resumed)])
        sentences = Manifest.read(work / "one").sentences
        if Manifest.read(work / "two").sentences != sentences or \
                Manifest.read(work / "resumed").sentences != sentences:
            raise RuntimeError("the runs wrote different sets")
    return [Result("prepare", f"2 processes, torchrun ({sentences} sentences)", "sentences/s",
                   sentences / two_s, "1 process", sentences / one_s),
            Result("prepare", f"resumed with half the shards kept (saves {one_s - resumed_s:.1f} s)",
                   "s", resumed_s, "full run from scratch", one_s, higher_is_better=False)]
