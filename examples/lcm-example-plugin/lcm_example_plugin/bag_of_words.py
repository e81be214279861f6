"""A hashing bag-of-words concept space: each word adds 1 to the bucket its hash picks."""
from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from typing import Sequence

from lcm.interfaces import ConceptSpace, Decoder, Encoder

_WORD = re.compile(r"[a-z0-9']+")


def words(sentence: str) -> list[str]:
    return _WORD.findall(sentence.lower())


def bucket(word: str, dim: int) -> int:
    """A hash stable across processes (Python's own hash() is salted per process)."""
    return zlib.crc32(word.encode()) % dim


@dataclass
class BagOfWordsConfig:
    dim: int = 256
    """Number of hash buckets: the dimension of the concept space."""


def _space(config: BagOfWordsConfig) -> ConceptSpace:
    return ConceptSpace(f"bow-{config.dim}", config.dim)


class BagOfWordsEncoder(Encoder):
    name = "bag_of_words"
    description = "Hashing bag-of-words vectors (example plugin; no weights)"
    Config = BagOfWordsConfig

    @classmethod
    def concept_space(cls, config: BagOfWordsConfig) -> ConceptSpace:
        return _space(config)

    def encode(self, inputs: Sequence[str]):
        import torch

        out = torch.zeros(len(inputs), self.config.dim)
        for row, sentence in enumerate(inputs):
            for word in words(sentence):
                out[row, bucket(word, self.config.dim)] += 1.0
        return out


@dataclass
class KeywordConfig:
    dim: int = 256
    """Must match the encoder's number of buckets."""
    max_words: int = 5
    """How many of the heaviest words make up a decoded 'sentence'."""


class KeywordDecoder(Decoder):
    name = "bow_keywords"
    description = "Heaviest known words of a bag-of-words vector (example plugin)"
    Config = KeywordConfig

    def __init__(self, config: KeywordConfig | None = None):
        super().__init__(config)
        self._vocabulary: dict[int, set[str]] = {}

    @classmethod
    def concept_space(cls, config: KeywordConfig) -> ConceptSpace:
        return _space(BagOfWordsConfig(config.dim))

    def observe(self, sentences, vectors) -> None:
        for sentence in sentences:
            for word in words(sentence):
                self._vocabulary.setdefault(bucket(word, self.config.dim), set()).add(word)

    def decode(self, vectors, language=None) -> list[str]:
        decoded = []
        for row in vectors:
            order = row.argsort(descending=True).tolist()
            picked = [min(self._vocabulary[b]) for b in order if b in self._vocabulary and row[b] > 0]
            decoded.append(" ".join(picked[: self.config.max_words]))
        return decoded
