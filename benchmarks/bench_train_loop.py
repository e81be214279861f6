"""A training step's concepts per second through the train task's DeepSpeed path.

Measured: ``lcm.train.concept_unit.measure_throughput`` (DeepSpeed engine, ZeRO 0, fp32, gloo on
CPU, the real data stream) on a small Base-LCM. Baseline, same run and thread count: a plain
PyTorch loop (AdamW, gradient clipping) over the same model size and batches. The ratio is
what the DeepSpeed path costs (or saves) against the simplest loop that could train the model.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from benchmarks.bench_data import make_shards
from benchmarks.common import Result, registry
from lcm.config import typed_config
from lcm.data.normalizer import RobustScaler
from lcm.data.shards import load_vectors
from lcm.interfaces import ConceptSpace
from lcm.model.lcm import build_model
from lcm.tasks.train import resolve_head
from lcm.train.data import BatchStream
from lcm.train.concept_unit import measure_throughput

SPACE = ConceptSpace("bench", 384)
MODEL = {"arch": "small", "overrides": {"num_layers": 2}}
BATCH, WINDOW = 16, 32


def plain_torch_rate(shards: Path, normalizer: RobustScaler, steps: int) -> float:
    """Concepts/s of the simplest loop: forward, backward, clip, AdamW step."""
    torch.manual_seed(0)
    head = resolve_head(registry(), MODEL["arch"], {"name": "mse"})
    model = build_model(MODEL["arch"], MODEL["overrides"], head, SPACE)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)
    batches = iter(BatchStream(shards, normalizer, max_concepts=WINDOW, batch_size=BATCH,
                               shuffle_buffer=2000, num_workers=0, seed=0))

    def one_step() -> int:
        batch = next(batches)
        loss = model(batch.concepts, batch.mask).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 25.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return batch.num_concepts

    one_step()  # warm-up
    started, concepts = time.perf_counter(), 0
    for _ in range(steps):
        concepts += one_step()
    return concepts / (time.perf_counter() - started)


def run(quick: bool = False) -> list[Result]:
    steps = 10 if quick else 60
    with tempfile.TemporaryDirectory() as tmp:
        shards = Path(tmp) / "shards"
        make_shards(shards, documents=200, sentences=32, dim=SPACE.dim)
        normalizer = RobustScaler.fit(load_vectors(shards), SPACE)
        normalizer.save(shards)
        task = registry().get("task", "train").cls
        recipe = typed_config(task, {
            "output": str(Path(tmp) / "model"),
            "data": {"shards": str(shards), "normalizer": str(shards), "max_concepts": WINDOW,
                     "batch_size": BATCH},
            "model": MODEL, "head": {"name": "mse"},
            "train": {"steps": steps + 1, "zero_stage": 0, "precision": "fp32"},
        }, registry())
        deepspeed_rate = measure_throughput(recipe, steps)
        plain_rate = plain_torch_rate(shards, normalizer, steps)
    return [Result("train", "Base-LCM step, DeepSpeed path", "concepts/s", deepspeed_rate,
                   "plain torch AdamW loop", plain_rate)]
