"""Sentence segmentation with a length cap, as the paper's "capped" splitter.

``sentencex`` splits text into sentences offline (about 300 languages, no model files; it gets
"Dr.", "U.S.", "3.2%" and "e.g." right). A sentence longer than the cap is then split where a
reader would pause: at the clause punctuation (``; : ,`` ...) nearest below the cap, else at the
last space below it, else (one giant token) at the cap itself. No text is ever dropped: joining
the pieces with spaces gives back every word.
"""
from __future__ import annotations

import re

DEFAULT_MAX_CHARS = 200
_CLAUSE_BREAK = re.compile(r"[;:,)\]}\u2013\u2014](?=\s)")
"""Clause punctuation followed by whitespace (so "3,000" and "10:30" never split)."""
_WHITESPACE = re.compile(r"\s")
_MIN_PIECE_FRACTION = 3
"""A punctuation break must leave at least cap/3 characters in the first piece; earlier ones
would cut off a stub like "However," so the whitespace fallback is preferred."""


def split_sentences(text: str, language: str = "en") -> list[str]:
    """The sentences of ``text`` (stripped, none empty), by sentencex for ``language``."""
    # lazy: keeps `lcm plugins list` and `lcm recipes validate` fast
    from sentencex import segment

    return [s.strip() for s in segment(language, text) if s.strip()]


def cap_sentence(sentence: str, max_chars: int = DEFAULT_MAX_CHARS) -> list[str]:
    """``sentence`` as pieces of at most ``max_chars`` characters, split at natural breaks."""
    if max_chars < 1:
        raise ValueError(f"max_chars must be positive, got {max_chars}")
    pieces: list[str] = []
    rest = sentence.strip()
    while len(rest) > max_chars:
        cut = _break_point(rest, max_chars)
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest:
        pieces.append(rest)
    return pieces


def _break_point(text: str, max_chars: int) -> int:
    """Where to end the first piece of ``text``: an index in ``(0, max_chars]``."""
    window = text[: max_chars + 1]  # a break right at the cap is still allowed
    floor = max(1, max_chars // _MIN_PIECE_FRACTION)
    clause_ends = [m.end() for m in _CLAUSE_BREAK.finditer(window) if floor <= m.end() <= max_chars]
    if clause_ends:
        return clause_ends[-1]
    spaces = [m.start() for m in _WHITESPACE.finditer(window, 1)]
    return spaces[-1] if spaces else max_chars


def segment_document(text: str, language: str = "en",
                     max_chars: int = DEFAULT_MAX_CHARS) -> list[str]:
    """The capped sentences of one document, in order."""
    return capped_sentences(text, language, max_chars)[0]


def capped_sentences(text: str, language: str = "en",
                     max_chars: int = DEFAULT_MAX_CHARS) -> tuple[list[str], int]:
    """The capped sentences of one document, and how many sentences the cap split (a split
    sentence becomes several concepts: callers count and report them)."""
    return cap_sentences(split_sentences(text, language), max_chars)


def cap_sentences(sentences: list[str], max_chars: int = DEFAULT_MAX_CHARS) -> tuple[list[str], int]:
    """Each sentence capped (``cap_sentence``), and how many of them the cap split."""
    pieces, split = [], 0
    for sentence in sentences:
        capped = cap_sentence(sentence, max_chars)
        split += len(capped) > 1
        pieces += capped
    return pieces, split
