"""Build data/audio/aclsum_P17-1143_intro.flac: the speech summarisation demo's recording.

The first ``--sentences`` sentences of the introduction of an ACL paper from the TEST split of
the `aclsum` package (so a summariser fine-tuned on aclsum's training papers has not seen it),
spoken by espeak-ng one sentence at a time and joined with ``--pause`` seconds of silence, as
16 kHz mono 16-bit FLAC. aclsum's sentences are tokenised ("models ( Zelle , 2007 ) ."); they are
detokenised and their parenthesised citations dropped, since nobody reads those aloud. The
spoken sentences are written beside the audio as a .txt file, one per line.

    .venv/bin/pip install --no-deps aclsum==0.1.2
    .venv/bin/python scripts/make_recording.py
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from lcm.plugins.audio.io import SAMPLE_RATE, resample

PAPER = "P17-1143"
"""Lim et al. 2017, "MalwareTextDB: A Database for Annotated Malware Articles" (ACL 2017)."""
CITATION = re.compile(r"\s*\(\s[^()]*\b(?:19|20)\d\d[a-z]?\s[^()]*\)")
"""A parenthesised group naming a year: "( Langner , 2011 )", "( Andronio et al . , 2015 )"."""


def test_split() -> Path:
    spec = importlib.util.find_spec("aclsum")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("aclsum is not installed: pip install --no-deps aclsum==0.1.2")
    return Path(spec.submodule_search_locations[0]) / "dataset" / "test.jsonl"


def detokenize(sentence: str) -> str:
    """aclsum's tokenised text as it would be written."""
    text = CITATION.sub("", sentence)
    text = re.sub(r'" (.*?) "', r'"\1"', text)
    text = re.sub(r"\( (.*?) \)", r"(\1)", text)
    text = re.sub(r" ([.,;:!?%])", r"\1", text)
    return re.sub(r" (n't|'s)\b", r"\1", text).strip()


def introduction(paper: str, count: int) -> list[str]:
    for line in test_split().read_text().splitlines():
        record = json.loads(line)
        if record["id"] == paper:
            return [detokenize(s) for s in record["sentences"]["introduction"][:count]]
    sys.exit(f"paper {paper} is not in aclsum's test split")


def speak(sentence: str, scratch: Path) -> np.ndarray:
    """``sentence`` spoken by espeak-ng (default English voice), at 16 kHz."""
    wav = scratch / "sentence.wav"
    subprocess.run(["espeak-ng", "-w", str(wav), sentence], check=True, capture_output=True)
    samples, rate = sf.read(wav, dtype="float32")
    return resample(samples, rate, SAMPLE_RATE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paper", default=PAPER)
    parser.add_argument("--sentences", type=int, default=10)
    parser.add_argument("--pause", type=float, default=0.6, help="seconds between sentences")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    output = args.output or Path("data/audio") / f"aclsum_{args.paper}_intro.flac"

    sentences = introduction(args.paper, args.sentences)
    pause = np.zeros(int(args.pause * SAMPLE_RATE), dtype=np.float32)
    with tempfile.TemporaryDirectory() as scratch:
        parts = [p for s in sentences for p in (pause, speak(s, Path(scratch)))] + [pause]
    audio = np.concatenate(parts)
    output.parent.mkdir(parents=True, exist_ok=True)
    sf.write(output, audio, SAMPLE_RATE, subtype="PCM_16")
    output.with_suffix(".txt").write_text("\n".join(sentences) + "\n")
    print(f"{output}: {len(sentences)} sentences, {len(audio) / SAMPLE_RATE:.1f} s, "
          f"{output.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
