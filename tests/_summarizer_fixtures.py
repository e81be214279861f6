"""Tiny pair shard sets for the supervised-style tests.

Each pair's source is random noise (nothing to learn), its target a fixed sequence of concepts
plus a little noise (learnable from position alone), and the framing's end concept is fixed: a
model trained in supervised style learns the target side only.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from lcm.data.instruction import SOURCE_LENGTH_KEY, Framing, InstructionFormat
from lcm.data.normalizer import RobustScaler
from lcm.data.shards import Document, ShardWriter
from lcm.interfaces import ConceptSpace

SPACE = ConceptSpace("toy-pairs", 16)
TARGET_LENGTH = 3


def noisy_source_pairs(count: int, seed: int = 0, long_source: int = 15,
                       long_target: int = 12) -> tuple[list[Document], Framing]:
    """``count`` pairs (source 3..6 noise concepts, target 3 fixed ones), then one pair with a
    ``long_source`` (cut to fit) and one with a ``long_target`` (skipped)."""
    rng = np.random.default_rng(seed)
    target = rng.normal(size=(long_target, SPACE.dim))
    framing = Framing(InstructionFormat(), rng.normal(size=SPACE.dim).astype(np.float32))
    lengths = [(int(rng.integers(3, 7)), TARGET_LENGTH) for _ in range(count)]
    lengths += [(long_source, TARGET_LENGTH), (3, long_target)]
    documents = []
    for index, (sources, targets) in enumerate(lengths):
        vectors = np.concatenate([rng.normal(size=(sources, SPACE.dim)),
                                  target[:targets] + rng.normal(scale=0.05, size=(targets, SPACE.dim))])
        sentences = [f"pair {index} sentence {i}" for i in range(len(vectors))]
        documents.append(Document(f"pair{index:04d}", sentences, vectors.astype(np.float16),
                                  {SOURCE_LENGTH_KEY: sources}))
    return documents, framing


def write_pair_shards(directory: Path, documents: list[Document], framing: Framing) -> Path:
    """Shards, their framing and a normaliser fitted on them (as prepare/fit_normalizer would)."""
    with ShardWriter(directory, SPACE, encoder="toy-pairs", docs_per_shard=16) as writer:
        for doc in documents:
            writer.write(doc)
    framing.save(directory, len(documents))
    vectors = np.concatenate([d.vectors.astype(np.float32) for d in documents])
    RobustScaler.fit(vectors, SPACE).save(directory)
    return directory
