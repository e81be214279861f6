"""Reading audio: WAV, FLAC, OGG and MP3 through soundfile, downmixed to mono, resampled to
16 kHz with torchaudio. Every failure is an ``InputFileError`` naming the file."""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from lcm.errors import InputFileError

SAMPLE_RATE = 16_000
"""What speech encoders here take (SONAR speech, Whisper)."""
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")


@dataclass(frozen=True)
class Audio:
    """A mono recording: float32 samples in [-1, 1] at ``sample_rate``."""

    samples: np.ndarray
    sample_rate: int
    path: str | None = None
    original_rate: int | None = None
    original_channels: int | None = None

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> Audio:
    """``path`` as mono float32 at ``sample_rate``."""
    # lazy: keeps `lcm plugins list` and `lcm recipes validate` fast
    import soundfile as sf

    path = Path(path)
    info = inspect_audio(path)
    with _readable(path):
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    if len(data) == 0:
        raise InputFileError(path, "holds no audio samples (zero length)")
    return Audio(resample(to_mono(data, path), rate, sample_rate), sample_rate, str(path), rate,
                 info.channels)


def inspect_audio(path: Path) -> Any:
    """soundfile's header info of ``path`` once the file is known to be a whole, readable
    recording; the checks ``load_audio`` and the streaming reader share."""
    # lazy: keeps `lcm plugins list` and `lcm recipes validate` fast
    import soundfile as sf

    if not path.is_file():
        raise InputFileError(path, "audio file not found")
    if path.stat().st_size == 0:
        raise InputFileError(path, "empty file (0 bytes)")
    with _readable(path):
        info = sf.info(str(path))
    if info.frames == 0:
        raise InputFileError(path, "holds no audio samples (zero length)")
    missing = _missing_wav_bytes(path) if info.format == "WAV" else 0
    if missing:
        raise InputFileError(path, f"truncated: its header announces {missing} more bytes of "
                                   f"audio than the file holds")
    return info


@contextmanager
def _readable(path: Path) -> Iterator[None]:
    """libsndfile's errors on ``path`` as one InputFileError naming it."""
    # lazy: keeps `lcm plugins list` and `lcm recipes validate` fast
    import soundfile as sf

    try:
        yield
    except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
        reason = str(exc).split(":")[-1].strip() or type(exc).__name__
        raise InputFileError(path, f"not a readable audio file ({', '.join(AUDIO_SUFFIXES)}): "
                                   f"{reason}") from None


def to_mono(data: np.ndarray, path: Path) -> np.ndarray:
    """``[frames, channels]`` samples downmixed to one channel; non-finite samples refused."""
    if not np.isfinite(data).all():
        raise InputFileError(path, "holds samples that are not finite numbers (NaN or inf)")
    return data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]


def _missing_wav_bytes(path: Path) -> int:
    """How many bytes of the ``data`` chunk a RIFF/WAV header announces beyond the file's end.

    libsndfile quietly reads what is there, so a cut-off download would pass unnoticed.
    """
    size = path.stat().st_size
    with path.open("rb") as f:
        if f.read(12)[:4] != b"RIFF":
            return 0
        while True:
            header = f.read(8)
            if len(header) < 8:
                return 0
            chunk, length = header[:4], int.from_bytes(header[4:], "little")
            if chunk == b"data":
                if length in (0, 0xFFFFFFFF):  # streaming writers leave the size open
                    return 0
                return max(0, f.tell() + length - size)
            f.seek(length + (length & 1), 1)


def resample(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    """``samples`` at ``target`` Hz (torchaudio's windowed-sinc resampler)."""
    if rate == target:
        return np.ascontiguousarray(samples, dtype=np.float32)
    # lazy: keeps `lcm plugins list` and `lcm recipes validate` fast
    import torchaudio.functional as F

    out = F.resample(torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32)), rate, target)
    return out.numpy()


def find_audio_files(location: str | Path) -> list[Path]:
    """``location`` itself if it is a file, else the audio files under it (sorted, recursive)."""
    location = Path(location)
    if location.is_file():
        return [location]
    if not location.is_dir():
        raise InputFileError(location, "no such file or folder")
    files = sorted(p for p in location.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
    if not files:
        raise InputFileError(location, f"no audio files ({', '.join(AUDIO_SUFFIXES)}) in this folder")
    return files
