"""Whether a summary sentence says only what its source says: a check that can be measured.

A sentence is *supported* by a source when

* every number in it (``2007``, ``3.2``, ``20%``) appears in the source,
* every capitalised name in it (a capitalised word that does not open the sentence, or an
  acronym such as ``NER``) appears in the source as a word, and
* its vector is within ``min_cosine`` of the nearest source segment.

The threshold is data's, not taste's: on the 50 aclsum validation papers, an abstract sentence's
cosine to the nearest sentence of its *own* paper against the nearest sentence of *another*
paper separates best (Youden's J) at 0.52: 89% of true abstract sentences pass, 9% of the
unrelated ones do (``DEFAULT_MIN_COSINE``; ``scripts/support_threshold.py`` recomputes it).

A source segment itself is always supported. ``repeats_word`` is the repetition rule for
sentences a decoder writes: a word said twice within three consecutive words ("wells, wells,
and wells") is never written (function words such as "and" in "Symantec and Cylance and"
excepted; the source's own sentences say what they say).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Sequence

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from torch import Tensor

DEFAULT_MIN_COSINE = 0.52
"""Cosine to the nearest source segment a sentence needs (see the module docstring)."""
REPETITION_WINDOW = 3
"""No word twice among this many consecutive words."""

FUNCTION_WORDS = frozenset(
    "a an and as at by for from in into is of on or that the to was were with".split())
"""Words the repetition rule lets recur within three words."""

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_WORD = re.compile(r"[^\W_]+(?:[-'][^\W_]+)*")


@dataclass(frozen=True)
class Support:
    """The check's verdict on one sentence, with what it found missing."""

    supported: bool
    cosine: float
    """Cosine of the sentence's vector to the nearest source segment."""
    segment: int
    """That nearest source segment."""
    missing: tuple[str, ...] = field(default=())
    """Numbers and names of the sentence the source never says."""

    def record(self) -> dict[str, object]:
        """What the output's JSON says of it."""
        record: dict[str, object] = {"supported": self.supported, "cosine": round(self.cosine, 4)}
        if self.missing:
            record["missing"] = list(self.missing)
        return record

    def describe(self) -> str:
        """"supported", or why not, in a few words."""
        if self.supported:
            return "supported"
        reasons = []
        if self.missing:
            reasons.append("not in the source: " + ", ".join(self.missing))
        return "unsupported (" + ("; ".join(reasons) or f"cosine {self.cosine:.2f}") + ")"


def numbers(text: str) -> set[str]:
    """The numbers written in ``text`` (``3.2``, ``2007``; a thousands comma kept as written)."""
    return set(_NUMBER.findall(text))


def names(text: str) -> set[str]:
    """Capitalised words that do not open a sentence, and acronyms anywhere."""
    found = set()
    for sentence_start, word in _positioned_words(text):
        upper = sum(c.isupper() for c in word)
        if len(word) > 1 and (upper >= 2 or (word[0].isupper() and not sentence_start)):
            found.add(word)
    return found


def _positioned_words(text: str) -> list[tuple[bool, str]]:
    """Each word, with whether it opens a sentence."""
    words, opening = [], True
    for match in re.finditer(r"[^\W_]+(?:[-'][^\W_]+)*|[.!?:;]", text):
        token = match.group()
        if token in ".!?:;":
            opening = True
            continue
        words.append((opening, token))
        opening = False
    return words


def repeats_word(text: str, window: int = REPETITION_WINDOW) -> bool:
    """True when a word (not a function word) occurs twice within ``window`` consecutive words
    (case-insensitive)."""
    words = [w.lower() for w in _WORD.findall(text)]
    return any(words[i] not in FUNCTION_WORDS and words[i] in words[i + 1:i + window]
               for i in range(len(words)))


class SourceSupport:
    """The support check against one source: its segments' texts and vectors."""

    def __init__(self, texts: Sequence[str], vectors: "Tensor",
                 min_cosine: float = DEFAULT_MIN_COSINE):
        self.texts = list(texts)
        self.unit = F.normalize(vectors.float(), dim=-1)
        self.min_cosine = min_cosine
        self.position = {text: i for i, text in reversed(list(enumerate(self.texts)))}
        joined = " ".join(self.texts)
        self._numbers = numbers(joined)
        self._words = {w.lower() for w in _WORD.findall(joined)}

    def segment_of(self, text: str) -> int | None:
        """The index of ``text`` when it is a source segment (its first occurrence)."""
        return self.position.get(text)

    def vectors_of(self, texts: Sequence[str], encode: Callable[[list[str]], "Tensor"]) -> "Tensor":
        """Unit vectors of ``texts``: a source segment's own, the others encoded once each
        (``encode``: sentences to vectors), so source sentences cost no encoding."""
        novel = [t for t in dict.fromkeys(texts) if self.segment_of(t) is None]
        encoded = dict(zip(novel, F.normalize(torch.as_tensor(encode(novel)).float(), dim=-1))) \
            if novel else {}
        return torch.stack([self.unit[i] if (i := self.segment_of(t)) is not None else encoded[t]
                            for t in texts])

    def check(self, text: str, vector: "Tensor") -> Support:
        """Is ``text`` (encoded as ``vector``) supported by this source?"""
        scores = self.unit @ F.normalize(vector.float(), dim=-1)
        nearest = int(scores.argmax())
        own = self.segment_of(text)
        if own is not None:
            return Support(True, float(scores[own]), own)
        missing = sorted(numbers(text) - self._numbers)
        missing += sorted(n for n in names(text) if n.lower() not in self._words)
        cosine = float(scores[nearest])
        return Support(not missing and cosine >= self.min_cosine, cosine, nearest, tuple(missing))
