"""Splitting a recording into utterances at silences: one utterance becomes one concept.

Energy-based voice activity detection: frames whose level lies within ``threshold_db`` of the
recording's loudest frame (and above an absolute floor) are voiced; voiced runs closer than
``min_silence_s`` are merged, padded a little, and utterances longer than
``max_utterance_s`` are cut at their quietest frame. Each utterance keeps its start and end time.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional

import numpy as np

from lcm.fields import bounded, require_valid
from lcm.errors import InputFileError

from .io import Audio

log = logging.getLogger(__name__)


@dataclass
class SegmentConfig:
    threshold_db: float = bounded(-35.0, lt=0)
    """A frame is voiced when its level is within this many dB of the loudest frame."""
    floor_dbfs: float = -60.0
    """Frames quieter than this (dB full scale) are silence whatever the recording's level."""
    min_silence_s: float = 0.3
    """Shorter pauses do not split an utterance (pauses between words)."""
    min_utterance_s: float = 0.2
    """Shorter voiced stretches are clicks or breaths: left out, and counted in a log line."""
    max_utterance_s: float = 20.0
    """Longer utterances are cut at their quietest frame (SONAR speech saw sentence-length input)."""
    padding_s: float = 0.1
    """Silence kept on each side of an utterance, so word onsets are not clipped."""
    frame_s: float = bounded(0.02, gt=0)
    """Analysis frame length."""
    max_duration_s: Optional[float] = bounded(None, gt=0)
    """Longer recordings are refused before they are read (a server's limit); None: any length."""

    def problems(self) -> list[str]:
        """How the durations bound each other."""
        found = []
        if not self.frame_s < self.min_silence_s:
            found.append("frame_s must be shorter than min_silence_s")
        if self.max_utterance_s <= 2 * self.min_utterance_s:
            found.append("max_utterance_s must be more than twice min_utterance_s")
        return found


@dataclass(frozen=True)
class Utterance:
    """A stretch of speech: its samples and where it lies in the recording (seconds)."""

    start_s: float
    end_s: float
    samples: np.ndarray


def frame_levels_db(samples: np.ndarray, frame: int) -> np.ndarray:
    """RMS level of each ``frame``-sample frame, in dB full scale."""
    n = int(np.ceil(len(samples) / frame))
    padded = np.zeros(n * frame, dtype=np.float32)
    padded[: len(samples)] = samples
    rms = np.sqrt(np.mean(padded.reshape(n, frame) ** 2, axis=1))
    return 20 * np.log10(np.maximum(rms, 1e-10))


def segment_by_silence(audio: Audio, config: SegmentConfig | None = None) -> list[Utterance]:
    """The utterances of ``audio``, in order; a recording without any is an InputFileError."""
    config = require_valid(config or SegmentConfig(), "segmentation")
    levels = frame_levels_db(audio.samples, frame_length(config, audio.sample_rate))
    spans = utterance_spans(levels, len(audio.samples), audio.sample_rate, config,
                            audio.path or "<audio>")
    return [Utterance(start / audio.sample_rate, stop / audio.sample_rate, audio.samples[start:stop])
            for start, stop in spans]


def frame_length(config: SegmentConfig, sample_rate: int) -> int:
    """Samples per analysis frame."""
    return max(1, int(round(config.frame_s * sample_rate)))


def utterance_spans(levels: np.ndarray, n_samples: int, sample_rate: int, config: SegmentConfig,
                    source: str) -> list[tuple[int, int]]:
    """``[start, stop)`` sample ranges of the utterances, from the frame levels of a recording
    of ``n_samples``; the decision in one place for in-memory and streamed recordings."""
    frame = frame_length(config, sample_rate)
    peak = float(levels.max()) if len(levels) else -200.0
    if peak < config.floor_dbfs:
        raise InputFileError(source, f"silent: its loudest frame is {peak:.0f} dBFS, "
                                     f"below floor_dbfs {config.floor_dbfs:.0f}")
    voiced = levels > max(peak + config.threshold_db, config.floor_dbfs)
    runs = _merge_close(_runs(voiced), int(round(config.min_silence_s / config.frame_s)))

    min_frames = config.min_utterance_s / config.frame_s
    kept = [r for r in runs if r[1] - r[0] >= min_frames]
    if len(kept) < len(runs):
        log.info("%s: %d voiced stretch(es) shorter than %.2f s left out (clicks, breaths)",
                 source, len(runs) - len(kept), config.min_utterance_s)
    if not kept:
        raise InputFileError(source, "no speech found: no voiced stretch as "
                                     f"long as min_utterance_s {config.min_utterance_s} s")
    max_frames = int(config.max_utterance_s / config.frame_s)
    pieces = [p for run in kept for p in _split_long(run, levels, max_frames)]
    pad = int(round(config.padding_s * sample_rate))
    return [(max(0, begin * frame - pad), min(n_samples, end * frame + pad)) for begin, end in pieces]


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[begin, end)`` frame ranges where ``mask`` is true."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def _merge_close(runs: list[tuple[int, int]], min_gap: int) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for begin, end in runs:
        if merged and begin - merged[-1][1] < min_gap:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((begin, end))
    return merged


def _split_long(run: tuple[int, int], levels: np.ndarray, max_frames: int) -> list[tuple[int, int]]:
    """Cut a run longer than ``max_frames`` at the quietest frame of its second half-window."""
    begin, end = run
    pieces = []
    while end - begin > max_frames:
        window = levels[begin + max_frames // 2: begin + max_frames]
        cut = begin + max_frames // 2 + int(np.argmin(window))
        pieces.append((begin, cut))
        begin = cut
    pieces.append((begin, end))
    return pieces
