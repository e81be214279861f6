"""The document-reading recipe fields that ``prepare``, ``generate`` and ``summarize`` share.

A task's ``Config`` inherits ``DocumentInput``; its fields are keyword-only, so the task's own
required fields (``input``, ``output``, ...) may follow them. Recipes stay flat (``format:``,
``text_field:``, ``segmenter:`` at the top level).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterator, Optional

from lcm.data.readers import FORMATS, read_documents
from lcm.data.segment import DEFAULT_MAX_CHARS, capped_sentences
from lcm.fields import choice

if TYPE_CHECKING:
    from lcm.data.readers import RawDocument


@dataclass
class SegmenterConfig:
    language: str = "en"
    """Language code for sentencex's rules."""
    max_chars: int = DEFAULT_MAX_CHARS
    """Longer sentences are split at punctuation, then whitespace (the paper caps at 200)."""


@dataclass(kw_only=True)
class DocumentInput:
    format: str = choice("auto", FORMATS, help="input format; auto = by file suffix")
    text_field: str = "text"
    """The .jsonl field / Parquet column holding the text."""
    id_field: str = "id"
    """The .jsonl field / Parquet column holding the document id (else line/row numbers)."""
    limit: Optional[int] = None
    """Read at most this many documents (skipped ones included)."""
    segmenter: SegmenterConfig = field(default_factory=SegmenterConfig)

    def documents(self, source: str, on_skip: Callable[[str], None]) -> Iterator["RawDocument"]:
        """The documents of ``source`` as these fields say to read them."""
        return read_documents(source, self.format, self.text_field, self.id_field,
                              on_skip=on_skip, limit=self.limit)

    def sentences(self, text: str) -> list[str]:
        """``text`` split into capped sentences by the ``segmenter`` settings."""
        return self.capped_sentences(text)[0]

    def capped_sentences(self, text: str) -> tuple[list[str], int]:
        """``sentences(text)``, and how many sentences the ``max_chars`` cap split."""
        return capped_sentences(text, self.segmenter.language, self.segmenter.max_chars)
