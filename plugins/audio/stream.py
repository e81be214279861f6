"""Recordings of any length in bounded memory: utterances found by streaming the file.

``load_audio`` holds a whole recording in memory (an hour at 44.1 kHz stereo is 1.3 GB as
float32). Here a first pass reads the file in blocks to measure frame levels (a few floats per
second of audio), the same silence rules as ``segment_by_silence`` pick the utterances, and a
second pass reads each utterance alone when it is needed:

    plan = plan_utterances("meeting.flac", SegmentConfig())
    for u in plan:            # read one at a time; the same utterances segment_by_silence finds
        u.start_s, u.end_s, u.samples

Resampling is done per piece with a second of original audio either side, cut at whole seconds
so each piece lines up exactly with the resampled whole file.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from lcm.errors import InputFileError
from lcm.fields import require_valid
from lcm.ui import progress

from .io import SAMPLE_RATE, inspect_audio, resample, to_mono
from .segment import SegmentConfig, Utterance, frame_length, frame_levels_db, utterance_spans

BLOCK_S = 60.0
"""Audio read per step of the level scan (about 21 MB for 44.1 kHz stereo float32)."""
PROGRESS_AFTER_S = 120.0
"""Recordings longer than this show a progress bar while they are scanned."""


class StreamedRecording:
    """A recording on disk, read piecewise as mono float32 at ``sample_rate``."""

    def __init__(self, path: str | Path, sample_rate: int = SAMPLE_RATE):
        self.path = Path(path)
        info = inspect_audio(self.path)
        self.original_rate, self.channels, self._frames = info.samplerate, info.channels, info.frames
        self.sample_rate = sample_rate
        self.n_samples = -(-self._frames * sample_rate // self.original_rate)  # ceil, as torchaudio

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.sample_rate

    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples ``[start, stop)`` at ``sample_rate``, as resampling the whole file gives them."""
        # lazy: keeps `lcm plugins list` and `lcm recipes validate` fast
        import soundfile as sf

        rate, target = self.original_rate, self.sample_rate
        stop = min(stop, self.n_samples)
        if rate == target:
            first_second, lo, hi = 0, start, stop
        else:  # whole seconds of context line the piece up with the resampled whole file
            first_second = max(0, start // target - 1)
            lo, hi = first_second * rate, min(self._frames, (-(-stop // target) + 1) * rate)
        with sf.SoundFile(str(self.path)) as f:
            f.seek(lo)
            data = f.read(hi - lo, dtype="float32", always_2d=True)
        samples = resample(to_mono(data, self.path), rate, target)
        offset = first_second * target if rate != target else start
        return samples[start - offset: stop - offset]


@dataclass
class UtterancePlan:
    """Where a recording's utterances lie; iterating reads them one at a time."""

    recording: StreamedRecording
    spans: list[tuple[int, int]]
    """``[start, stop)`` of each utterance, in samples at the recording's ``sample_rate``."""

    def __len__(self) -> int:
        return len(self.spans)

    def __iter__(self) -> Iterator[Utterance]:
        rate = self.recording.sample_rate
        for start, stop in self.spans:
            yield Utterance(start / rate, stop / rate, self.recording.read(start, stop))

    @property
    def times_s(self) -> list[tuple[float, float]]:
        rate = self.recording.sample_rate
        return [(start / rate, stop / rate) for start, stop in self.spans]


def plan_utterances(path: str | Path, config: SegmentConfig | None = None,
                    block_s: float = BLOCK_S) -> UtterancePlan:
    """The utterances of the recording at ``path`` without loading it whole; the same ones
    ``segment_by_silence(load_audio(path))`` finds, and the same errors."""
    config = require_valid(config or SegmentConfig(), "segmentation")
    recording = StreamedRecording(path)
    limit = config.max_duration_s
    if limit is not None and recording.duration_s > limit:
        raise InputFileError(recording.path, f"too long: {recording.duration_s:.0f} s of audio, "
                                             f"more than the limit of {limit:g} s (max_duration_s)")
    frame = frame_length(config, recording.sample_rate)
    block = frame * max(1, round(block_s * recording.sample_rate / frame))  # whole frames
    levels = []
    with progress(f"scan {recording.path.name}", round(recording.duration_s), "s",
                  shown=recording.duration_s >= PROGRESS_AFTER_S) as bar:
        for start in range(0, recording.n_samples, block):
            samples = recording.read(start, start + block)
            levels.append(frame_levels_db(samples, frame))
            bar.update(round(len(samples) / recording.sample_rate))
    spans = utterance_spans(np.concatenate(levels), recording.n_samples, recording.sample_rate,
                            config, str(recording.path))
    return UtterancePlan(recording, spans)
