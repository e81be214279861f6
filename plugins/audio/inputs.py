"""What speech encoders accept as one input: an audio file's path, an ``Utterance``, or 1-D
float samples (numpy or torch) at 16 kHz. One conversion, one set of errors, for every encoder."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lcm.errors import UserError

from .io import load_audio
from .segment import Utterance


def as_samples(item: Any, index: int, encoder: str, min_samples: int = 1) -> np.ndarray:
    """Input number ``index`` of a batch given to ``encoder``, as mono float32 samples."""
    if isinstance(item, (str, Path)):
        item = load_audio(item).samples
    elif isinstance(item, Utterance):
        item = item.samples
    elif hasattr(item, "detach"):  # a torch tensor, without importing torch here
        item = item.detach().float().cpu().numpy()
    if not isinstance(item, np.ndarray):
        raise UserError(f"{encoder}: input {index} is a {type(item).__name__}; give audio "
                        f"paths, utterances, or 1-D float arrays at 16 kHz")
    item = np.ascontiguousarray(item, dtype=np.float32)
    if item.ndim == 2 and item.shape[0] == 1:
        item = item[0]
    if item.ndim != 1:
        raise UserError(f"{encoder}: input {index} has shape {tuple(item.shape)}; expected "
                        f"mono samples (1-D); the audio front end downmixes files")
    if len(item) < min_samples:
        raise UserError(f"{encoder}: input {index} is {len(item)} samples long, shorter than "
                        f"{min_samples / 16_000:g} s at 16 kHz")
    return item
