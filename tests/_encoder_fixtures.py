"""Deterministic stand-in encoders the generate, summarize and serve tests register."""
from __future__ import annotations

import json
import zlib
from dataclasses import dataclass

import torch

from lcm.interfaces import ConceptSpace, EncodedSegment, Encoder
from tests._model_fixtures import TOY_SPACE


@dataclass
class WordsConfig:
    dim: int = TOY_SPACE.dim
    space: str = TOY_SPACE.name


class HashedWordsEncoder(Encoder):
    """Sum of fixed random vectors of a sentence's words: a deterministic stand-in encoder."""

    name = "hashed_words"
    Config = WordsConfig

    @classmethod
    def concept_space(cls, config):
        return ConceptSpace(config.space, config.dim)

    def encode(self, inputs):
        def word(w: str) -> torch.Tensor:
            g = torch.Generator().manual_seed(zlib.crc32(w.lower().encode()))
            return torch.randn(self.config.dim, generator=g)

        return torch.stack([sum(word(w) for w in s.split()) for s in inputs])


@dataclass
class ScriptedRecordingConfig:
    dim: int = TOY_SPACE.dim
    space: str = TOY_SPACE.name


class ScriptedRecordingEncoder(Encoder):
    """A speech encoder standing in for a cascade: the "recording" is a JSON list of
    [transcript, start_s, end_s]; each utterance is encoded as its transcript's hashed words."""

    name = "scripted_recording"
    modalities = ("speech",)
    Config = ScriptedRecordingConfig

    @classmethod
    def concept_space(cls, config):
        return ConceptSpace(config.space, config.dim)

    def encode(self, inputs):
        raise AssertionError("the summarize task reads recordings through encode_document")

    def encode_document(self, path):
        words = HashedWordsEncoder()
        for text, start, end in json.loads(open(path).read()):
            yield EncodedSegment(text, words.encode([text])[0], start, end)
