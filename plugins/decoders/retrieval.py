"""Decoder ``retrieval``: returns the existing sentence whose vector is nearest (cosine) to each
concept. It generates nothing: it is a lookup in a sentence bank, which is what runs offline
for a space (such as minilm) that has no generative decoder yet.

The bank is the sentences of a shard directory (``bank``), the sentences the pipeline shows the
decoder through ``observe()`` (the input documents), or both, as ``observed`` says.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

from lcm.data.shards import iter_documents
from lcm.errors import ConceptSpaceMismatchError, UserError
from lcm.fields import choice, path
from lcm.hookspecs import hookimpl
from lcm.interfaces import ConceptSpace, DecodedSentence, Decoder
from lcm.pipeline import selector
from lcm.spaces import read_space

OBSERVED_MODES = ("include", "ignore", "exclude")


@dataclass
class RetrievalConfig:
    bank: Optional[str] = path(None, must_exist=True, space_source=True,
                               help="shard directory whose sentences are candidates")
    observed: str = choice("include", OBSERVED_MODES, help=(
        "what to do with the sentences passed to observe() (the input documents): "
        "include = add them to the candidates; ignore = leave the bank as it is; "
        "exclude = never return any of them, even when the bank holds them, so a "
        "continuation cannot simply echo its prompt"))
    space: Optional[str] = None
    """The concept space's name, when there is no bank to read it from."""
    dim: Optional[int] = None
    """The concept space's dimension, when there is no bank to read it from."""
    batch_size: int = 1024
    """Queries scored per matrix product."""
    distinct: bool = False
    """Within one decode call, never return a sentence twice: each row takes the best candidate
    earlier rows did not take (an extractive summary names each source sentence once)."""


class RetrievalDecoder(Decoder):
    """Nearest-neighbour lookup; observed sentences accumulate (deduplicated) for its lifetime."""

    name = "retrieval"
    description = "nearest-neighbour retrieval (cosine) over a sentence bank; not generation"
    modalities = ("text",)
    origin = selector.RETRIEVED
    Config = RetrievalConfig

    def __init__(self, config: RetrievalConfig | None = None):
        super().__init__(config)
        self._bank: _SentenceBank | None = None  # the shard bank loads on the first decode
        self._observed = _SentenceBank()
        self._pool: tuple[int, list[str], Any] | None = None  # (observed count, texts, unit vectors)

    @classmethod
    def concept_space(cls, config: RetrievalConfig) -> ConceptSpace | None:
        """From ``space``/``dim`` or the bank's ``concept_space.json``; None: any space."""
        explicit = None
        if config.space is not None or config.dim is not None:
            if config.space is None or config.dim is None:
                raise UserError("retrieval decoder: give both `space` and `dim`, or neither")
            explicit = ConceptSpace(config.space, int(config.dim))
        recorded = read_space(config.bank) if config.bank else None
        if explicit and recorded and explicit != recorded:
            raise ConceptSpaceMismatchError(
                f"retrieval decoder: space {explicit} differs from the bank's {recorded}")
        return explicit or recorded

    def observe(self, sentences: Sequence[str], vectors) -> None:
        if self.config.observed != "ignore":
            self._observed.add(sentences, vectors)

    def forget(self) -> bool:
        self._observed = _SentenceBank()
        self._pool = None  # the shard bank stays loaded
        return True

    def decode(self, vectors, language: str | None = None) -> list[str]:
        """The nearest candidate sentence per row; ``language`` is ignored (the bank's own)."""
        return [text for text, _ in self.nearest(vectors)]

    def decode_traced(self, vectors, language: str | None = None) -> list[DecodedSentence]:
        return [DecodedSentence(text, self.origin, cosine) for text, cosine in self.nearest(vectors)]

    def nearest(self, vectors) -> list[tuple[str, float]]:
        """``(sentence, cosine similarity)`` of the best candidate for each row of ``vectors``."""
        import torch  # lazy: keeps `lcm plugins list` and `lcm recipes validate` fast

        texts, bank = self._candidates()
        queries = torch.nn.functional.normalize(torch.as_tensor(vectors).float(), dim=-1)
        if queries.shape[-1] != bank.shape[-1]:
            raise ConceptSpaceMismatchError(f"retrieval decoder: vectors of dim {queries.shape[-1]} "
                                            f"for a bank of dim {bank.shape[-1]}")
        return selector.nearest(queries, bank, texts, self.config.batch_size, self.config.distinct)

    def _candidates(self) -> tuple[list[str], Any]:
        """The candidate sentences and their unit vectors ``[N, dim]``, rebuilt only after
        new sentences were observed."""
        if self._pool is None or self._pool[0] != len(self._observed.texts):
            self._pool = (len(self._observed.texts), *self._build_pool())
        return self._pool[1], self._pool[2]

    def _build_pool(self) -> tuple[list[str], Any]:
        import torch  # lazy: keeps `lcm plugins list` and `lcm recipes validate` fast

        if self._bank is None:
            bank = self.config.bank
            self._bank = _SentenceBank.from_shards(bank) if bank else _SentenceBank()
        pool = _SentenceBank()
        pool.extend(self._bank)
        if self.config.observed == "include":
            pool.extend(self._observed)
        elif self.config.observed == "exclude":
            pool = pool.without(set(self._observed.texts))
        if not pool.texts:
            raise UserError(
                "retrieval decoder has no candidate sentences: set `bank` to a shard directory "
                "(from the prepare task) or let it observe the input documents (observed: include)")
        unit = torch.nn.functional.normalize(torch.cat(pool.vectors).float(), dim=-1)
        return pool.texts, unit


class _SentenceBank:
    """Sentences with their vectors, each text kept once."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.vectors: list[Any] = []  # one [1, dim] tensor per text
        self._seen: set[str] = set()

    @classmethod
    def from_shards(cls, directory: str) -> "_SentenceBank":
        bank = cls()
        for doc in iter_documents(directory):
            bank.add(doc.sentences, doc.vectors)
        return bank

    def add(self, sentences: Sequence[str], vectors) -> None:
        import torch  # lazy: keeps `lcm plugins list` and `lcm recipes validate` fast

        vectors = torch.as_tensor(vectors).float()
        if len(sentences) != len(vectors):
            raise ValueError(f"{len(sentences)} sentences with {len(vectors)} vectors")
        for text, row in zip(sentences, vectors):
            if text not in self._seen:
                self._seen.add(text)
                self.texts.append(text)
                self.vectors.append(row.unsqueeze(0))

    def extend(self, other: "_SentenceBank") -> None:
        import torch  # lazy: keeps `lcm plugins list` and `lcm recipes validate` fast

        if other.texts:
            self.add(other.texts, torch.cat(other.vectors))

    def without(self, texts: set[str]) -> "_SentenceBank":
        kept = _SentenceBank()
        for text, row in zip(self.texts, self.vectors):
            if text not in texts:
                kept.add([text], row)
        return kept


@hookimpl
def register_decoders(register) -> None:
    register(RetrievalDecoder)
