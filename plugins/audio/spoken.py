"""What a transcribing speech encoder returns for a recording: one concept per utterance with
its time span and transcript, so tasks can show what was said, not only vectors.

A speech encoder that can do this has an ``encode_recording`` method (``RecordingEncoder``);
tasks check for it and fall back to plain ``encode`` for encoders that cannot transcribe.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from pathlib import Path

    from .segment import SegmentConfig


@dataclass(frozen=True)
class SpokenConcept:
    """One utterance: where it lies in the recording (seconds), what was said, its vector."""

    start_s: float
    end_s: float
    transcript: str
    vector: np.ndarray


@dataclass
class SpokenRecording:
    """A recording's concepts in order, and the utterances left out, counted by reason."""

    path: str
    duration_s: float
    concepts: list[SpokenConcept]
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def transcripts(self) -> list[str]:
        return [c.transcript for c in self.concepts]

    @property
    def vectors(self) -> np.ndarray:
        """``[n_concepts, dim]``."""
        return np.stack([c.vector for c in self.concepts])


@runtime_checkable
class RecordingEncoder(Protocol):
    """A speech encoder that transcribes: whole recordings in, ``SpokenRecording`` out."""

    def encode_recording(self, path: "str | Path",
                         segmentation: "SegmentConfig | None" = None) -> SpokenRecording: ...
