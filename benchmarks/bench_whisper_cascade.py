"""The whisper_cascade encoder on the shipped recording (data/audio/aclsum_P17-1143_intro.flac,
96.5 s, 10 sentences spoken by espeak-ng): speed as a fraction of real time, word error rate of
the transcripts and cosine of each concept to minilm's vector of the true sentence.

The encoder packs utterances into 30 s windows (one Whisper pass each); the baseline gives every
utterance a Whisper pass of its own (``window_s`` below any utterance), which is what
transcribing utterance by utterance costs, since Whisper pads every input to 30 s.

    python -m benchmarks --only bench_whisper_cascade [--quick]
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import Result, registry  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RECORDING = REPO / "data" / "audio" / "aclsum_P17-1143_intro.flac"
PER_UTTERANCE_WINDOW_S = 0.01


def measure(window_s: float) -> dict[str, float]:
    """Seconds per second of audio, mean WER and mean cosine for one packing window."""
    import numpy as np

    from lcm.plugins.speech.metrics import word_error_rate
    
    sentences = RECORDING.with_suffix(".txt").read_text().splitlines()
    encoder = registry().create("encoder", {"name": "whisper_cascade", "window_s": window_s})
    encoder.whisper, encoder.text_encoder.encode(["warm up"])  # load both before timing
    began = time.perf_counter()
    spoken = encoder.encode_recording(RECORDING)
    took = time.perf_counter() - began
    if len(spoken.concepts) != len(sentences):
        raise RuntimeError(f"{len(spoken.concepts)} concepts for {len(sentences)} sentences")
    truth = encoder.text_encoder.encode(sentences).numpy()
    vectors = spoken.vectors
    cosines = (vectors * truth).sum(1) / np.linalg.norm(vectors, axis=1) / np.linalg.norm(truth, axis=1)
    wer = [word_error_rate(t, s) for t, s in zip(spoken.transcripts, sentences)]
    return {"rtf": took / spoken.duration_s, "wer": float(np.mean(wer)), "cos": float(np.mean(cosines))}


def run(quick: bool = False) -> list[Result]:
    packed, single = measure(30.0), measure(PER_UTTERANCE_WINDOW_S)
    name = "whisper_cascade"
    return [
        Result(name, "time per second of audio (packed windows)", "s/s", packed["rtf"],
               "one Whisper pass per utterance", single["rtf"], higher_is_better=False),
        Result(name, "mean word error rate", "WER", packed["wer"],
               "one Whisper pass per utterance", single["wer"], higher_is_better=False),
        Result(name, "mean cosine to minilm(true sentence)", "cos", packed["cos"],
               "one Whisper pass per utterance", single["cos"]),
    ]


if __name__ == "__main__":
    from benchmarks.__main__ import print_table

    print_table([r.as_dict() for r in run(quick="--quick" in sys.argv)])
