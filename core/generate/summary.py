"""The parts of summarisation that are arithmetic on concepts: fitting a long source into the
model's context, and tracing each summary concept back to the source segment it is nearest to.

Long sources: a model sees at most ``max_seq_len`` concepts, prompt and summary together. A
longer source is either cut to its first ``cap`` concepts (``truncate``) or split into
contiguous parts of near-equal length, each summarised on its own, the part summaries then read
in order (``chunk``: one map step, no second pass, so a summary grows with the source's length).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the summarize task's schema imports this module; torch loads on use
    from torch import Tensor

LONG_INPUT_MODES = ("chunk", "truncate")


@dataclass(frozen=True)
class SourcePart:
    """A contiguous span ``[start, stop)`` of a source's concepts that becomes one prompt."""

    start: int
    stop: int


def plan_parts(length: int, cap: int, mode: str) -> list[SourcePart]:
    """How a source of ``length`` concepts is fed to a model taking ``cap`` of them at once."""
    if cap < 1:
        raise ValueError(f"cap must be positive, got {cap}")
    if mode not in LONG_INPUT_MODES:
        raise ValueError(f"long-input mode must be one of {LONG_INPUT_MODES}, not {mode!r}")
    if length <= cap:
        return [SourcePart(0, length)]
    if mode == "truncate":
        return [SourcePart(0, cap)]
    count = math.ceil(length / cap)
    bounds = [round(i * length / count) for i in range(count + 1)]  # near-equal, each <= cap
    return [SourcePart(a, b) for a, b in zip(bounds, bounds[1:])]


@dataclass(frozen=True)
class Provenance:
    """Where a summary concept came from: its nearest source concept by cosine."""

    index: int
    similarity: float


def trace_sources(summary: "Tensor", source: "Tensor", decoded: list[str] | None = None,
                  source_texts: list[str] | None = None) -> list[Provenance]:
    """For each row of ``summary`` (n, D), the row of ``source`` (N, D) it came from, with
    their cosine; both in the encoder's own (de-normalised) space.

    A decoded sentence that is itself a source segment (a retrieval decoder's output, which may
    be the second-nearest when it must not repeat itself) came from that segment; any other
    came from the segment nearest to its concept.
    """
    import torch.nn.functional as F

    if len(summary) == 0:
        return []
    scores = F.normalize(summary.float(), dim=-1) @ F.normalize(source.float(), dim=-1).T  # (n, N)
    index = scores.argmax(dim=-1).tolist()
    if decoded is not None and source_texts is not None:
        position = {text: i for i, text in reversed(list(enumerate(source_texts)))}
        index = [position.get(text, nearest) for text, nearest in zip(decoded, index)]
    return [Provenance(i, float(scores[row, i])) for row, i in enumerate(index)]

