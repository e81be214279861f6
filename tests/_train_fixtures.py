"""Tiny shard sets for the training tests: structured random walks a toy model can learn.

Each document is a random walk with a shared drift, so the next concept is predictable from
the current one and the loss of a trained model falls well below its starting value.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import numpy as np

from lcm.data.normalizer import RobustScaler
from lcm.data.shards import Document, ShardWriter
from lcm.interfaces import ConceptSpace
from lcm.train.log import read_log

SPACE = ConceptSpace("toy-walk", 16)
REPO = Path(__file__).resolve().parents[1]
LCM = Path(sys.executable).with_name("lcm")


def walk_documents(count: int, seed: int = 0, dim: int = SPACE.dim) -> list[Document]:
    rng = np.random.default_rng(seed)
    drift = rng.normal(size=dim)
    documents = []
    for index in range(count):
        length = int(rng.integers(1, 12))  # some single-sentence documents: skipped windows
        start = rng.normal(size=dim)
        steps = drift * 0.5 + rng.normal(scale=0.1, size=(length, dim))
        vectors = start + np.cumsum(steps, axis=0)
        sentences = [f"sentence {i} of document {index}" for i in range(length)]
        documents.append(Document(f"doc{index:05d}", sentences, vectors.astype(np.float16)))
    return documents


def write_shards(directory: Path, documents: list[Document], space: ConceptSpace = SPACE,
                 docs_per_shard: int = 20) -> Path:
    """Shards plus a normaliser fitted on them (as fit_normalizer would write it)."""
    with ShardWriter(directory, space, encoder="toy-walk", docs_per_shard=docs_per_shard) as writer:
        for doc in documents:
            writer.write(doc)
    vectors = np.concatenate([d.vectors.astype(np.float32) for d in documents])
    RobustScaler.fit(vectors, space).save(directory)
    return directory


def train_recipe(shards: Path, output: Path, **train: object) -> dict:
    """A toy ``train`` recipe as a mapping; ``train`` overrides the ``train`` section."""
    return {
        "task": "train",
        "data": {"shards": str(shards), "normalizer": str(shards / "normalizer.json"),
                 "max_concepts": 8, "batch_size": 4, "shuffle_buffer": 64},
        "model": {"arch": "toy", "overrides": {"model_dim": 32, "num_layers": 2}},
        "head": {"name": "mse"},
        "train": {"steps": 30, "lr": 3e-3, "warmup_steps": 3, "checkpoint_every": 10,
                  "log_every": 1, "seed": 7, **train},
        # One thread: toy tensors gain nothing from two, and lose a lot when the cores are busy.
        "distributed": {"cpu_threads": 1},
        "output": str(output),
    }


DISTRIBUTED_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "DS_ACCELERATOR")


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for an ``lcm`` subprocess: no rank variables left by in-process runs
    (they would send it to a rendezvous port this process holds), hub offline."""
    env = {k: v for k, v in os.environ.items() if k not in DISTRIBUTED_ENV}
    return {**env, "HF_HUB_OFFLINE": "1", **extra}


def lcm_command(recipe: Path, *overrides: str) -> list[str]:
    return [str(LCM), "run", str(recipe), *overrides]


def run_lcm(recipe: Path, *overrides: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(lcm_command(recipe, *overrides), capture_output=True, text=True,
                          cwd=REPO, env=clean_env(**env), timeout=300)


def write_yaml(path: Path, recipe: dict) -> Path:
    from omegaconf import OmegaConf

    path.write_text(OmegaConf.to_yaml(OmegaConf.create(recipe)))
    return path


@contextlib.contextmanager
def restored_process_state() -> Iterator[None]:
    """Undo the rank variables and torch thread count an in-process training run sets (its
    process group stays: DeepSpeed joins it again in the next run)."""
    import torch

    saved, threads = dict(os.environ), torch.get_num_threads()
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        torch.set_num_threads(threads)


def log_rows(output: Path) -> list[dict[str, float]]:
    """The training log rows of the run that wrote model folder ``output``."""
    return read_log(output.with_name(output.name + "-training") / "logs" / "train_log.csv")
