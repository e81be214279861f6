"""Transcripts of utterances re-split into sentences, each with its time span.

Silence cuts a natural voice wherever it pauses (at commas too), so one utterance per concept
would quote half-sentences. Whisper punctuates well enough to find the sentences again: the
utterances' transcripts are joined, split into sentences, and each sentence gets the span from
where it starts to where it ends, interpolated by character position inside an utterance.
"""
from __future__ import annotations

import bisect
from typing import NamedTuple, Sequence


class TimedSentence(NamedTuple):
    text: str
    start_s: float
    end_s: float


def sentences_with_times(texts: Sequence[str], times: Sequence[tuple[float, float]],
                         language: str = "en") -> list[TimedSentence]:
    """The sentences of the utterance transcripts ``texts`` (spanning ``times``), in order."""
    from lcm.data.segment import split_sentences

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
