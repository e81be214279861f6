"""Data loading from shards, in concepts per second.

Measured: lcm's shard reader (webdataset, integrity checks, decoding), and the training
batches built on it (normalised, wrapped, shuffled, padded). Baseline, same run: the bare
minimum — Python's tarfile reading the same members and numpy decoding the vectors, with no
checks. The ratios are what our reader's safety and the batching cost.
"""
from __future__ import annotations

import io
import tarfile
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.common import Result, best_rate
from lcm.data.normalizer import RobustScaler
from lcm.data.shards import Document, ShardWriter, iter_documents, load_vectors, shard_paths
from lcm.train.data import ConceptWindows
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


def read_training_batches(directory: Path, normalizer: RobustScaler) -> int:
    """One epoch of what the trainer consumes: normalised, wrapped (at 32), shuffled, padded."""
    stream = ConceptWindows(directory, normalizer, max_concepts=32, batch_size=16,
                            shuffle_buffer=2000, seed=0, epoch=0)
    return sum(int(batch.mask.sum()) for batch in stream)


def run(quick: bool = False) -> list[Result]:
    documents = 400 if quick else 4000
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        make_shards(directory, documents, sentences=32, dim=384)
        normalizer = RobustScaler.fit(load_vectors(directory, limit=20000), ConceptSpace("bench", 384))
        bare = best_rate(lambda: read_bare_tar(directory))
        documents_rate = best_rate(lambda: read_with_lcm(directory))
        batches_rate = best_rate(lambda: read_training_batches(directory, normalizer))
    return [Result("data", "shard reader (documents)", "concepts/s", documents_rate,
                   "bare tarfile+numpy", bare),
            Result("data", "training batches", "concepts/s", batches_rate, "bare tarfile+numpy", bare)]
