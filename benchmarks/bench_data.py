"""Data loading from shards, in concepts per second.

Measured: lcm's shard reader (webdataset, integrity checks, decoding). Baseline, same run:
the bare minimum — Python's tarfile reading the same members and numpy decoding the vectors,
with no checks. The ratio is what our reader's safety and generality cost.
"""
from __future__ import annotations

import io
import tarfile
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.common import Result, best_rate
from lcm.data.shards import Document, ShardWriter, iter_documents, shard_paths
from lcm.interfaces import ConceptSpace


def make_shards(directory: Path, documents: int, sentences: int, dim: int) -> int:
    rng = np.random.default_rng(0)
    with ShardWriter(directory, ConceptSpace("bench", dim), "synthetic", docs_per_shard=500) as w:
        for i in range(documents):
            vectors = rng.standard_normal((sentences, dim)).astype(np.float16)
            w.write(Document(f"doc{i:06d}", [f"sentence {j}" for j in range(sentences)], vectors))
    return documents * sentences


def read_with_lcm(directory: Path) -> int:
    return sum(len(doc.vectors) for doc in iter_documents(directory))


def read_bare_tar(directory: Path) -> int:
    total = 0
    for path in shard_paths(directory):
        with tarfile.open(path) as tar:
            for member in tar:
                if member.name.endswith(".vectors.npy"):
                    total += len(np.load(io.BytesIO(tar.extractfile(member).read())))
    return total


def run(quick: bool = False) -> list[Result]:
    documents = 400 if quick else 4000
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        make_shards(directory, documents, sentences=32, dim=384)
        ours = best_rate(lambda: read_with_lcm(directory))
        bare = best_rate(lambda: read_bare_tar(directory))
        results = [Result("data", "shard reader (documents)", "concepts/s", ours, "bare tarfile+numpy", bare)]
        results.extend(_training_batches(directory, bare))
    return results


def _training_batches(directory: Path, bare: float) -> list[Result]:
    """Normalised, wrapped, padded training batches, when the training data module exists."""
    try:
        from benchmarks.train_batches import training_batch_rate
    except ImportError:
        return []
    return [Result("data", "training batches", "concepts/s", training_batch_rate(directory),
                   "bare tarfile+numpy", bare)]
