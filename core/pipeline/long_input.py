"""Fitting a source into the model's context.

A model sees at most ``max_seq_len`` concepts, prompt and summary together. A longer source is
either cut to its first ``cap`` concepts (``truncate``) or split into contiguous parts of
near-equal length, each summarised on its own, the part summaries then read in order
(``chunk``: one map step, no second pass, so a summary grows with the source's length).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Optional

from lcm.errors import UserError

LONG_INPUT_MODES = ("chunk", "truncate")
log = logging.getLogger(__name__)


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


def source_cap(max_seq_len: int, max_summary_concepts: int, framing_concepts: int,
               wanted: Optional[int]) -> int:
    """Most source concepts one prompt may hold, leaving room for the summary (``wanted``: the
    recipe's ``max_source_concepts``)."""
    room = max_seq_len - max_summary_concepts - framing_concepts
    if room < 1:
        raise UserError(f"the model reads at most {max_seq_len} concepts, which leaves no room for a "
                        f"source beside max_summary_concepts {max_summary_concepts}")
    if wanted is not None and wanted < 1:
        raise UserError(f"max_source_concepts must be positive, got {wanted}")
    if wanted is not None and wanted > room:
        log.warning("max_source_concepts %d lowered to %d: the model reads %d concepts, "
                    "%d of them kept for the summary", wanted, room, max_seq_len,
                    max_seq_len - room)
    return min(wanted or room, room)
