"""A source as the pipeline reads it: segments' texts, their vectors and (recordings) times."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import torch

from lcm.errors import InputFileError, UserError
from lcm.interfaces import DocumentEncoder, Encoder
from lcm.ui.words import format_time

if TYPE_CHECKING:
    from torch import Tensor

    from lcm.ui import Terminal

NO_SENTENCES = "no sentences after segmentation"
ENCODE_BATCH = 256
"""Sentences per encoder call, so a long text shows progress as it is encoded."""


@dataclass
class SourceDocument:
    """A source as concepts: each segment's text, its vector and (recordings) its time span."""

    id: str
    texts: list[str]
    vectors: "Tensor"  # (N, D) float, the encoder's space
    spans: Optional[list[tuple[Optional[float], Optional[float]]]] = None
    modality: str = "text"
    reference: Optional[str] = None
    """The input's reference summary (a summarize recipe's ``reference_field``), for evaluation."""
    title: Optional[str] = None
    """The input's title (a summarize recipe's ``title_field``): a salience feature."""

    def span(self, index: int) -> dict[str, Any]:
        """``start_s``/``end_s`` of segment ``index`` for a record (nothing for text)."""
        if self.spans is None:
            return {}
        start, end = self.spans[index]
        return {"start_s": start, "end_s": end}


def check_input_file(location: str) -> Path:
    """The input as a path, refused early when it cannot hold anything to summarise."""
    source = Path(location)
    if not source.is_file():
        raise InputFileError(source, "not a file (give one recording or one text file)")
    if source.stat().st_size == 0:
        raise InputFileError(source, "empty file (0 bytes)")
    return source


def reads_recordings(encoder: Encoder) -> bool:
    """True when ``encoder`` takes speech; such an encoder must read whole recordings itself."""
    if "speech" not in encoder.modalities:
        return False
    if not isinstance(encoder, DocumentEncoder):
        raise UserError(f"encoder {encoder.name!r} takes speech but cannot read a whole recording "
                        f"(it offers no encode_document); use one that does, e.g. whisper_cascade")
    return True


def read_recording(source: Path, encoder: DocumentEncoder, terminal: Terminal) -> SourceDocument:
    """The utterances of one recording, streamed from the encoder with a progress bar."""
    texts, vectors, spans = [], [], []
    with terminal.progress(f"encode {source.name}", unit="segments") as bar:
        for segment in encoder.encode_document(str(source)):
            texts.append(segment.text)
            vectors.append(torch.as_tensor(segment.vector).float().reshape(-1))
            spans.append((segment.start_s, segment.end_s))
            bar.update(1)
            if segment.end_s is not None:
                bar.set(at=format_time(segment.end_s))
    if not texts:
        raise InputFileError(source, "no speech found in the recording")
    return SourceDocument(source.stem, texts, torch.stack(vectors), spans, "speech")


def encode_sentences(encoder: Encoder, sentences: list[str], bar: Any = None,
                     batch_size: Optional[int] = ENCODE_BATCH) -> "Tensor":
    """``sentences`` encoded in batches of ``batch_size`` (None: one call), advancing ``bar``."""
    parts, step = [], batch_size or max(len(sentences), 1)
    for start in range(0, len(sentences), step):
        batch = sentences[start:start + step]
        parts.append(encoder.encode(batch).float())
        if bar is not None:
            bar.update(len(batch))
    return torch.cat(parts)
