"""The training pairs of a decoder: every sentence of a shard set with its vector, tokenized
once, served in length-bucketed, noised batches whose order depends only on (seed, epoch).

Because a batch is a pure function of its position, a resumed run reads exactly the batches an
uninterrupted run would have read, noise included.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch

from lcm.data.shards import Manifest, iter_documents
from lcm.errors import DataIntegrityError
from lcm.interfaces import ConceptSpace
from lcm.train.data import DataPosition


@dataclass
class SentencePairs:
    sentences: list[str]
    vectors: np.ndarray  # (N, dim) float32
    space: ConceptSpace

    @classmethod
    def read(cls, shards: str, limit: int | None = None) -> "SentencePairs":
        space = Manifest.read(shards).space
        sentences: list[str] = []
        chunks: list[np.ndarray] = []
        for doc in iter_documents(shards):
            sentences.extend(doc.sentences)
            chunks.append(doc.vectors.astype(np.float32))
            if limit is not None and len(sentences) >= limit:
                break
        if not sentences:
            raise DataIntegrityError(f"{shards}: the shard set holds no sentences")
        vectors = np.concatenate(chunks)
        if not np.isfinite(vectors).all():
            bad = int((~np.isfinite(vectors).all(axis=1)).sum())
            raise DataIntegrityError(f"{shards}: {bad} sentence vector(s) hold NaN or inf")
        if limit is not None:
            sentences, vectors = sentences[:limit], vectors[:limit]
        return cls(sentences, vectors, space)


def add_noise(vectors: torch.Tensor, levels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Gaussian noise of norm ``level * |vector|`` per row (in expectation)."""
    noise = torch.randn(vectors.shape, generator=generator)
    scale = levels * vectors.norm(dim=-1) / (vectors.shape[-1] ** 0.5)
    return vectors + noise * scale.unsqueeze(-1)


@dataclass
class SentenceBatch:
    vectors: torch.Tensor  # (B, dim), noised
    input_ids: torch.Tensor  # (B, T)
    attention_mask: torch.Tensor  # (B, T)


def pad(ids: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token id lists as a padded (N, T) tensor and its attention mask."""
    width = max(len(t) for t in ids)
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for row, tokens in enumerate(ids):
        input_ids[row, :len(tokens)] = torch.tensor(tokens)
        mask[row, :len(tokens)] = 1
    return input_ids, mask


class BatchPlan:
    """Bucketed batches of ``pairs`` for one rank, epoch after epoch, from a position."""

    def __init__(self, pairs: SentencePairs, token_ids: Sequence[Sequence[int]], batch_size: int,
                 noise_levels: Sequence[float], seed: int, bucket_batches: int = 50,
                 rank: int = 0, world_size: int = 1, pad_id: int = 0):
        if len(pairs.sentences) < batch_size * world_size:
            raise DataIntegrityError(f"{len(pairs.sentences)} sentences are fewer than one batch "
                                     f"of {batch_size} per rank")
        self.pairs, self.token_ids = pairs, list(token_ids)
        self.batch_size, self.seed, self.bucket = batch_size, seed, bucket_batches
        self.levels = torch.tensor(list(noise_levels) or [0.0], dtype=torch.float32)
        self.rank, self.world_size, self.pad_id = rank, world_size, pad_id
        self.lengths = np.array([len(t) for t in self.token_ids])

    def epoch_batches(self, epoch: int) -> list[np.ndarray]:
        """This rank's batches of ``epoch`` as index arrays (every rank gets as many)."""
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(len(self.token_ids))
        window = self.batch_size * self.bucket
        batches = []
        for start in range(0, len(order), window):
            chunk = order[start:start + window]
            chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
            batches.extend(chunk[i:i + self.batch_size]
                           for i in range(0, len(chunk) - self.batch_size + 1, self.batch_size))
        rng.shuffle(batches)
        per_rank = len(batches) // self.world_size
        return batches[self.rank:per_rank * self.world_size:self.world_size]

    def generator(self, epoch: int, number: int) -> torch.Generator:
        """The random draws of batch ``number`` of ``epoch`` (a pure function of them)."""
        return torch.Generator().manual_seed(hash((self.seed, epoch, number, self.rank)) % 2**63)

    def noise_levels(self, count: int, generator: torch.Generator) -> torch.Tensor:
        """A noise level per row, drawn from ``noise_levels``."""
        return self.levels[torch.randint(len(self.levels), (count,), generator=generator)]

    def batch(self, indices: np.ndarray, epoch: int, number: int) -> SentenceBatch:
        generator = self.generator(epoch, number)
        vectors = torch.from_numpy(self.pairs.vectors[indices])
        levels = self.noise_levels(len(indices), generator)
        input_ids, mask = pad([self.token_ids[i] for i in indices], self.pad_id)
        return SentenceBatch(add_noise(vectors, levels, generator), input_ids, mask)

    def stream(self, position: DataPosition) -> Iterator[SentenceBatch]:
        """Batches from ``position`` on; ``position`` is advanced in place as they are taken."""
        while True:
            batches = self.epoch_batches(position.epoch)
            while position.batches < len(batches):
                number = position.batches
                position.batches += 1
                yield self.batch(batches[number], position.epoch, number)
            position.epoch, position.batches = position.epoch + 1, 0
