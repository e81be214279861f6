"""Transcripts of utterances re-split into sentences, each with its time span.

Silence cuts a natural voice wherever it pauses (at commas too), so one utterance per concept
would quote half-sentences. Whisper punctuates well enough to find the sentences again: the
transcripts of utterances separated by short pauses are joined, split into sentences, and each
sentence gets the span from where it starts to where it ends, interpolated by character position
inside an utterance. A long pause ends a sentence whatever the punctuation (Whisper, hearing one
utterance at a time, often ends it with a comma).
"""
from __future__ import annotations

import bisect
from typing import NamedTuple, Sequence

from lcm.data.segment import split_sentences

MAX_JOIN_GAP_S = 0.5
"""Utterances further apart than this (between their padded spans) are never one sentence."""


class TimedSentence(NamedTuple):
    text: str
    start_s: float
    end_s: float


def sentences_with_times(texts: Sequence[str], times: Sequence[tuple[float, float]],
                         language: str = "en",
                         max_join_gap_s: float = MAX_JOIN_GAP_S) -> list[TimedSentence]:
    """The sentences of the utterance transcripts ``texts`` (spanning ``times``), in order."""
    found: list[TimedSentence] = []
    first = 0
    for index in range(1, len(texts) + 1):
        if index == len(texts) or times[index][0] - times[index - 1][1] > max_join_gap_s:
            found += _split_run(texts[first:index], times[first:index], language)
            first = index
    return found


def _split_run(texts: Sequence[str], times: Sequence[tuple[float, float]],
               language: str) -> list[TimedSentence]:
    """The sentences of utterances close enough to be read as one passage."""
    starts, pieces, offset = [], [], 0
    for text in texts:
        starts.append(offset)
        pieces.append(text.strip())
        offset += len(pieces[-1]) + 1
    joined = " ".join(pieces)

    def at(char: int) -> float:
        """The time of character ``char`` of ``joined``."""
        index = bisect.bisect_right(starts, char) - 1
        (begin, end), length = times[index], max(len(pieces[index]), 1)
        return begin + (end - begin) * min(char - starts[index], length) / length

    found, cursor = [], 0
    for sentence in split_sentences(joined, language):
        first = joined.index(sentence, cursor)
        cursor = first + len(sentence)
        found.append(TimedSentence(sentence, round(at(first), 3), round(at(cursor), 3)))
    return found
